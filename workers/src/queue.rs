//! The task streams: `<PREFIX>_TASKS` (a work queue on `<prefix>.task.<name>`) that workers
//! pull from, and `<PREFIX>_TASKS_DEAD` (limits retention, `<prefix>.dead.<name>`) where runs
//! that will not succeed are parked with their error and attempts.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{consumer, stream};
use herald_bus::nats::{Bus, BusError};

use crate::runs::{self, NewTask, TaskRow};
use crate::task::TaskEnvelope;

/// JetStream's bound on deliveries of one message. Workers end a run after its declared
/// attempts (at most 100), counted in Postgres; this only stops a message that keeps killing
/// its workers before they can count it.
pub const MAX_DELIVER: i64 = 101;

pub fn stream_name(bus: &Bus) -> String {
    format!("{}_TASKS", bus.prefix().to_uppercase())
}

pub fn subject(bus: &Bus, task: &str) -> String {
    format!("{}.task.{task}", bus.prefix())
}

pub fn dead_stream_name(bus: &Bus) -> String {
    format!("{}_TASKS_DEAD", bus.prefix().to_uppercase())
}

pub fn dead_subject(bus: &Bus, task: &str) -> String {
    format!("{}.dead.{task}", bus.prefix())
}

pub async fn ensure_stream(bus: &Bus) -> Result<stream::Stream, BusError> {
    bus.ensure_work_queue(stream_name(bus), "task").await
}

/// The dead-letter stream: kept 30 days, for consumers outside Herald; the dead runs
/// themselves stay in `herald.tasks` until retried.
pub async fn ensure_dead_stream(bus: &Bus) -> Result<stream::Stream, BusError> {
    let name = dead_stream_name(bus);
    bus.jetstream
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.dead.>", bus.prefix())],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(30 * 24 * 3600),
            num_replicas: bus.replicas(),
            ..Default::default()
        })
        .await
        .map_err(|source| BusError::Stream { name, source })
}

/// The durable pull consumer of one task, shared by every worker that runs it. Each task has its
/// own (filtered on its subject), so a worker only receives tasks it knows (a worker of an older
/// declaration never takes a new task's runs), and one task's backlog never holds up another's.
pub async fn consumer(
    bus: &Bus,
    task: &str,
    ack_wait: Duration,
) -> Result<consumer::PullConsumer, BusError> {
    let stream = ensure_stream(bus).await?;
    let name = format!("{}_task_{}", bus.prefix(), task.replace('.', "_"));
    // One consumer for all tasks, as earlier releases made, would overlap every task's own.
    drop(
        stream
            .delete_consumer(&format!("{}_workers", bus.prefix()))
            .await,
    );
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subject(bus, task),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: MAX_DELIVER,
                ..Default::default()
            },
        )
        .await
        .map_err(|source| BusError::Consumer {
            name,
            source: source.into(),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the task could not be encoded")]
    Encode(#[from] serde_json::Error),
    #[error("the task stream did not accept the task")]
    Publish(#[source] async_nats::Error),
    #[error(transparent)]
    Store(#[from] herald_bus::store::StoreError),
}

/// Publishes runs durably: every publish is sent before the first ack is awaited, and the call
/// returns once JetStream has stored them all. A message names its run (id, name, tenant,
/// round, trace context); the worker reads the payload from the run's row, so no event is too
/// large for the stream. `Nats-Msg-Id` is `<id>.<round>`, so a run published twice in a round
/// is stored once.
pub async fn publish(bus: &Bus, runs: &[TaskRow]) -> Result<(), EnqueueError> {
    let mut acks = Vec::with_capacity(runs.len());
    for run in runs {
        let message = TaskEnvelope {
            payload: serde_json::Value::Null,
            ..TaskEnvelope::from(run)
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{}.{}", run.id, run.round).as_str());
        if let Some(traceparent) = &run.traceparent {
            headers.insert("traceparent", traceparent.as_str());
        }
        let payload = serde_json::to_vec(&message)?;
        acks.push(
            bus.jetstream
                .publish_with_headers(subject(bus, &run.name), headers, payload.into())
                .await
                .map_err(|e| EnqueueError::Publish(e.into()))?,
        );
    }
    for ack in acks {
        ack.await.map_err(|e| EnqueueError::Publish(e.into()))?;
    }
    Ok(())
}

/// Enqueues a run from code (a task without a trigger, or any task by hand): records it in the
/// outbox, which the trigger reader publishes within a second. Safe inside a transaction (the
/// run is published only once it is committed). A run whose id was enqueued before is not
/// enqueued again.
pub async fn enqueue(
    client: &impl tokio_postgres::GenericClient,
    task: &TaskEnvelope,
    max_attempts: i32,
) -> Result<(), EnqueueError> {
    runs::insert(
        client,
        &NewTask {
            id: task.id,
            tenant: &task.tenant,
            name: &task.name,
            payload: &task.payload,
            event_id: None,
            traceparent: task.traceparent.as_deref(),
            max_attempts,
        },
    )
    .await?;
    Ok(())
}
