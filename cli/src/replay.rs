//! `herald replay`: rebuilds one projection's view from the start of the log, shows its progress,
//! and returns once the new version serves reads. When a running `herald serve` holds the new
//! version's lease, this process waits for the lease and so follows that rebuild instead.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use herald_bus::schema::{DocumentSchema, Registry};
use herald_bus::settings::Settings;
use herald_bus::store::{PgStore, notify};
use herald_projector::catalog::{self, ProjectionVersion, VersionState, request_rebuild};
use herald_projector::{Runtime, Stop, VersionTable, contend};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::database::run_migrations;
use crate::server::shutdown_signal;

/// How often the catalog is read for the version's progress.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Starts (or joins) a rebuild of `projection` and waits until its new version is active.
pub async fn run(settings: &Settings, projection: &str) -> anyhow::Result<()> {
    let schema = find_document(settings, projection)?;
    let store = PgStore::connect(&settings.database)?;
    run_migrations(&store).await?;
    let version = {
        let mut client = store
            .pool()
            .get()
            .await
            .context("cannot connect to the event store")?;
        request_rebuild(&mut client, &schema)
            .await
            .with_context(|| format!("cannot start a rebuild of {projection}"))?
    };
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let runner = spawn_runner(&tracker, settings, &version.table, &shutdown);
    let outcome = follow(&store, &version, runner).await;
    // Stops this process's runner; a rebuild left unfinished goes on in any `herald serve`.
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    println!("{}", outcome?);
    Ok(())
}

/// The document whose view `projection` (`<app>.<doc>`) names.
fn find_document(settings: &Settings, projection: &str) -> anyhow::Result<Arc<DocumentSchema>> {
    let dir = &settings.apps.dir;
    let mut registry = Registry::load(dir)
        .map_err(|errors| anyhow!("the apps in {} are invalid:\n{errors}", dir.display()))?;
    if settings.identity.enabled {
        registry = registry
            .with_identity()
            .map_err(|problem| anyhow!(problem))?;
    }
    let found = registry.named(projection);
    found.cloned().ok_or_else(|| {
        let known: Vec<String> = registry
            .documents()
            .map(|d| d.collection().to_string())
            .collect();
        anyhow!(
            "no projection `{projection}` in {}; the known ones are: {}",
            dir.display(),
            known.join(", ")
        )
    })
}

/// Runs the version in this process until it is active, woken by appends to its collection.
fn spawn_runner(
    tracker: &TaskTracker,
    settings: &Settings,
    table: &VersionTable,
    shutdown: &CancellationToken,
) -> JoinHandle<Stop> {
    let wake = notify::wake_on_appends(
        settings.database.clone(),
        Some(table.projection.clone()),
        tracker,
        shutdown.clone(),
    );
    let runtime = Runtime {
        database: settings.database.clone(),
        settings: settings.projector.clone(),
        shutdown: shutdown.clone(),
    };
    tracker.spawn(contend(runtime, table.clone(), wake, true))
}

/// Shows the version's progress until it is active (then returns the summary line), is
/// retired, or Ctrl-C.
async fn follow(
    store: &PgStore,
    version: &ProjectionVersion,
    mut runner: JoinHandle<Stop>,
) -> anyhow::Result<String> {
    let table = &version.table;
    let bar = progress_bar(version);
    let started = Instant::now();
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            () = &mut interrupted => {
                bar.abandon();
                bail!(
                    "interrupted: {} v{} stays building, and any running `herald serve` \
                     continues the rebuild",
                    table.projection,
                    table.version
                );
            }
            stop = &mut runner => match stop.context("the projection runner panicked")? {
                Stop::Activated => break,
                Stop::Retired => {
                    bar.abandon();
                    return Err(retired(table));
                }
                Stop::Shutdown => {
                    bar.abandon();
                    bail!("the projection runner stopped");
                }
            },
            _ = ticks.tick() => {
                if read_progress(store, table, &bar).await? == VersionState::Active {
                    break;
                }
            }
        }
    }
    read_progress(store, table, &bar).await?;
    bar.finish();
    Ok(summary_line(
        table,
        bar.position(),
        bar.position().saturating_sub(initial_position(version)),
        started.elapsed(),
    ))
}

/// Reads the version's row into the bar; fails when the version is gone or retired. A failed
/// read only shows on the bar: the runner retries on its own, and so does the next poll.
async fn read_progress(
    store: &PgStore,
    table: &VersionTable,
    bar: &ProgressBar,
) -> anyhow::Result<VersionState> {
    let read = async {
        let client = store.pool().get().await?;
        anyhow::Ok(catalog::version(&**client, &table.projection, table.version).await?)
    };
    match read.await {
        Ok(Some(current)) if current.state != VersionState::Retired => {
            show(bar, &current);
            Ok(current.state)
        }
        Ok(_) => {
            bar.abandon();
            Err(retired(table))
        }
        Err(error) => {
            bar.set_message(format!("cannot read the progress: {error:#}"));
            Ok(VersionState::Building)
        }
    }
}

fn retired(table: &VersionTable) -> anyhow::Error {
    anyhow!(
        "{} v{} was retired (a newer version replaced it) before it became active",
        table.projection,
        table.version
    )
}

fn initial_position(version: &ProjectionVersion) -> u64 {
    u64::try_from(version.events_done).unwrap_or(0)
}

fn progress_bar(version: &ProjectionVersion) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events, {rate}, ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        // Writing into the bar's own buffer cannot fail.
        let _ = write!(w, "{:.0} events/s", state.per_sec());
    });
    let bar = ProgressBar::new(0).with_style(style).with_prefix(format!(
        "{} v{}",
        version.table.projection, version.table.version
    ));
    show(&bar, version);
    // A rebuild joined halfway must not count its earlier events into the rate.
    bar.reset_eta();
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn show(bar: &ProgressBar, version: &ProjectionVersion) {
    let done = u64::try_from(version.events_done).unwrap_or(0);
    let total = u64::try_from(version.events_total).unwrap_or(0);
    // The total was counted when the version was created; events appended since come on top.
    bar.set_length(total.max(done));
    bar.set_position(done);
    bar.set_message("");
}

/// `petstore.product v2 active: 123456 events in 4.2 s (29394 events/s)`. The rate counts only
/// the events applied while this command watched, which is all of them unless it joined a
/// rebuild already under way.
fn summary_line(table: &VersionTable, done: u64, watched: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = watched as f64 / seconds.max(0.001);
    let name = format!("{} v{}", table.projection, table.version);
    if watched == done {
        format!("{name} active: {done} events in {seconds:.1} s ({rate:.0} events/s)")
    } else {
        format!(
            "{name} active: {done} events, the last {watched} in {seconds:.1} s ({rate:.0} events/s)"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn table() -> VersionTable {
        VersionTable::new("petstore.product", 2, Vec::new())
    }

    #[test]
    fn the_summary_gives_events_time_and_rate() {
        let line = summary_line(&table(), 123_456, 123_456, Duration::from_millis(4_200));

        assert_eq!(
            line,
            "petstore.product v2 active: 123456 events in 4.2 s (29394 events/s)"
        );
    }

    #[test]
    fn a_joined_rebuild_counts_only_the_watched_events_into_the_rate() {
        let line = summary_line(&table(), 1_000, 400, Duration::from_secs(2));

        assert_eq!(
            line,
            "petstore.product v2 active: 1000 events, the last 400 in 2.0 s (200 events/s)"
        );
    }

    #[test]
    fn a_projection_is_found_by_its_collection_name() {
        let mut settings = Settings::default();
        settings.apps.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/petstore/apps");
        settings.identity.enabled = true;

        let found = find_document(&settings, "petstore.product").expect("the product document");
        let users = find_document(&settings, "auth.user").expect("the built-in users");
        let missing = find_document(&settings, "petstore").expect_err("not a collection name");

        assert_eq!(users.collection().to_string(), "auth.user");
        assert_eq!(found.collection().to_string(), "petstore.product");
        assert!(
            missing
                .to_string()
                .contains("petstore.product, petstore.supplier"),
            "{missing}"
        );
    }
}
