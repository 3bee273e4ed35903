//! The `herald` commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald_bus::schema::model::On;
use herald_bus::settings::{LogSettings, Settings};
use herald_bus::store::PgStore;
use herald_workers::declare::{self, TaskKind};

use crate::app::App;
use crate::database::{create_if_missing, run_migrations};
use crate::dev::with_dev_secret;
use crate::failure::Failure;
use crate::server::{Herald, Role, attach_code, shutdown_signal};
use crate::tail::TailArgs;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "An event-sourced command bus for secure, fast JSON APIs"
)]
pub struct Cli {
    /// Settings file (TOML); defaults to ./herald.toml when present. HERALD_* variables override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process for local development, with a printed admin token.
    Dev {
        #[arg(long)]
        apps: Option<PathBuf>,
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Run Herald: every role, or only those named with --role (repeatable).
    Serve {
        #[arg(long)]
        apps: Option<PathBuf>,
        #[arg(long)]
        addr: Option<SocketAddr>,
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
    },
    /// Create the database if missing and apply the event store's migrations.
    Migrate,
    /// Check the YAML documents of an apps folder and print every mistake.
    Check {
        #[arg(long)]
        apps: Option<PathBuf>,
    },
    /// Print a token signed with the configured (or local development) HS256 key.
    Token {
        #[arg(long)]
        sub: String,
        /// Comma-separated roles, e.g. `staff,admin`.
        #[arg(long, value_delimiter = ',', default_value = "")]
        roles: Vec<String>,
        #[arg(long)]
        tenant: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Rebuild a projection's view from the start of the log and wait until it serves reads.
    ///
    /// When a running `herald serve` already holds the rebuild, this follows its progress.
    Replay {
        /// The projection, named by its collection: `<app>.<doc>`, e.g. `petstore.product`.
        projection: String,
        /// The apps folder declaring it; defaults to the settings' `apps.dir` (`./apps`).
        #[arg(long)]
        apps: Option<PathBuf>,
    },
    /// Print the live events of a running Herald, resuming after a position.
    Tail(TailArgs),
    /// Write a new app crate: a document with a declared and a Rust command, its tests, a README.
    New {
        /// The app's name, also its crate's and binary's: lowercase letters, digits and _.
        name: String,
        /// Where to write it; `./<name>` by default. It must not exist, or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Herald's source folder, which the crate depends on by path; by default the one this
        /// binary was built from.
        #[arg(long)]
        herald: Option<PathBuf>,
    },
}

impl Cli {
    /// The log settings are needed before running, to initialise telemetry.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load(self.config.as_deref())?;
        match &self.command {
            Command::Dev { apps, addr } | Command::Serve { apps, addr, .. } => {
                if let Some(apps) = apps {
                    settings.apps.dir.clone_from(apps);
                }
                if let Some(addr) = addr {
                    settings.http.addr = *addr;
                }
            }
            Command::Check { apps: Some(apps) }
            | Command::Replay {
                apps: Some(apps), ..
            } => settings.apps.dir.clone_from(apps),
            _ => {}
        }
        if matches!(self.command, Command::Replay { .. } | Command::Tail(_))
            && settings.log.level == LogSettings::default().level
        {
            // These print their own progress and output; routine logs would break into it.
            settings.log.level = "warn".to_owned();
        }
        Ok(settings)
    }

    /// Runs the command with `app`'s code in place.
    pub async fn run(self, settings: Settings, app: App) -> anyhow::Result<()> {
        match self.command {
            Command::Dev { .. } => crate::dev::run(settings, app).await,
            Command::Serve { roles, .. } => {
                let roles = if roles.is_empty() {
                    Role::ALL.to_vec()
                } else {
                    roles
                };
                if roles.contains(&Role::Api)
                    && settings.auth.hs256_secret.is_none()
                    && settings.auth.public_key_pem.is_none()
                    && settings.auth.jwks_url.is_none()
                {
                    anyhow::bail!(
                        "no token key configured: set HERALD_AUTH__HS256_SECRET (or auth.public_key_pem, or auth.jwks_url)"
                    );
                }
                let herald = Herald::build(settings, &roles, app).await?;
                if let Some(addr) = herald.api_addr() {
                    tracing::info!(%addr, "listening");
                }
                herald.run_until_stopped(shutdown_signal()).await
            }
            Command::Migrate => {
                create_if_missing(&settings.database).await?;
                let ran = run_migrations(&PgStore::connect(&settings.database)?).await?;
                println!("{ran} migration(s) applied");
                Ok(())
            }
            Command::Check { .. } => match declare::load(&settings.apps.dir) {
                Ok((mut registry, tasks)) => {
                    attach_code(&mut registry, &app, &settings.apps.dir)?;
                    for doc in registry.documents() {
                        println!(
                            "ok  /v1/{}/{}  ({} fields)",
                            doc.app,
                            doc.name,
                            doc.fields.len()
                        );
                        for command in doc.commands.values() {
                            let target = match command.on {
                                On::Document => "{id}/",
                                On::Collection => "",
                            };
                            let events: Vec<String> = command
                                .emits
                                .iter()
                                .map(|verb| doc.collection().event_type(verb).to_string())
                                .collect();
                            println!(
                                "ok  /v1/{}/{}/{target}{}  (emits {})",
                                doc.app,
                                doc.name,
                                command.name,
                                events.join(", ")
                            );
                        }
                    }
                    for task in &tasks {
                        let kind = match &task.kind {
                            TaskKind::Webhook { .. } => "webhook",
                            TaskKind::Command(_) => "command",
                            TaskKind::Rust => "rust",
                        };
                        let trigger = task.trigger.as_ref().map_or_else(
                            || "enqueued by code".to_owned(),
                            |t| format!("on {}", t.event_type),
                        );
                        println!("ok  task {}  ({kind}, {trigger})", task.full_name());
                    }
                    Ok(())
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    anyhow::bail!(
                        "{} problem(s) in {}",
                        errors.0.len(),
                        settings.apps.dir.display()
                    )
                }
            },
            Command::Token {
                sub,
                roles,
                tenant,
                ttl,
            } => {
                let settings = with_dev_secret(settings)?;
                let roles: Vec<String> = roles.into_iter().filter(|r| !r.is_empty()).collect();
                let token =
                    herald_api::auth::issue_token(&settings.auth, &sub, &tenant, &roles, ttl)
                        .context("cannot sign the token")?;
                println!("{token}");
                Ok(())
            }
            Command::Replay { projection, .. } => crate::replay::run(&settings, &projection).await,
            Command::Tail(args) => crate::tail::run(args).await,
            Command::New { name, dir, herald } => {
                let dir = crate::new::scaffold(&name, dir, herald)?;
                println!("wrote the app `{name}` in {}", dir.display());
                println!(
                    "next: cd {} && cargo run -- check && cargo test",
                    dir.display()
                );
                Ok(())
            }
        }
    }
}

impl App {
    /// Reads the command line and runs it, as the `herald` binary does; the exit code says how
    /// it ended.
    pub async fn run(self) -> ExitCode {
        let cli = Cli::parse();
        let result = match cli.settings() {
            Ok(settings) => {
                herald_bus::telemetry::init(&settings.log);
                cli.run(settings, self).await
            }
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                // The chain of causes, one line: what failed and why, without a backtrace.
                eprintln!("error: {error:#}");
                error
                    .downcast_ref::<Failure>()
                    .map_or(ExitCode::FAILURE, |failure| ExitCode::from(failure.code))
            }
        }
    }
}
