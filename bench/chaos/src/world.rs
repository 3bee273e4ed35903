//! One scenario's Herald: a fresh database and NATS prefix, the petstore documents with a task
//! on every new product, and the processes, each running some roles (`herald serve --role …`),
//! which a scenario may kill and start again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use herald_bench::setup::{BenchDatabase, HeraldEnv, OPERATOR_TENANT, Process, free_addr};

/// The example's documents.
const PRODUCT_YAML: &str = include_str!("../../../examples/petstore/apps/petstore/product.yaml");
const SUPPLIER_YAML: &str = include_str!("../../../examples/petstore/apps/petstore/supplier.yaml");
/// A task run for every new product: it publishes it, so each run leaves one event that shows
/// whether it ran exactly once.
const TASKS_YAML: &str = "\
publish_new:
  description: Put every new product on sale
  on: petstore.product.created
  kind: command
  command:
    target: petstore.product
    action: update
    id: $event.document_id
    body: {status: published}
";

/// The tenant whose writes the scenarios check.
pub const TENANT: &str = "chaos";

/// The roles of `herald serve --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Api,
    Handler,
    Projector,
    Relay,
    Worker,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Api,
        Role::Handler,
        Role::Projector,
        Role::Relay,
        Role::Worker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Handler => "handler",
            Role::Projector => "projector",
            Role::Relay => "relay",
            Role::Worker => "worker",
        }
    }
}

/// One Herald process: its roles, its address when it serves HTTP, and the process itself.
pub struct Member {
    pub roles: Vec<Role>,
    pub addr: Option<SocketAddr>,
    process: Option<Process>,
    log: PathBuf,
}

impl Member {
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }
}

/// A Herald deployment against one Postgres and one NATS (or cluster).
pub struct World {
    pub db: BenchDatabase,
    pub env: HeraldEnv,
    nats_url: String,
    herald: PathBuf,
    apps: PathBuf,
    dir: PathBuf,
    pub members: Vec<Member>,
    starts: usize,
}

impl World {
    /// Creates the database and apps, migrates, and starts one process per entry of `layout`
    /// (the roles it runs). `extra` settings (`HERALD_*` variables) apply to every process.
    pub async fn start(
        herald: &Path,
        admin_url: &str,
        nats_url: &str,
        dir: &Path,
        layout: &[&[Role]],
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = BenchDatabase::create(admin_url).await?;
        let mut env = HeraldEnv::new(&db.url, nats_url, 8)?;
        env.vars.extend(
            [
                ("HERALD_LOG__LEVEL", "info"),
                // Fail fast and come back fast: the outages here last seconds.
                ("HERALD_DATABASE__CONNECT_TIMEOUT_MS", "2000"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let apps = write_apps(dir)?;
        let mut world = Self {
            db,
            env,
            nats_url: nats_url.to_owned(),
            herald: herald.to_owned(),
            apps,
            dir: dir.to_owned(),
            members: Vec::new(),
            starts: 0,
        };
        Process::spawn(
            "herald migrate",
            herald,
            &["migrate"],
            &world.env.vars,
            &dir.join("migrate.log"),
        )?
        .finish()
        .await?;
        for roles in layout {
            world.add(roles)?;
        }
        for i in 0..world.members.len() {
            world.wait_ready(i).await?;
        }
        Ok(world)
    }

    fn add(&mut self, roles: &[Role]) -> anyhow::Result<()> {
        let addr = roles.contains(&Role::Api).then(free_addr).transpose()?;
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        let log = self
            .dir
            .join(format!("{}-{}.log", self.members.len(), names.join("+")));
        self.members.push(Member {
            roles: roles.to_vec(),
            addr,
            process: None,
            log,
        });
        self.launch(self.members.len() - 1)
    }

    /// Starts member `i`'s process (again).
    fn launch(&mut self, i: usize) -> anyhow::Result<()> {
        let apps = self.apps.display().to_string();
        let member = self.members.get_mut(i).context("no such member")?;
        let mut args = vec!["serve", "--apps", &apps];
        for role in &member.roles {
            args.extend(["--role", role.name()]);
        }
        let mut vars = self.env.vars.clone();
        if let Some(addr) = member.addr {
            vars.push(("HERALD_HTTP__ADDR".to_owned(), addr.to_string()));
        }
        member.process = Some(Process::spawn(
            "herald",
            &self.herald,
            &args,
            &vars,
            &member.log,
        )?);
        self.starts += 1;
        Ok(())
    }

    /// Waits until member `i` answers `/healthz`, when it serves HTTP.
    pub async fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let member = self.members.get_mut(i).context("no such member")?;
        if let (Some(addr), Some(process)) = (member.addr, member.process.as_mut()) {
            process
                .wait_healthy(&format!("http://{addr}/healthz"))
                .await?;
        }
        Ok(())
    }

    /// Kills member `i` with `SIGKILL`, then starts it again at once.
    pub async fn kill_and_restart(&mut self, i: usize) -> anyhow::Result<()> {
        let member = self.members.get_mut(i).context("no such member")?;
        if let Some(mut process) = member.process.take() {
            process
                .signal("KILL", std::time::Duration::from_secs(10))
                .await?;
        }
        self.launch(i)
    }

    /// The NATS servers, as the client library takes them.
    pub fn nats_servers(&self) -> Vec<&str> {
        self.nats_url.split(',').collect()
    }

    /// The addresses of the processes serving HTTP.
    pub fn api_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().filter_map(|m| m.addr).collect()
    }

    /// The pids of every running process.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(Member::pid).collect()
    }

    /// Processes started, restarts included.
    pub fn starts(&self) -> usize {
        self.starts
    }

    /// A token of the checked tenant with every role.
    pub fn token(&self) -> anyhow::Result<String> {
        self.env.token(TENANT)
    }

    /// A token of the operators' tenant.
    pub fn operator_token(&self) -> anyhow::Result<String> {
        self.env.token(OPERATOR_TENANT)
    }

    /// Stops every process, then drops the database and the run's streams — unless `keep`,
    /// for a look at what went wrong.
    pub async fn tear_down(mut self, keep: bool) -> anyhow::Result<()> {
        for member in &mut self.members {
            if let Some(mut process) = member.process.take() {
                process
                    .signal("TERM", std::time::Duration::from_secs(30))
                    .await?;
            }
        }
        if keep {
            return Ok(());
        }
        self.db.drop_database().await?;
        herald_bench::setup::delete_streams(&self.nats_url, &self.env.prefix).await
    }
}

fn write_apps(dir: &Path) -> anyhow::Result<PathBuf> {
    let apps = dir.join("apps");
    let petstore = apps.join("petstore");
    std::fs::create_dir_all(&petstore)?;
    std::fs::write(petstore.join("product.yaml"), PRODUCT_YAML)?;
    std::fs::write(petstore.join("supplier.yaml"), SUPPLIER_YAML)?;
    std::fs::write(petstore.join("tasks.yaml"), TASKS_YAML)?;
    Ok(apps)
}
