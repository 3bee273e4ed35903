//! The leased log follower: the one loop behind the readers that must see every event of the
//! log once, in order, across crashes — the relay and the task triggers — each of which gives
//! only its [`Step`].
//!
//! A follower takes its reader's lease (a standby in another process waits for it), resumes
//! after its checkpoint, and reads the log in batches. Each batch's events go to the step in a
//! transaction that also saves the checkpoint, so what the step writes there and the checkpoint
//! commit together. An event it cannot read is retried with back-off and, once its attempts
//! are spent, parked ([`parked`]) in the same kind of transaction, and the reader goes on.
//! Caught up, it sleeps until an append wakes it (`LISTEN`) or a poll interval passes.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::ClientWrapper;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::lease::{LeaseConnection, lease_key};
use super::notify;
use super::parked::{self, EventFailure, Poison};
use super::reader::{
    LogFilter, Pacing, RecordedEvent, load_checkpoint, read_batch, save_checkpoint,
};
use crate::position::LogPosition;
use crate::settings::DatabaseSettings;

/// How long a standby waits between tries for the lease.
const LEASE_RETRY: Duration = Duration::from_secs(1);
/// The wait after a failure that is not about one event (the database or the bus is away).
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// How long a follower whose step stepped aside waits before contending again.
const STEP_ASIDE: Duration = Duration::from_secs(5);

/// What one reader reads.
pub struct Follower {
    /// The reader's checkpoint name, which also names its lease and its parked events.
    pub name: &'static str,
    /// How logs name the reader (`the event relay`).
    pub role: &'static str,
    pub filter: LogFilter,
    pub batch_size: i64,
    /// The longest sleep when caught up, for a step with work of its own to look at.
    pub max_wait: Option<Duration>,
}

/// What a step wants before the next read.
pub enum Turn {
    Read,
    /// Nothing to read for now: sleep, then ask again.
    Wait(Duration),
    /// Give the lease up for a while; the reason is logged.
    StepAside(String),
}

/// A reader's business: what it does with the events, and around the reads.
pub trait Step: Send {
    /// Where to resume once the lease is taken; `checkpoint` is the saved one.
    fn resume(
        &mut self,
        _client: &mut ClientWrapper,
        checkpoint: LogPosition,
    ) -> impl Future<Output = anyhow::Result<LogPosition>> + Send {
        async move { Ok(checkpoint) }
    }

    /// Runs before each read.
    fn before_read(
        &mut self,
        _client: &mut ClientWrapper,
    ) -> impl Future<Output = anyhow::Result<Turn>> + Send {
        async { Ok(Turn::Read) }
    }

    /// Handles a batch's events in `tx`, which then saves the checkpoint past them.
    fn handle(
        &mut self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[RecordedEvent],
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs when the reader has caught up, before it sleeps.
    fn caught_up(
        &mut self,
        _client: &mut ClientWrapper,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// How a spell holding the lease ended without error.
enum Held {
    Stopped,
    SteppedAside(String),
}

/// Follows the log with `step` until `shutdown`; a failure is logged, waited out and the lease
/// taken again.
pub async fn follow(
    follower: &Follower,
    database: &DatabaseSettings,
    step: &mut impl Step,
    shutdown: &CancellationToken,
) {
    let listener = TaskTracker::new();
    let mut wake = notify::wake_on_appends(database.clone(), None, &listener, shutdown.clone());
    listener.close();
    let mut poison = Poison::default();
    while !shutdown.is_cancelled() {
        let held = hold(follower, database, step, &mut wake, shutdown, &poison).await;
        match held {
            Ok(Held::Stopped) => {}
            Ok(Held::SteppedAside(reason)) => {
                warn!(reader = follower.name, "{reason}");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(STEP_ASIDE) => {}
                }
            }
            Err(error) => {
                let failure = error.downcast_ref::<EventFailure>();
                poison
                    .back_off(follower.role, &error, failure, ERROR_BACKOFF, shutdown)
                    .await;
            }
        }
    }
    listener.wait().await;
}

/// Waits for the lease; `None` when shutdown comes first.
async fn take_lease(
    name: &str,
    database: &DatabaseSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<LeaseConnection>> {
    let lease = LeaseConnection::open(database).await?;
    loop {
        if lease.try_take(lease_key(name)).await? {
            return Ok(Some(lease));
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(LEASE_RETRY) => {}
        }
    }
}

async fn hold(
    follower: &Follower,
    database: &DatabaseSettings,
    step: &mut impl Step,
    wake: &mut watch::Receiver<u64>,
    shutdown: &CancellationToken,
    poison: &Poison,
) -> anyhow::Result<Held> {
    let Some(mut lease) = take_lease(follower.name, database, shutdown).await? else {
        return Ok(Held::Stopped);
    };
    let checkpoint = load_checkpoint(&**lease.client(), follower.name).await?;
    let mut after = step.resume(lease.client(), checkpoint).await?;
    info!(reader = follower.name, resume = %after, "lease taken");
    let mut pacing = Pacing::default();
    loop {
        match step.before_read(lease.client()).await? {
            Turn::Read => {}
            Turn::Wait(wait) => {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(Held::Stopped),
                    () = tokio::time::sleep(wait) => continue,
                }
            }
            Turn::StepAside(reason) => return Ok(Held::SteppedAside(reason)),
        }
        let batch =
            read_batch(lease.client(), after, &follower.filter, follower.batch_size).await?;
        // An event that cannot be read is parked once its attempts are spent; until then the
        // events before it are handled and the reader fails on it.
        let park = batch
            .unreadable
            .as_ref()
            .filter(|failure| poison.exhausted(failure.position));
        let checkpoint = park.map_or(batch.checkpoint, |failure| failure.position);
        if !batch.events.is_empty() || checkpoint != after {
            let tx = lease.client().transaction().await?;
            step.handle(&tx, &batch.events).await?;
            if let Some(failure) = park {
                let attempts = poison.attempts(failure.position);
                parked::park(&*tx, follower.name, failure, attempts).await?;
            }
            save_checkpoint(&*tx, follower.name, checkpoint).await?;
            tx.commit().await?;
        }
        after = checkpoint;
        if let Some(failure) = batch.unreadable.as_ref().filter(|_| park.is_none()) {
            return Err(failure.clone().into());
        }
        if !batch.caught_up {
            if shutdown.is_cancelled() {
                return Ok(Held::Stopped);
            }
            continue;
        }
        step.caught_up(lease.client()).await?;
        let paced = pacing.wait(batch.held_back);
        let wait = follower.max_wait.map_or(paced, |most| paced.min(most));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Held::Stopped),
            _ = wake.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
