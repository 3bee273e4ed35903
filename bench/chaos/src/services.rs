//! The run's own Postgres and NATS servers, started from the installed binaries on free ports so
//! that a scenario may kill and restart them without touching anyone else's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use herald_bench::setup::{Process, free_addr};
use tokio::process::Command;
use tokio::time::Instant;

/// How long a server may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a stopping server may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Where the server binaries are, and who runs Postgres.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The directory of `initdb` and `postgres`.
    pub pg_bin: PathBuf,
    pub nats_server: PathBuf,
    /// The user and group Postgres runs as, when this process is root (Postgres refuses root).
    pub pg_user: Option<(u32, u32)>,
}

impl Binaries {
    pub fn new(pg_bin: PathBuf, nats_server: PathBuf) -> anyhow::Result<Self> {
        let pg_user = if is_root()? {
            Some(user_ids("postgres")?)
        } else {
            None
        };
        Ok(Self {
            pg_bin,
            nats_server,
            pg_user,
        })
    }
}

fn is_root() -> anyhow::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc")?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0"))
}

/// The uid and gid of `name`, from `/etc/passwd`.
fn user_ids(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .with_context(|| format!("no system user `{name}` to run Postgres as"))
}

/// A Postgres cluster of this run.
pub struct Postgres {
    binaries: Binaries,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    server: Option<Process>,
}

impl Postgres {
    /// Creates a cluster under `dir` (trust auth for `postgres`), not yet started.
    pub async fn init(binaries: &Binaries, dir: &Path) -> anyhow::Result<Self> {
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data)?;
        let log = dir.join("postgres.log");
        std::fs::write(&log, "")?;
        if let Some((uid, gid)) = binaries.pg_user {
            for path in [&data, &log] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("cannot hand {} to postgres", path.display()))?;
            }
        }
        let mut initdb = binaries.pg_command("initdb");
        initdb.args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "-D",
        ]);
        initdb.arg(&data);
        let initdb = Process::spawn_command("initdb", initdb, &dir.join("initdb.log"))?;
        initdb.finish().await?;
        Ok(Self {
            binaries: binaries.clone(),
            data,
            log,
            port: free_addr()?.port(),
            server: None,
        })
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it takes connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let mut postgres = self.binaries.pg_command("postgres");
        postgres.arg("-D").arg(&self.data).args([
            "-p",
            &self.port.to_string(),
            "-k",
            "",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=400",
        ]);
        self.server = Some(Process::spawn_command("postgres", postgres, &self.log)?);
        let url = self.admin_url();
        wait_until("Postgres to take connections", || async {
            herald_bench::setup::connect(&url).await.is_ok()
        })
        .await
    }

    /// Stops the server as a crash would: `SIGQUIT`, no shutdown checkpoint; the next start
    /// recovers from the write-ahead log.
    pub async fn crash(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server.signal("QUIT", STOP_GRACE).await?;
        }
        Ok(())
    }
}

impl Binaries {
    fn pg_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.pg_bin.join(program));
        command.current_dir("/");
        if let Some((uid, gid)) = self.pg_user {
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// One nats-server with JetStream, alone or a member of a cluster.
pub struct NatsNode {
    bin: PathBuf,
    pub name: String,
    pub port: u16,
    cluster: Option<(u16, Vec<u16>)>,
    dir: PathBuf,
    server: Option<Process>,
}

impl NatsNode {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the node (keeping its store across restarts) and waits until it takes clients.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let mut server = Command::new(&self.bin);
        server.current_dir("/").args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "--server_name",
            &self.name,
            "-sd",
        ]);
        server.arg(self.dir.join("store"));
        if let Some((cluster_port, routes)) = &self.cluster {
            let routes: Vec<String> = routes
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect();
            server.args([
                "--cluster_name",
                "herald",
                "--cluster",
                &format!("nats://127.0.0.1:{cluster_port}"),
                "--routes",
                &routes.join(","),
            ]);
        }
        let log = self.dir.join("nats.log");
        self.server = Some(Process::spawn_command("nats-server", server, &log)?);
        let url = self.url();
        wait_until("NATS to take clients", || async {
            async_nats::connect(&url).await.is_ok()
        })
        .await
    }

    /// Kills the node at once (`SIGKILL`).
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server.signal("KILL", STOP_GRACE).await?;
        }
        Ok(())
    }

    /// Shuts the node down as a restart does (`SIGTERM`).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server.signal("TERM", STOP_GRACE).await?;
        }
        Ok(())
    }
}

/// One NATS server, or a cluster of several, each with its own folder under `dir`.
pub struct Nats {
    pub nodes: Vec<NatsNode>,
}

impl Nats {
    /// Starts `size` nodes (a cluster when more than one) and waits until JetStream answers.
    pub async fn start(bin: &Path, dir: &Path, size: usize) -> anyhow::Result<Self> {
        let ports: Vec<(u16, u16)> = (0..size)
            .map(|_| Ok((free_addr()?.port(), free_addr()?.port())))
            .collect::<anyhow::Result<_>>()?;
        let mut nodes = Vec::with_capacity(size);
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)?;
            let routes = ports
                .iter()
                .filter(|(p, _)| p != port)
                .map(|(_, c)| *c)
                .collect();
            nodes.push(NatsNode {
                bin: bin.to_owned(),
                name,
                port: *port,
                cluster: (size > 1).then_some((*cluster_port, routes)),
                dir: node_dir,
                server: None,
            });
        }
        for node in &mut nodes {
            node.start().await?;
        }
        let nats = Self { nodes };
        nats.wait_for_jetstream().await?;
        Ok(nats)
    }

    /// Every node's URL, comma-separated, as `nats.url` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until JetStream answers through every running node (a cluster has elected its
    /// meta leader).
    pub async fn wait_for_jetstream(&self) -> anyhow::Result<()> {
        for node in self.nodes.iter().filter(|n| n.server.is_some()) {
            let url = node.url();
            wait_until("JetStream to answer", || async {
                use futures::TryStreamExt;
                match async_nats::connect(&url).await {
                    Ok(client) => async_nats::jetstream::new(client)
                        .stream_names()
                        .try_next()
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            })
            .await?;
        }
        Ok(())
    }
}

/// Asks `ready` every 100 ms until it says yes, failing after [`START_DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + START_DEADLINE;
    while !ready().await {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
