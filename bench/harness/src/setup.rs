//! The run's own world: a fresh database on the given Postgres, a NATS prefix nobody else
//! uses, the petstore documents without their tasks, and the Herald and baseline processes,
//! each started as its own process so its memory and CPU are its own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use herald_bus::settings::AuthSettings;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::SecretString;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_postgres::NoTls;

/// The example's documents; its tasks are left out, so webhooks and commands of the example
/// never act on benchmark data.
const PRODUCT_YAML: &str = include_str!("../../../examples/petstore/apps/petstore/product.yaml");
const SUPPLIER_YAML: &str = include_str!("../../../examples/petstore/apps/petstore/supplier.yaml");
/// The seed script of docs/queries.md: products appended to the log as the handler would.
const SEED_SQL: &str = include_str!("../../../scripts/seed-products.sql");

/// The tenant whose admins may use the operators' routes.
pub const OPERATOR_TENANT: &str = "bench-ops";

/// How long a process may take to answer its health check after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);

pub fn random_lower(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A database of this run, dropped by [`BenchDatabase::drop_database`].
pub struct BenchDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl BenchDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("herald_bench_{}", random_lower(10));
        let admin = connect(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => bail!("the database URL has no database name to replace"),
        };
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))
    }

    /// Appends `count` products of `tenant` to the log in one transaction (the seed script).
    pub async fn seed_products(&self, tenant: &str, count: u64) -> anyhow::Result<()> {
        let client = self.connect().await?;
        client
            .batch_execute(&seed_sql(tenant, count))
            .await
            .context("seeding products failed")
    }
}

/// The seed script with its psql variables filled in and its psql commands left out.
fn seed_sql(tenant: &str, count: u64) -> String {
    let literal = format!("'{}'", tenant.replace('\'', "''"));
    SEED_SQL
        .lines()
        .filter(|line| !line.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(":'tenant'", &literal)
        .replace(":count", &count.to_string())
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot reach Postgres")?;
    tokio::spawn(connection);
    Ok(client)
}

/// The apps folder Herald runs: the petstore documents, without tasks.
pub fn write_apps(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let apps = run_dir.join("apps");
    let petstore = apps.join("petstore");
    std::fs::create_dir_all(&petstore)?;
    std::fs::write(petstore.join("product.yaml"), PRODUCT_YAML)?;
    std::fs::write(petstore.join("supplier.yaml"), SUPPLIER_YAML)?;
    Ok(apps)
}

/// A loopback address with a port the OS just handed out.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// The settings Herald runs with, as `HERALD_*` variables, and the key its tokens are signed with.
pub struct HeraldEnv {
    pub vars: Vec<(String, String)>,
    pub auth: AuthSettings,
    pub addr: SocketAddr,
    pub prefix: String,
}

impl HeraldEnv {
    pub fn new(database_url: &str, nats_url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let secret = random_lower(48);
        let prefix = format!("bench{}", random_lower(8));
        let addr = free_addr()?;
        let vars = [
            ("HERALD_DATABASE__URL", database_url.to_owned()),
            ("HERALD_DATABASE__POOL_SIZE", pool_size.to_string()),
            ("HERALD_NATS__URL", nats_url.to_owned()),
            ("HERALD_NATS__PREFIX", prefix.clone()),
            ("HERALD_AUTH__HS256_SECRET", secret.clone()),
            ("HERALD_HTTP__ADDR", addr.to_string()),
            // The benchmark is one caller sending thousands of requests a second.
            (
                "HERALD_HTTP__RATE_LIMIT_PER_SECOND",
                "1000000000".to_owned(),
            ),
            ("HERALD_HTTP__RATE_LIMIT_BURST", "1000000000".to_owned()),
            ("HERALD_LOG__LEVEL", "warn".to_owned()),
            // W6 asks for a rebuild over the operators' route.
            ("HERALD_AUTH__OPERATOR_TENANT", OPERATOR_TENANT.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let auth = AuthSettings {
            hs256_secret: Some(SecretString::from(secret)),
            ..AuthSettings::default()
        };
        Ok(Self {
            vars,
            auth,
            addr,
            prefix,
        })
    }

    /// A token for `tenant` with every role the workloads need.
    pub fn token(&self, tenant: &str) -> anyhow::Result<String> {
        let roles = ["admin".to_owned(), "staff".to_owned(), "user".to_owned()];
        herald_api::auth::issue_token(&self.auth, "bench", tenant, &roles, 24 * 3600)
            .context("cannot sign a token")
    }
}

/// A child process, killed when dropped so no run leaves servers behind.
pub struct Process {
    pub name: &'static str,
    child: Child,
}

impl Process {
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Self::spawn_command(name, command, log)
    }

    /// Starts `command` with its output appended to `log` and no input.
    pub fn spawn_command(
        name: &'static str,
        mut command: Command,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self { name, child })
    }

    /// Sends `signal` (a name `kill` knows: `TERM`, `QUIT`, `KILL`) and waits up to `grace`
    /// for the process to exit, then kills it.
    pub async fn signal(&mut self, signal: &str, grace: Duration) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let sent = Command::new("kill")
                .args(["-s", signal, &pid.to_string()])
                .status()
                .await
                .context("cannot run kill")?;
            if !sent.success() {
                bail!("kill -s {signal} {pid} failed ({sent})");
            }
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `GET url` answers 200, failing early when the process has exited.
    pub async fn wait_healthy(&mut self, url: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); see its log",
                    self.name
                );
            }
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become healthy within {START_DEADLINE:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the process to completion, for one-shot commands such as `herald migrate`.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("{} failed ({status}); see its log", self.name);
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        drop(self.child.kill().await);
    }
}

/// Resident memory of a process in bytes, from `/proc/<pid>/status` (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Removes this run's streams from NATS.
pub async fn delete_streams(nats_url: &str, prefix: &str) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let client = async_nats::connect(nats_url.split(',').collect::<Vec<_>>()).await?;
    let jetstream = async_nats::jetstream::new(client);
    let upper = prefix.to_uppercase();
    let names: Vec<String> = jetstream.stream_names().try_collect().await?;
    for name in names.into_iter().filter(|n| n.starts_with(&upper)) {
        jetstream.delete_stream(&name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_script_is_filled_in_without_psql_commands() {
        let sql = seed_sql("it's", 12);
        assert!(!sql.contains(":count") && !sql.contains(":'tenant'"));
        assert!(sql.contains("generate_series(1, 12)"));
        assert!(sql.contains("'it''s'"));
        assert!(!sql.lines().any(|l| l.starts_with('\\')));
    }
}
