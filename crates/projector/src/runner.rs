//! The projector role: one loop per view, woken by `pg_notify` from appends, with a polling
//! fallback for lost notifications and a quick re-read while events are held back behind an
//! older open transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use herald_bus::schema::Registry;
use herald_bus::settings::DatabaseSettings;
use herald_bus::store::reader::EVENTS_CHANNEL;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::apply::try_project_next;
use crate::table::ViewTable;

/// Events applied per transaction.
const BATCH_SIZE: i64 = 500;
/// Re-read at least this often even without a notification.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Back-off while the database is unreachable or an event cannot be applied.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Projects every view until `shutdown`; the tables exist already ([`crate::ensure_view`],
/// run by the process set-up before any role starts).
pub async fn run(
    pool: Pool,
    database: DatabaseSettings,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let views: Vec<ViewTable> = registry
        .documents()
        .map(|schema| ViewTable::new(schema.clone()))
        .collect();
    let wakers: Arc<HashMap<String, Arc<Notify>>> = Arc::new(
        views
            .iter()
            .map(|v| (v.schema.collection(), Arc::new(Notify::new())))
            .collect(),
    );
    let tracker = TaskTracker::new();
    tracker.spawn(listen(database, wakers.clone(), shutdown.clone()));
    for view in views {
        let waker = wakers
            .get(&view.schema.collection())
            .cloned()
            .unwrap_or_default();
        let span = info_span!("projection", projection = %view.projection);
        tracker.spawn(project(pool.clone(), view, waker, shutdown.clone()).instrument(span));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn project(pool: Pool, view: ViewTable, waker: Arc<Notify>, shutdown: CancellationToken) {
    info!("projection started");
    let mut held_back_delay = Duration::from_millis(1);
    loop {
        let step = async {
            let mut client = pool.get().await.map_err(anyhow::Error::from)?;
            try_project_next(&mut client, &view, BATCH_SIZE)
                .await
                .map_err(anyhow::Error::from)
        };
        let wait = match step.await {
            Ok(progress) if !progress.caught_up => {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            Ok(progress) if progress.held_back => {
                held_back_delay = (held_back_delay * 2).min(Duration::from_millis(50));
                held_back_delay
            }
            Ok(_) => {
                held_back_delay = Duration::from_millis(1);
                POLL_INTERVAL
            }
            Err(error) => {
                warn!(
                    error = format!("{error:#}"),
                    "projection step failed; retrying"
                );
                // Back off for real: new appends must not turn a failing step into a busy loop.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ERROR_BACKOFF) => continue,
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = waker.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    info!("projection stopped");
}

/// Holds one connection that LISTENs for appends and wakes the view of the collection named in
/// each notification. Reconnects after failures; polling covers the gap.
async fn listen(
    database: DatabaseSettings,
    wakers: Arc<HashMap<String, Arc<Notify>>>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        if let Err(error) = listen_once(&database, &wakers, &shutdown).await {
            warn!(
                error = format!("{error:#}"),
                "event notifications lost; reconnecting"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(ERROR_BACKOFF) => {}
        }
    }
}

async fn listen_once(
    database: &DatabaseSettings,
    wakers: &HashMap<String, Arc<Notify>>,
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
    // Wake everyone once: events may have been appended while we were not listening.
    wakers.values().for_each(|w| w.notify_one());
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = messages.next() => message,
        };
        match message {
            Some(Ok(AsyncMessage::Notification(note))) => {
                if let Some(waker) = wakers.get(note.payload()) {
                    waker.notify_one();
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => anyhow::bail!("connection closed"),
        }
    }
}
