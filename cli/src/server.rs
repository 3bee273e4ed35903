//! One Herald process: the roles it runs, built from settings, run until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use herald_api::ApiServer;
use herald_bus::nats::Bus;
use herald_bus::schema::Registry;
use herald_bus::settings::Settings;
use herald_bus::store::PgStore;
use herald_bus::supervise::{RoleHealth, supervise};
use herald_handler::{self as handler, Handler};
use herald_projector::catalog::ensure_projection;
use herald_workers::Worker;
use herald_workers::declare::{self, Tasks};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::app::App;
use crate::database::run_migrations;

/// A role a process can take; `herald serve` takes all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Handler,
    Projector,
    Worker,
    Relay,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Api,
        Role::Handler,
        Role::Projector,
        Role::Worker,
        Role::Relay,
    ];
}

pub struct Herald {
    settings: Settings,
    registry: Arc<Registry>,
    /// The declared tasks, for the worker role's triggers.
    tasks: Arc<Tasks>,
    store: PgStore,
    bus: Bus,
    roles: Vec<Role>,
    api: Option<ApiServer>,
    /// Present when this process runs the worker role.
    worker: Option<Arc<Worker>>,
    /// Stops everything behind the api, once the api has drained.
    internal: CancellationToken,
    /// How each role of this process is doing, for `/readyz`.
    health: RoleHealth,
}

impl Herald {
    /// Loads the apps and attaches `app`'s code to them, connects to Postgres and NATS,
    /// migrates, and binds the api.
    pub async fn build(settings: Settings, roles: &[Role], app: App) -> anyhow::Result<Self> {
        let (registry, tasks) = load_apps(&settings, &app)?;
        let (registry, tasks) = (Arc::new(registry), Arc::new(tasks));
        let store = PgStore::connect(&settings.database)?;
        let ran = run_migrations(&store).await?;
        if ran > 0 {
            info!(migrations = ran, "event store migrated");
        }
        if roles
            .iter()
            .any(|r| matches!(r, Role::Api | Role::Projector))
        {
            // Reads must find their tables from the first request, before the projector runs;
            // a YAML change that alters a view's columns starts building its next version.
            let mut client = store
                .pool()
                .get()
                .await
                .context("cannot connect to the event store")?;
            for schema in registry.documents() {
                ensure_projection(&mut client, schema).await?;
            }
        }
        {
            // Before anything is served: a new trigger fires for every write after this.
            let client = store
                .pool()
                .get()
                .await
                .context("cannot connect to the event store")?;
            let triggered: Vec<_> = tasks.iter().filter(|t| t.trigger.is_some()).collect();
            herald_workers::triggers::register(&**client, &triggered).await?;
        }
        let bus = Bus::connect(&settings.nats).await?;
        bus.ensure_commands_stream().await?;
        let worker = if roles.contains(&Role::Worker) {
            // Checked before anything runs: a declared task must be able to run here.
            let worker = Worker::new(
                bus.clone(),
                store.clone(),
                tasks.clone(),
                Arc::new(app.tasks),
                &settings.webhooks.secrets,
            )?;
            Some(Arc::new(worker))
        } else {
            None
        };
        let internal = CancellationToken::new();
        let health = RoleHealth::default();
        let api = if roles.contains(&Role::Api) {
            let server = ApiServer::build(
                settings.clone(),
                registry.clone(),
                store.clone(),
                bus.clone(),
                internal.clone(),
                health.clone(),
            )
            .await
            .with_context(|| format!("cannot start the api on {}", settings.http.addr))?;
            Some(server)
        } else {
            None
        };
        Ok(Self {
            settings,
            registry,
            tasks,
            store,
            bus,
            roles: roles.to_vec(),
            api,
            worker,
            internal,
            health,
        })
    }

    /// The collections this process serves, as paths (`/v1/petstore/product`).
    pub fn collections(&self) -> Vec<String> {
        self.registry
            .documents()
            .map(|d| format!("/v1/{}/{}", d.app, d.name))
            .collect()
    }

    /// The api's bound address, when this process serves HTTP.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|api| api.local_addr().ok())
    }

    /// Runs every role until `shutdown` completes (or a role fails), then stops them in order:
    /// the api stops accepting and finishes its requests, then handlers, projections and
    /// workers finish what they hold.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let internal = self.internal.clone();
        let api_stop = CancellationToken::new();
        let mut api_task = JoinSet::new();
        let api_background = self.api.as_ref().map(ApiServer::background);
        if let Some(api) = self.api.take() {
            let stop = api_stop.clone();
            api_task
                .spawn(async move { api.run_until_stopped(stop).await.context("the api failed") });
        }
        let mut roles = Supervised {
            tasks: JoinSet::new(),
            health: self.health.clone(),
            stop: internal.clone(),
        };
        self.spawn_roles(&mut roles);
        let mut roles = roles.tasks;
        info!(roles = ?self.roles, "herald running");
        let failure = tokio::select! {
            () = shutdown => None,
            Some(result) = api_task.join_next() => Some(result),
            Some(result) = roles.join_next() => Some(result),
        };
        info!("shutting down");
        api_stop.cancel();
        let mut outcome = match failure {
            Some(Ok(Err(error))) => Err(error),
            Some(Err(join)) => Err(anyhow::Error::from(join).context("a role panicked")),
            Some(Ok(Ok(()))) | None => Ok(()),
        };
        while let Some(result) = api_task.join_next().await {
            outcome = outcome.and(result.map_err(anyhow::Error::from).and_then(|r| r));
        }
        internal.cancel();
        if let Some(background) = api_background {
            background.wait().await;
        }
        while let Some(result) = roles.join_next().await {
            outcome = outcome.and(result.map_err(anyhow::Error::from).and_then(|r| r));
        }
        info!("stopped");
        outcome
    }
    /// Starts every role of this process but the api, each under [`supervise`].
    fn spawn_roles(&self, roles: &mut Supervised) {
        let stop = self.internal.clone();
        if self.roles.contains(&Role::Handler) {
            let handler = Arc::new(Handler::new(
                self.store.clone(),
                self.registry.clone(),
                self.settings.handler.max_conflict_retries,
            ));
            let concurrency = self.settings.handler.concurrency;
            let context = (handler, self.bus.clone(), stop.clone());
            roles.spawn("handler", context, move |(handler, bus, stop)| async move {
                handler::run(handler, bus, concurrency, stop)
                    .await
                    .context("the command handler failed")
            });
        }
        if self.roles.contains(&Role::Projector) {
            let runtime = herald_projector::Runtime {
                database: self.settings.database.clone(),
                settings: self.settings.projector.clone(),
                shutdown: stop.clone(),
            };
            let context = (self.store.pool().clone(), runtime, self.registry.clone());
            roles.spawn(
                "projector",
                context,
                |(pool, runtime, registry)| async move {
                    herald_projector::run(pool, runtime, registry)
                        .await
                        .context("the projector failed")
                },
            );
        }
        let database = self.settings.database.clone();
        if self.roles.contains(&Role::Relay) {
            let settings = self.settings.relay.clone();
            let context = (self.bus.clone(), database.clone(), settings, stop.clone());
            roles.spawn(
                "relay",
                context,
                |(bus, database, settings, stop)| async move {
                    herald_handler::relay::run(bus, database, settings, stop)
                        .await
                        .context("the event relay failed")
                },
            );
        }
        if let Some(worker) = self.worker.clone() {
            roles.spawn(
                "worker",
                (worker, stop.clone()),
                |(worker, stop)| async move {
                    herald_workers::run(worker, stop)
                        .await
                        .context("the worker failed")
                },
            );
            let context = (self.bus.clone(), database, self.tasks.clone(), stop);
            roles.spawn(
                "task triggers",
                context,
                |(bus, database, tasks, stop)| async move {
                    herald_workers::triggers::run(bus, database, tasks, stop)
                        .await
                        .context("the task triggers failed")
                },
            );
        }
    }
}

/// The documents and tasks of `apps.dir` (with the built-in users when `identity.enabled`),
/// with `app`'s code attached to its `kind: rust` commands.
///
/// # Errors
/// Every mistake in the files, or code that does not match the declarations.
pub fn load_apps(settings: &Settings, app: &App) -> anyhow::Result<(Registry, Tasks)> {
    let dir = &settings.apps.dir;
    let (mut registry, tasks) = declare::load(dir).map_err(|errors| {
        anyhow::anyhow!("the apps in {} are invalid:\n{errors}", dir.display())
    })?;
    if settings.identity.enabled {
        registry = registry
            .with_identity()
            .map_err(|problem| anyhow::anyhow!(problem))?;
    }
    attach_code(&mut registry, app, dir)?;
    Ok((registry, tasks))
}

/// Attaches `app`'s code to the `kind: rust` commands of the apps in `dir`; code no command
/// declares is logged.
///
/// # Errors
/// Every `kind: rust` command without code.
pub fn attach_code(registry: &mut Registry, app: &App, dir: &Path) -> anyhow::Result<()> {
    for name in registry.unused_code(&app.commands) {
        tracing::warn!(
            command = name,
            "code is registered for a command no document declares"
        );
    }
    registry.attach(&app.commands).map_err(|problems| {
        anyhow::anyhow!(
            "the apps in {} do not match this binary's code:\n{}",
            dir.display(),
            problems.join("\n")
        )
    })
}

/// The roles of a process, each restarted by [`supervise`] when it fails or panics.
struct Supervised {
    tasks: JoinSet<anyhow::Result<()>>,
    health: RoleHealth,
    stop: CancellationToken,
}

impl Supervised {
    /// Runs `run` with a copy of `context` under [`supervise`], again each time it fails.
    fn spawn<C, F, Fut>(&mut self, role: &'static str, context: C, run: F)
    where
        C: Clone + Send + 'static,
        F: Fn(C) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (health, stop) = (self.health.clone(), self.stop.clone());
        let start = move || run(context.clone());
        self.tasks
            .spawn(async move { supervise(role, health, stop, start).await });
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        drop(tokio::signal::ctrl_c().await);
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
