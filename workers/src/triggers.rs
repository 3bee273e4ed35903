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

use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;
use herald_bus::nats::Bus;
use herald_bus::position::LogPosition;
use herald_bus::settings::DatabaseSettings;
use herald_bus::store::follow::{Follower, Step, Turn, follow};
use herald_bus::store::parse_tx_id;
use herald_bus::store::reader::{LogFilter, RecordedEvent, frontier};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::declare::{TaskDecl, Tasks};
use crate::queue::{EnqueueError, publish};
use crate::runs::{self, NewTask};

/// The trigger reader's checkpoint (and lease) name.
pub const TRIGGER_CHECKPOINT: &str = "tasks";

const BATCH: i64 = 500;
const FOLLOWER_ROLE: &str = "the task triggers";
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
    tasks: Arc<Tasks>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let triggered: Vec<&TaskDecl> = tasks.iter().filter(|t| t.trigger.is_some()).collect();
    let declared: Vec<String> = tasks.iter().map(TaskDecl::full_name).collect();
    let registered = {
        let client = herald_bus::store::lease::connect(&database).await?;
        register(&*client, &triggered).await?
    };
    let follower = Follower {
        name: TRIGGER_CHECKPOINT,
        role: FOLLOWER_ROLE,
        filter: LogFilter {
            types: Some(
                triggered
                    .iter()
                    .filter_map(|t| t.trigger.as_ref().map(|g| g.event_type.clone()))
                    .collect(),
            ),
            ..LogFilter::default()
        },
        batch_size: BATCH,
        max_wait: Some(OUTBOX_POLL),
    };
    let mut fire = Fire {
        bus: &bus,
        triggered: &triggered,
        registered: &registered,
        declared: &declared,
        swept: Instant::now(),
    };
    follow(&follower, &database, &mut fire, &shutdown).await;
    Ok(())
}

/// The trigger reader's step: a run for each event that fires a task, and the outbox of runs
/// to publish kept moving.
struct Fire<'a> {
    bus: &'a Bus,
    /// The tasks with a trigger.
    triggered: &'a [&'a TaskDecl],
    /// Where each trigger starts.
    registered: &'a Registered,
    /// The names of every declared task.
    declared: &'a [String],
    swept: Instant,
}

impl Step for Fire<'_> {
    /// A reader that never ran starts where the oldest trigger starts, not at the log's start.
    async fn resume(
        &mut self,
        _client: &mut ClientWrapper,
        checkpoint: LogPosition,
    ) -> anyhow::Result<LogPosition> {
        self.swept = Instant::now();
        Ok(if checkpoint == LogPosition::START {
            let since = self.registered.since.values().min().copied();
            since.unwrap_or(checkpoint)
        } else {
            checkpoint
        })
    }

    async fn before_read(&mut self, client: &mut ClientWrapper) -> anyhow::Result<Turn> {
        if self.swept.elapsed() >= SWEEP_EVERY {
            self.swept = Instant::now();
            let requeued =
                runs::requeue_stranded(&**client, self.declared, STRANDED_QUEUED, STRANDED_OVERDUE)
                    .await?;
            if requeued > 0 {
                warn!(
                    requeued,
                    "task runs whose message was lost are published again"
                );
            }
        }
        flush_outbox(self.bus, client).await?;
        if let Some(name) = newer_trigger(&**client, self.registered).await? {
            return Ok(Turn::StepAside(format!(
                "a newer declaration has the trigger {name}, which this worker does not know; leaving the task triggers to a worker that does"
            )));
        }
        Ok(if self.triggered.is_empty() {
            Turn::Wait(OUTBOX_POLL)
        } else {
            Turn::Read
        })
    }

    async fn handle(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let since = &self.registered.since;
        for event in events {
            for task in self.triggered.iter().filter(|t| fires(t, event, since)) {
                create_run(tx, task, event).await?;
            }
        }
        Ok(())
    }

    async fn caught_up(&mut self, client: &mut ClientWrapper) -> anyhow::Result<()> {
        Ok(flush_outbox(self.bus, client).await?)
    }
}

/// The triggers a process started with: where each one starts, and when the process said so.
pub struct Registered {
    pub since: HashMap<String, LogPosition>,
    pub at: DateTime<Utc>,
}

/// Records where each trigger starts (the log's safe frontier when a Herald process first sees
/// it) and that this process knows it now. Every process runs this at start-up, before it
/// serves, so a trigger starts before any write its declaration was deployed with, whether or
/// not a worker runs yet.
pub async fn register(
    client: &impl tokio_postgres::GenericClient,
    triggered: &[&TaskDecl],
) -> anyhow::Result<Registered> {
    let now = frontier(client).await?;
    let tx_text = now.tx_id.to_string();
    let at: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.try_get(0)?;
    let mut since = HashMap::new();
    for task in triggered {
        let name = task.full_name();
        let row = client
            .query_one(
                "INSERT INTO herald.task_triggers (name, since_tx, since_pos)
                 VALUES ($1, $2::text::xid8, $3)
                 ON CONFLICT (name) DO UPDATE SET last_seen = now()
                 RETURNING since_tx::text, since_pos",
                &[&name, &tx_text, &now.position],
            )
            .await?;
        let position = LogPosition {
            tx_id: parse_tx_id(row.try_get(0)?)?,
            position: row.try_get(1)?,
        };
        since.insert(name, position);
    }
    Ok(Registered { since, at })
}

/// A trigger this reader does not know that a process started with after it did: the reader
/// runs an older declaration, and reading on would pass the trigger's events by.
async fn newer_trigger(
    client: &impl tokio_postgres::GenericClient,
    registered: &Registered,
) -> anyhow::Result<Option<String>> {
    let known: Vec<&str> = registered.since.keys().map(String::as_str).collect();
    Ok(client
        .query_opt(
            "SELECT name FROM herald.task_triggers
             WHERE last_seen > $1 AND NOT (name = ANY($2)) LIMIT 1",
            &[&registered.at, &known],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
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
    runs::insert(
        client,
        &NewTask {
            id: Uuid::new_v5(&event.event_id, name.as_bytes()),
            tenant: &event.tenant,
            name: &name,
            payload: &payload,
            event_id: Some(event.event_id),
            traceparent: event.metadata.traceparent.as_deref(),
            max_attempts: i32::try_from(task.retry.max_attempts).unwrap_or(i32::MAX),
        },
    )
    .await?;
    Ok(())
}

/// Publishes every run waiting in the outbox and marks it published.
pub async fn flush_outbox(bus: &Bus, client: &mut ClientWrapper) -> Result<(), EnqueueError> {
    loop {
        let rows = runs::pending(&**client, BATCH).await?;
        if rows.is_empty() {
            return Ok(());
        }
        publish(bus, &rows).await?;
        let sent: Vec<(Uuid, i32)> = rows.iter().map(|r| (r.id, r.round)).collect();
        runs::published(&**client, &sent).await?;
    }
}
