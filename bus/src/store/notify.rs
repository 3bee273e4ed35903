//! Wake-ups from appends: an [`Announcer`] sends a notification on [`EVENTS_CHANNEL`] after
//! appends commit, and one connection LISTENs on it and calls back with each
//! notification's collection. After a (re)connect it calls back with `None` ("anything may have
//! changed"), since appends may have happened while nobody listened. Readers still poll: a
//! notification is a hint, never the only way to learn of an event.

use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Pool};
use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::StoreError;
use super::batch::Batcher;
use super::reader::EVENTS_CHANNEL;
use crate::settings::DatabaseSettings;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Most collections announced in one round.
const ANNOUNCE_BATCH: usize = 256;

/// Announces appends to the listeners, after their transactions committed.
///
/// Why not `pg_notify` inside the append transaction: Postgres serializes the commits of all
/// transactions that notify on one lock, held through the WAL flush, so every append would
/// wait for the flush of the one before it and group commit would never happen. Here a task
/// sends the notifications on its own, in rounds: appends that commit while one round is
/// being sent are announced together in the next, one notification per collection.
#[derive(Clone)]
pub struct Announcer {
    /// Absent outside a runtime: nothing is announced and readers rely on polling alone.
    rounds: Option<Batcher<String>>,
}

impl Announcer {
    /// Starts the one announcing task on the current runtime; it ends when the last clone of
    /// the announcer is dropped.
    pub fn start(pool: Pool) -> Self {
        let rounds = Batcher::start(1, ANNOUNCE_BATCH, move |mut collections: Vec<String>| {
            let pool = pool.clone();
            async move {
                collections.sort_unstable();
                collections.dedup();
                if let Err(error) = notify(&pool, &collections).await {
                    // A lost notification delays readers until their next poll; nothing more.
                    debug!(%error, "append notifications not sent");
                }
            }
        });
        Self { rounds }
    }

    /// Announces that events of `collection` were committed.
    pub fn appended(&self, collection: String) {
        if let Some(rounds) = &self.rounds {
            // Only refused when the task is gone: readers still poll.
            drop(rounds.push(collection));
        }
    }
}

async fn notify(pool: &Pool, collections: &[String]) -> anyhow::Result<()> {
    let client = pool.get().await?;
    announce(&client, collections).await?;
    Ok(())
}

/// Wakes the readers of `collections` now, as appends to them would. Appends go through an
/// [`Announcer`]; this is for news that is not an append, such as an operator's request to
/// replay parked events, which the views' runners look for when woken.
pub async fn announce(client: &ClientWrapper, collections: &[String]) -> Result<(), StoreError> {
    // One statement, so one transaction, for the whole round.
    let statement = client
        .prepare_cached(&format!(
            "SELECT pg_notify('{EVENTS_CHANNEL}', c) FROM unnest($1::text[]) AS c"
        ))
        .await?;
    client.execute(&statement, &[&collections]).await?;
    Ok(())
}

/// A counter that moves on every append to `collection` (to any collection when `None`) and
/// after every reconnect: what a single reader waits on between reads. The listener runs on
/// `tracker` until `shutdown`.
pub fn wake_on_appends(
    database: DatabaseSettings,
    collection: Option<String>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> watch::Receiver<u64> {
    let waker = watch::Sender::new(0u64);
    let wake = waker.subscribe();
    tracker.spawn(listen(
        database,
        move |appended| {
            let wanted = match (&collection, appended) {
                (Some(wanted), Some(appended)) => wanted == appended,
                _ => true,
            };
            if wanted {
                waker.send_modify(|n| *n = n.wrapping_add(1));
            }
        },
        shutdown,
    ));
    wake
}

/// Listens until `shutdown`, reconnecting after failures.
pub async fn listen(
    database: DatabaseSettings,
    wake: impl Fn(Option<&str>) + Send,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Err(error) = listen_once(&database, &wake, &shutdown).await {
            warn!(
                error = format!("{error:#}"),
                "event notifications lost; reconnecting"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

async fn listen_once(
    database: &DatabaseSettings,
    wake: &(impl Fn(Option<&str>) + Send),
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (client, mut connection) = database.pg_config()?.connect(NoTls).await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {EVENTS_CHANNEL}");
    let listen = client.batch_execute(&statement);
    // The connection must be polled for the LISTEN to complete.
    tokio::pin!(listen);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = &mut listen => { result?; break; }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => anyhow::bail!("connection closed"),
            },
        }
    }
    wake(None);
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = messages.next() => message,
        };
        match message {
            Some(Ok(AsyncMessage::Notification(note))) => wake(Some(note.payload())),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("connection closed"),
        }
    }
}
