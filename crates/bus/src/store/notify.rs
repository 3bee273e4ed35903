//! Wake-ups from appends: one connection LISTENs on [`EVENTS_CHANNEL`] and calls back with each
//! notification's collection. After a (re)connect it calls back with `None` ("anything may have
//! changed"), since appends may have happened while nobody listened. Readers still poll: a
//! notification is a hint, never the only way to learn of an event.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::reader::EVENTS_CHANNEL;
use crate::settings::DatabaseSettings;

const RECONNECT_DELAY: Duration = Duration::from_secs(1);

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
