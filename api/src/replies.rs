//! Handlers answer on core NATS, to `<reply prefix>.<command id>`. One subscription per api
//! process receives them all and hands each to the request waiting for it, so a write costs no
//! subscription round trip of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use herald_bus::command::Outcome;
use herald_bus::ids::CommandId;
use herald_bus::nats::Bus;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

type Waiters = Arc<Mutex<HashMap<CommandId, oneshot::Sender<Outcome>>>>;

#[derive(Clone)]
pub struct ReplyRouter {
    prefix: String,
    waiters: Waiters,
}

/// A registered wait for one command's reply; unregisters itself when dropped.
pub struct Waiter {
    id: CommandId,
    waiters: Waiters,
    pub receiver: oneshot::Receiver<Outcome>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        lock(&self.waiters).remove(&self.id);
    }
}

fn lock(waiters: &Waiters) -> MutexGuard<'_, HashMap<CommandId, oneshot::Sender<Outcome>>> {
    waiters.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReplyRouter {
    /// Subscribes to this process's reply subjects and routes replies until `shutdown`.
    pub async fn start(
        bus: &Bus,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, async_nats::SubscribeError> {
        let prefix = bus.reply_prefix(&Uuid::new_v4().simple().to_string());
        let mut subscription = bus.client.subscribe(format!("{prefix}.*")).await?;
        let waiters: Waiters = Arc::default();
        let routed = waiters.clone();
        tracker.spawn(async move {
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => break,
                    message = subscription.next() => message,
                };
                let Some(message) = message else { break };
                let id = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .map(CommandId);
                let outcome = serde_json::from_slice::<Outcome>(&message.payload);
                if let (Some(id), Ok(outcome)) = (id, outcome)
                    && let Some(sender) = lock(&routed).remove(&id)
                {
                    drop(sender.send(outcome));
                }
            }
        });
        Ok(Self { prefix, waiters })
    }

    pub fn subject(&self, id: CommandId) -> String {
        format!("{}.{}", self.prefix, id.0)
    }

    /// Registers before publishing, so a fast reply can't arrive unheard.
    pub fn register(&self, id: CommandId) -> Waiter {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).insert(id, sender);
        Waiter {
            id,
            waiters: self.waiters.clone(),
            receiver,
        }
    }
}
