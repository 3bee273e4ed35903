//! The task stream (`HERALD_TASKS`, a work queue) and the consumer workers share.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{consumer, stream};
use herald_bus::nats::{Bus, BusError};

use crate::task::TaskEnvelope;

/// Attempts before a task is given up on.
pub const MAX_DELIVER: i64 = 5;

pub fn stream_name(bus: &Bus) -> String {
    format!("{}_TASKS", bus.prefix().to_uppercase())
}

pub fn subject(bus: &Bus, task: &str) -> String {
    format!("{}.task.{task}", bus.prefix())
}

pub async fn ensure_stream(bus: &Bus) -> Result<stream::Stream, BusError> {
    bus.ensure_work_queue(stream_name(bus), "task").await
}

pub async fn consumer(bus: &Bus, ack_wait: Duration) -> Result<consumer::PullConsumer, BusError> {
    let stream = ensure_stream(bus).await?;
    let name = format!("{}_workers", bus.prefix());
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
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
}

/// Publishes a task durably (the call returns once JetStream has stored it).
pub async fn enqueue(bus: &Bus, task: &TaskEnvelope) -> Result<(), EnqueueError> {
    ensure_stream(bus).await?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", task.id.to_string().as_str());
    let payload = serde_json::to_vec(task)?;
    bus.jetstream
        .publish_with_headers(subject(bus, &task.name), headers, payload.into())
        .await
        .map_err(|e| EnqueueError::Publish(e.into()))?
        .await
        .map_err(|e| EnqueueError::Publish(e.into()))?;
    Ok(())
}
