//! The worker role: pulls tasks, runs them, acknowledges success, naks retryable failures with
//! an exponential back-off, and terminates permanent failures and unknown tasks.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use herald_bus::nats::{Bus, BusError, consume};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::queue::{MAX_DELIVER, consumer};
use crate::task::{TaskContext, TaskEnvelope, TaskError, TaskRegistry};

/// How long a run may go without acknowledging before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// The back-off before attempt `attempt + 1`: 1 s, 2 s, 4 s, … capped at a minute.
pub fn backoff(attempt: u64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(6);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(60))
}

/// Runs tasks until `shutdown`; tasks in flight see their context cancelled and finish.
pub async fn run(
    bus: Bus,
    registry: Arc<TaskRegistry>,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let consumer = consumer(&bus, ACK_WAIT).await?;
    info!(concurrency, "worker started");
    consume(&consumer, concurrency, &shutdown, |message| {
        let (registry, cancel) = (registry.clone(), shutdown.child_token());
        async move { run_one(&registry, message, cancel).await }
    })
    .await;
    info!("worker stopped");
    Ok(())
}

async fn run_one(registry: &TaskRegistry, message: Message, cancel: CancellationToken) {
    let attempt = message
        .info()
        .map_or(1, |info| info.delivered.unsigned_abs());
    let envelope: TaskEnvelope = match serde_json::from_slice(&message.payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            warn!(%error, "dropping an unreadable task");
            drop(message.ack_with(AckKind::Term).await);
            return;
        }
    };
    let Some(task) = registry.get(&envelope.name) else {
        warn!(task = %envelope.name, "no implementation registered for this task");
        drop(message.ack_with(AckKind::Term).await);
        return;
    };
    let task_id = envelope.id;
    let name = envelope.name.clone();
    let run = task.run(TaskContext {
        task: envelope,
        attempt,
        cancel,
    });
    tokio::pin!(run);
    // A long run tells JetStream it is still alive, so the task is not handed to a second
    // worker while this one works on it.
    let mut alive = tokio::time::interval(ACK_WAIT / 3);
    alive.tick().await;
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = alive.tick() => drop(message.ack_with(AckKind::Progress).await),
        }
    };
    let last_attempt = attempt >= MAX_DELIVER.unsigned_abs();
    let ack = match result {
        Ok(()) => AckKind::Ack,
        Err(TaskError::Retry(reason)) if last_attempt => {
            // JetStream would neither redeliver nor remove it: end it, visibly.
            error!(%task_id, task = %name, attempt, %reason, "task failed on its last attempt; giving up");
            AckKind::Term
        }
        Err(TaskError::Retry(reason)) => {
            warn!(%task_id, task = %name, attempt, %reason, "task failed; will retry");
            AckKind::Nak(Some(backoff(attempt)))
        }
        Err(TaskError::Permanent(reason)) => {
            warn!(%task_id, task = %name, attempt, %reason, "task failed permanently");
            AckKind::Term
        }
    };
    // Confirmed by the server: a lost nak would otherwise leave the task waiting out the ack
    // deadline instead of its back-off.
    if let Err(error) = message.double_ack_with(ack).await {
        warn!(%task_id, %error, "task acknowledgement failed; it may run again");
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(60));
    }
}
