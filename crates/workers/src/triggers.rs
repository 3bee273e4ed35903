//! Triggers: every committed event that matches a declared task's `on` and `when` becomes
//! exactly one run of it.
//!
//! The trigger reader follows the ordered log with its own checkpoint (`tasks`) under a lease,
//! like the relay, so events committed while workers were down are read when they return, and
//! rebuilding a view never runs a task again. For each batch, the runs and the checkpoint are
//! written in one transaction, and each run's id derives from the event and the task, so no
//! event makes a run twice. The runs are then published from the outbox (`publish_pending`),
//! which a crash between commit and publish leaves set: the next holder publishes them.
//!
//! A trigger fires for events after a Herald process (of any role) first started with it
//! (`herald.task_triggers`), not for the history before its declaration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::ClientWrapper;
use herald_bus::nats::Bus;
use herald_bus::position::LogPosition;
use herald_bus::schema::Registry;
use herald_bus::schema::tasks::TaskDecl;
use herald_bus::settings::DatabaseSettings;
use herald_bus::store::lease::{LeaseConnection, lease_key};
use herald_bus::store::notify;
use herald_bus::store::parse_tx_id;
use herald_bus::store::reader::{
    LogFilter, Pacing, RecordedEvent, frontier, load_checkpoint, read_batch, save_checkpoint,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uuid::Uuid;

use crate::queue::{EnqueueError, publish};
use crate::store::{self, NewTask};

/// The trigger reader's checkpoint (and lease) name.
pub const TRIGGER_CHECKPOINT: &str = "tasks";

const BATCH: i64 = 500;
const LEASE_RETRY: Duration = Duration::from_secs(1);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// How often the outbox is looked at without new events (for runs enqueued by code or requeued
/// elsewhere).
const OUTBOX_POLL: Duration = Duration::from_secs(1);
/// How often runs whose message was lost are looked for, and when a run counts as such: queued
/// this long without a worker taking it, or this late for its retry or heartbeat.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const STRANDED_QUEUED: Duration = Duration::from_secs(15 * 60);
const STRANDED_OVERDUE: Duration = Duration::from_secs(5 * 60);

/// Reads triggers until `shutdown`. Does nothing when no task has a trigger.
pub async fn run(
    bus: Bus,
    database: DatabaseSettings,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let triggered: Vec<&TaskDecl> = registry
        .tasks()
        .iter()
        .filter(|t| t.trigger.is_some())
        .collect();
    let listener = TaskTracker::new();
    let mut wake = notify::wake_on_appends(database.clone(), None, &listener, shutdown.clone());
    listener.close();
    while !shutdown.is_cancelled() {
        if let Err(error) = hold(&bus, &database, &triggered, &mut wake, &shutdown).await {
            warn!(
                error = format!("{error:#}"),
                "task triggers failed; resuming"
            );
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(ERROR_BACKOFF) => {}
            }
        }
    }
    listener.wait().await;
    Ok(())
}

async fn hold(
    bus: &Bus,
    database: &DatabaseSettings,
    triggered: &[&TaskDecl],
    wake: &mut tokio::sync::watch::Receiver<u64>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut lease = LeaseConnection::open(database).await?;
    loop {
        if lease.try_take(lease_key(TRIGGER_CHECKPOINT)).await? {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(LEASE_RETRY) => {}
        }
    }
    let since = register(&**lease.client(), triggered).await?;
    let checkpoint = load_checkpoint(&**lease.client(), TRIGGER_CHECKPOINT).await?;
    // Never run: start where the oldest trigger starts, not at the beginning of the log.
    let mut after = if checkpoint == LogPosition::START {
        since.values().min().copied().unwrap_or(checkpoint)
    } else {
        checkpoint
    };
    info!(resume = %after, triggers = triggered.len(), "task trigger lease taken");
    let filter = LogFilter {
        types: Some(
            triggered
                .iter()
                .filter_map(|t| t.trigger.as_ref().map(|g| g.event_type.clone()))
                .collect(),
        ),
        ..LogFilter::default()
    };
    let mut pacing = Pacing::default();
    let mut swept = tokio::time::Instant::now();
    loop {
        if swept.elapsed() >= SWEEP_EVERY {
            swept = tokio::time::Instant::now();
            let requeued =
                store::requeue_stranded(&**lease.client(), STRANDED_QUEUED, STRANDED_OVERDUE)
                    .await?;
            if requeued > 0 {
                warn!(
                    requeued,
                    "task runs whose message was lost are published again"
                );
            }
        }
        flush_outbox(bus, lease.client()).await?;
        if triggered.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(OUTBOX_POLL) => continue,
            }
        }
        let batch = read_batch(lease.client(), after, &filter, BATCH).await?;
        if !batch.events.is_empty() || batch.checkpoint != after {
            let tx = lease.client().transaction().await?;
            for event in &batch.events {
                for task in triggered.iter().filter(|t| fires(t, event, &since)) {
                    create_run(&*tx, task, event).await?;
                }
            }
            save_checkpoint(&*tx, TRIGGER_CHECKPOINT, batch.checkpoint).await?;
            tx.commit().await?;
        }
        after = batch.checkpoint;
        if !batch.caught_up {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            continue;
        }
        flush_outbox(bus, lease.client()).await?;
        let wait = pacing.wait(batch.held_back).min(OUTBOX_POLL);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = wake.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Records where each trigger starts (the log's safe frontier when a Herald process first sees
/// it) and returns every trigger's start. Every process runs this at start-up, before it
/// serves, so a trigger starts before any write its declaration was deployed with, whether or
/// not a worker runs yet.
pub async fn register(
    client: &impl tokio_postgres::GenericClient,
    triggered: &[&TaskDecl],
) -> anyhow::Result<HashMap<String, LogPosition>> {
    let now = frontier(client).await?;
    let tx_text = now.tx_id.to_string();
    let mut since = HashMap::new();
    for task in triggered {
        let name = task.full_name();
        let row = client
            .query_one(
                "WITH added AS (
                     INSERT INTO herald.task_triggers (name, since_tx, since_pos)
                     VALUES ($1, $2::text::xid8, $3) ON CONFLICT (name) DO NOTHING
                     RETURNING since_tx, since_pos)
                 SELECT since_tx::text, since_pos FROM added
                 UNION ALL
                 SELECT since_tx::text, since_pos FROM herald.task_triggers WHERE name = $1
                 LIMIT 1",
                &[&name, &tx_text, &now.position],
            )
            .await?;
        let position = LogPosition {
            tx_id: parse_tx_id(row.get(0))?,
            position: row.get(1),
        };
        since.insert(name, position);
    }
    Ok(since)
}

/// Whether `event` fires `task`: its type and conditions match, and it came after the trigger
/// was first seen.
fn fires(task: &TaskDecl, event: &RecordedEvent, since: &HashMap<String, LogPosition>) -> bool {
    let Some(trigger) = &task.trigger else {
        return false;
    };
    let after_start = since
        .get(&task.full_name())
        .is_none_or(|start| event.position > *start);
    after_start && trigger.matches(&event.event_type, &event.data)
}

/// The run of `task` for `event`: its id derives from both, so it is made once.
async fn create_run(
    client: &impl tokio_postgres::GenericClient,
    task: &TaskDecl,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let name = task.full_name();
    let payload = event.published();
    store::insert(
        client,
        &NewTask {
            id: Uuid::new_v5(&event.event_id, name.as_bytes()),
            tenant: &event.tenant,
            name: &name,
            payload: &payload,
            event_id: Some(event.event_id),
            traceparent: event.metadata["traceparent"].as_str(),
            max_attempts: i32::try_from(task.retry.max_attempts).unwrap_or(i32::MAX),
        },
    )
    .await?;
    Ok(())
}

/// Publishes every run waiting in the outbox and marks it published.
pub async fn flush_outbox(bus: &Bus, client: &mut ClientWrapper) -> Result<(), EnqueueError> {
    loop {
        let rows = store::pending(&**client, BATCH).await?;
        if rows.is_empty() {
            return Ok(());
        }
        publish(bus, &rows).await?;
        let runs: Vec<(Uuid, i32)> = rows.iter().map(|r| (r.id, r.round)).collect();
        store::published(&**client, &runs).await?;
    }
}
