//! The projector role. A supervisor keeps one contender task per live projection version
//! (building or active); each contender waits for the version's lease, and the holder applies the
//! log to the version's table, woken by `pg_notify` from appends with a polling fallback. A
//! building version that has caught up becomes the active one (see [`crate::catalog::activate`]).
//! When the holder dies, a contender in another process takes the lease over. An idle holder
//! also applies again the parked events an operator asked to replay (see [`crate::replay`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use herald_bus::schema::Registry;
use herald_bus::settings::{DatabaseSettings, ProjectorSettings};
use herald_bus::store::lease::{LeaseConnection, connect, runner_name};
use herald_bus::store::notify;
use herald_bus::store::parked::Poison;
use herald_bus::store::reader::{Pacing, load_checkpoint, read_batch};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::apply::{ProjectError, apply_batch, project_next};
use crate::catalog::{self, VersionState};
use crate::replay::replay_requested;
use crate::table::VersionTable;

/// How often the supervisor looks for new versions (a rebuild requested elsewhere).
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(1);
/// An idle holder still reports that it is alive this often.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Back-off while the database is unreachable or an event cannot be applied.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// An idle holder looks for parked events an operator asked to replay at most this often, so
/// the look costs nothing while the view is busy.
const REPLAY_INTERVAL: Duration = Duration::from_secs(1);

/// What a projection runner needs, shared by all of them.
#[derive(Clone)]
pub struct Runtime {
    pub database: DatabaseSettings,
    pub settings: ProjectorSettings,
    pub shutdown: CancellationToken,
}

/// Why a contender stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Shutdown,
    /// The version was replaced (or removed); its table is gone or going.
    Retired,
    /// The version became the active one (only when asked to stop there).
    Activated,
}

/// Runs every live version of the registry's projections until `shutdown`. The tables and
/// catalog rows exist already ([`crate::catalog::ensure_projection`], run at process start).
pub async fn run(pool: Pool, runtime: Runtime, registry: Arc<Registry>) -> anyhow::Result<()> {
    let wakers: Arc<HashMap<String, watch::Sender<u64>>> = Arc::new(
        registry
            .documents()
            .map(|schema| (schema.collection().to_string(), watch::Sender::new(0)))
            .collect(),
    );
    let tracker = TaskTracker::new();
    let listener_wakers = wakers.clone();
    tracker.spawn(notify::listen(
        runtime.database.clone(),
        move |collection| match collection {
            Some(collection) => {
                if let Some(waker) = listener_wakers.get(collection) {
                    waker.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            None => listener_wakers
                .values()
                .for_each(|w| w.send_modify(|n| *n = n.wrapping_add(1))),
        },
        runtime.shutdown.clone(),
    ));
    let mut running: HashMap<(String, i32), tokio::task::JoinHandle<Stop>> = HashMap::new();
    while !runtime.shutdown.is_cancelled() {
        running.retain(|_, task| !task.is_finished());
        match live_versions(&pool).await {
            Ok(versions) => {
                for version in versions {
                    let key = (version.projection.clone(), version.version);
                    let Some(waker) = wakers.get(&version.projection) else {
                        continue;
                    };
                    if running.contains_key(&key) {
                        continue;
                    }
                    let span = info_span!("projection", projection = %version.checkpoint);
                    let task = contend(runtime.clone(), version, waker.subscribe(), false);
                    running.insert(key, tracker.spawn(task.instrument(span)));
                }
            }
            Err(error) => warn!(
                error = format!("{error:#}"),
                "cannot read the projection catalog"
            ),
        }
        tokio::select! {
            () = runtime.shutdown.cancelled() => {}
            () = tokio::time::sleep(SUPERVISE_INTERVAL) => {}
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn live_versions(pool: &Pool) -> anyhow::Result<Vec<VersionTable>> {
    let client = pool.get().await?;
    Ok(catalog::live_versions(&**client)
        .await?
        .into_iter()
        .map(|v| v.table)
        .collect())
}

/// Waits for the version's lease, then runs it, until it is retired, shutdown comes, or
/// (with `until_active`) it has become the active version.
pub async fn contend(
    runtime: Runtime,
    table: VersionTable,
    mut wake: watch::Receiver<u64>,
    until_active: bool,
) -> Stop {
    let mut poison = Poison::default();
    loop {
        match hold(&runtime, &table, &mut wake, until_active, &poison).await {
            Ok(stop) => {
                info!(?stop, "projection runner stopped");
                return stop;
            }
            Err(error) => {
                // Back off for real: new appends must not turn a failing step into a busy loop.
                // An event that fails again and again waits longer each time, then is parked.
                let failure = match error.downcast_ref::<ProjectError>() {
                    Some(ProjectError::Event(failure)) => Some(failure),
                    _ => None,
                };
                let what = "the projection runner";
                let shutdown = &runtime.shutdown;
                if !poison
                    .back_off(what, &error, failure, ERROR_BACKOFF, shutdown)
                    .await
                {
                    return Stop::Shutdown;
                }
            }
        }
    }
}

async fn hold(
    runtime: &Runtime,
    table: &VersionTable,
    wake: &mut watch::Receiver<u64>,
    until_active: bool,
    poison: &Poison,
) -> anyhow::Result<Stop> {
    let mut lease = LeaseConnection::open(&runtime.database).await?;
    let mut building = loop {
        let Some(current) =
            catalog::version(&**lease.client(), &table.projection, table.version).await?
        else {
            return Ok(Stop::Retired);
        };
        match current.state {
            VersionState::Retired => return Ok(Stop::Retired),
            VersionState::Active if until_active => return Ok(Stop::Activated),
            state => {
                if lease.try_take(table.lease_key).await? {
                    break state == VersionState::Building;
                }
            }
        }
        tokio::select! {
            () = runtime.shutdown.cancelled() => return Ok(Stop::Shutdown),
            () = tokio::time::sleep(Duration::from_millis(runtime.settings.lease_retry_ms)) => {}
        }
    };
    // A view is derived data and its checkpoint commits with its rows: a crash can only lose
    // the last few batches together with their checkpoint, which are then applied again. So its
    // commits need not wait for the WAL flush.
    lease
        .client()
        .batch_execute("SET synchronous_commit = off")
        .await?;
    info!(runner = runner_name(), building, "projection lease taken");
    if building && catch_up(runtime, &mut lease, table, poison).await? == Some(Stop::Retired) {
        return Ok(Stop::Retired);
    }
    let mut pacing = Pacing::default();
    let mut last_heartbeat = Instant::now();
    let mut last_replay: Option<Instant> = None;
    loop {
        let batch_size = if building {
            runtime.settings.rebuild_batch_size
        } else {
            runtime.settings.batch_size
        };
        let progress = match project_next(lease.client(), table, batch_size, poison).await {
            Ok(progress) => progress,
            // A version replaced meanwhile loses its table: that is its end, not a failure.
            Err(error) => {
                match catalog::version(&**lease.client(), &table.projection, table.version).await? {
                    None => return Ok(Stop::Retired),
                    Some(v) if v.state == VersionState::Retired => return Ok(Stop::Retired),
                    Some(_) => return Err(error.into()),
                }
            }
        };
        if progress.retired {
            return Ok(Stop::Retired);
        }
        if progress.applied > 0 {
            last_heartbeat = Instant::now();
        }
        if building
            && progress.caught_up
            && !progress.held_back
            && catalog::activate(lease.client(), table).await?
        {
            info!("projection version now serves reads");
            building = false;
            if until_active {
                return Ok(Stop::Activated);
            }
        }
        if !progress.caught_up {
            if runtime.shutdown.is_cancelled() {
                return Ok(Stop::Shutdown);
            }
            continue;
        }
        // Caught up: a good moment to apply again what an operator asked for (after a wake-up
        // too, since the request notifies the view's collection).
        if last_replay.is_none_or(|at| at.elapsed() >= REPLAY_INTERVAL) {
            replay_requested(lease.client(), table).await?;
            last_replay = Some(Instant::now());
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            if !catalog::record_progress(&**lease.client(), table, 0).await? {
                return Ok(Stop::Retired);
            }
            last_heartbeat = Instant::now();
        }
        let wait = pacing.wait(progress.held_back);
        tokio::select! {
            () = runtime.shutdown.cancelled() => return Ok(Stop::Shutdown),
            _ = wake.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Applies the log up to the safe frontier with reads pipelined: a second connection reads the
/// next batch while the lease's connection writes the current one. `Some(Stop::Retired)` when
/// the version was retired meanwhile.
async fn catch_up(
    runtime: &Runtime,
    lease: &mut LeaseConnection,
    table: &VersionTable,
    poison: &Poison,
) -> anyhow::Result<Option<Stop>> {
    let start = load_checkpoint(&**lease.client(), &table.checkpoint).await?;
    let mut reader = connect(&runtime.database).await?;
    let (batches, mut receiver) = mpsc::channel(2);
    let (filter, size) = (table.filter(), runtime.settings.rebuild_batch_size);
    let read_ahead = tokio::spawn(async move {
        let mut after = start;
        loop {
            let batch = read_batch(&mut reader, after, &filter, size).await;
            // An unreadable event ends the read-ahead: the step after it parks it or fails.
            let last = batch
                .as_ref()
                .map_or(true, |b| b.caught_up || b.unreadable.is_some());
            if let Ok(batch) = &batch {
                after = batch.checkpoint;
            }
            if batches.send(batch).await.is_err() || last {
                return;
            }
        }
    });
    let outcome = async {
        while let Some(batch) = receiver.recv().await {
            let batch = batch?;
            if runtime.shutdown.is_cancelled() || batch.events.is_empty() {
                break;
            }
            if apply_batch(lease.client(), table, &batch, poison)
                .await?
                .retired
            {
                return Ok(Some(Stop::Retired));
            }
        }
        Ok(None)
    }
    .await;
    read_ahead.abort();
    outcome
}
