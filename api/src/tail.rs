//! Event streams: one shared tail of the log per api process, fanned out to subscribers.
//!
//! The [`EventTail`] reads the ordered log (gap-free, see `herald_bus::store::reader`) from the
//! moment the process starts and broadcasts every event; no subscriber polls Postgres while it
//! is live. A subscriber that resumes from a position first catches up from Postgres, then
//! switches to the broadcast: it subscribes *before* catching up, and skips broadcast events at
//! or before the last position it delivered, so the switch has neither a gap nor a duplicate.
//!
//! Every event is checked against the subscriber's rights before it is sent: tenant, the
//! collection's `read` ACL (with the document's creator for `owner`), and the field ACL (hidden
//! fields are removed from `data`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::Pool;
use herald_bus::access::{Ownership, Principal};
use herald_bus::position::LogPosition;
use herald_bus::schema::{AclAction, Registry};
use herald_bus::settings::DatabaseSettings;
use herald_bus::store::notify;
use herald_bus::store::reader::{Batch, LogFilter, Pacing, RecordedEvent, frontier, read_batch};
use herald_bus::supervise::{RoleHealth, supervise};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Events read per query by the tail and by catch-up reads.
const READ_BATCH: i64 = 500;
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// The process-wide tail of the log.
#[derive(Clone)]
pub struct EventTail {
    events: broadcast::Sender<Arc<TailEvent>>,
}

/// An event of the live tail with the bodies rendered for it so far.
///
/// Why: every subscriber would otherwise copy, redact and serialize each event itself, and
/// with a thousand subscribers that is a thousand serializations per event. What a subscriber
/// may see of an event depends only on [`Rights`], so subscribers with the same rights share
/// one rendering, made by the first of them to get there.
pub struct TailEvent {
    pub event: RecordedEvent,
    renderings: Mutex<Vec<(Rights, Option<Bytes>)>>,
}

/// Everything about a subscriber that decides what it sees of an event it selected: whether
/// it is signed in, its roles (they give its rank and custom roles), and whether it created
/// the document (the `owner` role).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rights {
    signed_in: bool,
    owner: bool,
    roles: Vec<String>,
}

impl TailEvent {
    fn new(event: RecordedEvent) -> Self {
        Self {
            event,
            renderings: Mutex::new(Vec::new()),
        }
    }

    /// The event as `selection` sees it, as Server-Sent Events text, rendered once per
    /// distinct [`Rights`] and shared by the subscribers that hold them.
    fn rendered(&self, registry: &Registry, selection: &Selection) -> Option<Bytes> {
        let principal = &selection.principal;
        let owner = self
            .event
            .created_by
            .as_deref()
            .is_some_and(|creator| principal.owns(creator));
        let same = |rights: &Rights| {
            rights.signed_in == principal.sub.is_some()
                && rights.owner == owner
                && rights.roles == principal.roles
        };
        let mut renderings = self
            .renderings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, body)) = renderings.iter().find(|(rights, _)| same(rights)) {
            return body.clone();
        }
        let body = selection
            .visible(registry, &self.event)
            .map(|body| ready_frame(&self.event, &body));
        let rights = Rights {
            signed_in: principal.sub.is_some(),
            owner,
            roles: principal.roles.clone(),
        };
        renderings.push((rights, body.clone()));
        body
    }
}

impl EventTail {
    /// Starts tailing from the current frontier; `buffer` events are kept per subscriber.
    pub async fn start(
        pool: Pool,
        database: DatabaseSettings,
        buffer: usize,
        background: &TaskTracker,
        shutdown: CancellationToken,
        health: RoleHealth,
    ) -> anyhow::Result<Self> {
        let start = {
            let client = pool.get().await?;
            frontier(&**client).await?
        };
        let (events, _) = broadcast::channel(buffer);
        let wake = notify::wake_on_appends(database, None, background, shutdown.clone());
        // Restarted where it stopped if it fails: subscribers skip what they already have.
        let reached = Arc::new(Mutex::new(start));
        let sender = events.clone();
        let stop = shutdown.clone();
        background.spawn(async move {
            let run = supervise("event tail", health, stop, move || {
                let (pool, events, reached) = (pool.clone(), sender.clone(), reached.clone());
                let (wake, shutdown) = (wake.clone(), shutdown.clone());
                async move {
                    tail(pool, events, reached, wake, shutdown).await;
                    Ok(())
                }
            });
            if let Err(error) = run.await {
                warn!(error = format!("{error:#}"), "the event tail stopped");
            }
        });
        Ok(Self { events })
    }

    /// A live subscription: the receiver sees every event the tail broadcasts from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TailEvent>> {
        self.events.subscribe()
    }
}

async fn tail(
    pool: Pool,
    events: broadcast::Sender<Arc<TailEvent>>,
    reached: Arc<Mutex<LogPosition>>,
    mut wake: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let mut after = *reached.lock().unwrap_or_else(PoisonError::into_inner);
    let filter = LogFilter {
        creators: true,
        ..LogFilter::default()
    };
    let mut pacing = Pacing::default();
    while !shutdown.is_cancelled() {
        let step = async {
            let mut client = pool.get().await?;
            // Nobody listens: move to the end of the log without reading events. The end is
            // read before the check, so a subscriber arriving after it (which starts at the end
            // as it finds it then, no earlier) misses nothing.
            let end = frontier(&**client).await?;
            if events.receiver_count() == 0 {
                return anyhow::Ok(Batch {
                    events: Vec::new(),
                    unreadable: None,
                    checkpoint: end.max(after),
                    caught_up: true,
                    held_back: false,
                });
            }
            anyhow::Ok(read_batch(&mut client, after, &filter, READ_BATCH).await?)
        };
        let batch = match step.await {
            Ok(batch) => batch,
            Err(error) => {
                warn!(
                    error = format!("{error:#}"),
                    "event tail cannot read the log; retrying"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(ERROR_BACKOFF) => continue,
                }
            }
        };
        // An event that cannot be read is not broadcast: every subscriber passes over it.
        after = batch.past_unreadable("event tail");
        for event in batch.events {
            // No subscriber is not an error: the event is simply not needed.
            drop(events.send(Arc::new(TailEvent::new(event))));
        }
        *reached.lock().unwrap_or_else(PoisonError::into_inner) = after;
        if !batch.caught_up {
            continue;
        }
        let wait = pacing.wait(batch.held_back);
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = wake.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Which events a subscription or page covers, and whose rights apply.
#[derive(Debug, Clone)]
pub struct Selection {
    pub principal: Principal,
    /// One collection (`petstore.product`), or all.
    pub collection: Option<String>,
    /// One stream (`petstore.product.<id>`), or all.
    pub stream_id: Option<String>,
    pub types: Option<Vec<String>>,
}

impl Selection {
    /// The same selection as a log filter (the caller's tenant included).
    pub fn filter(&self) -> LogFilter {
        LogFilter {
            tenant: Some(self.principal.tenant.as_str().to_owned()),
            collection: self.collection.clone(),
            stream_id: self.stream_id.clone(),
            types: self.types.clone(),
            creators: true,
        }
    }

    /// The event as this subscriber may see it, or `None` when it is not selected or not
    /// readable: another tenant, a hidden collection or document. Hidden fields are removed
    /// from `data`, even if nothing visible remains.
    pub fn view(&self, registry: &Registry, event: &RecordedEvent) -> Option<Value> {
        if !self.selects(event) {
            return None;
        }
        self.visible(registry, event)
    }

    /// Whether the event is of the tenant and in the collection, stream and types asked for.
    fn selects(&self, event: &RecordedEvent) -> bool {
        event.tenant == self.principal.tenant.as_str()
            && self
                .collection
                .as_ref()
                .is_none_or(|c| *c == event.collection)
            && self
                .stream_id
                .as_ref()
                .is_none_or(|s| *s == event.stream_id)
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&event.event_type))
    }

    /// A selected event as the principal may see it, or `None` when its collection or
    /// document is hidden from them.
    fn visible(&self, registry: &Registry, event: &RecordedEvent) -> Option<Value> {
        let schema = registry.named(&event.collection)?;
        // Unknown creator: nobody is its owner (the empty subject matches no token).
        let owner = Ownership::CreatedBy(event.created_by.as_deref().unwrap_or_default());
        if !self
            .principal
            .may(schema.acl.roles(&AclAction::Read), owner)
        {
            return None;
        }
        let mut data = event.data.clone();
        if let Value::Object(fields) = &mut data {
            self.principal.redact(&schema.fields, fields, owner);
        }
        Some(event.wire(data))
    }

    /// An event read from the log, ready to send to this subscriber, if it may see it.
    fn delivery(&self, registry: &Registry, event: &RecordedEvent) -> Option<ReadyEvent> {
        Some(ReadyEvent {
            frame: ready_frame(event, &self.view(registry, event)?),
        })
    }

    /// A live event, ready to send to this subscriber, if it may see it.
    fn live_delivery(&self, registry: &Registry, live: &TailEvent) -> Option<ReadyEvent> {
        if !self.selects(&live.event) {
            return None;
        }
        Some(ReadyEvent {
            frame: live.rendered(registry, self)?,
        })
    }
}

/// One readable event, ready to send.
#[derive(Debug, Clone)]
pub struct ReadyEvent {
    /// The event as Server-Sent Events text (its position as `id`), shared by the subscribers
    /// that see it alike.
    pub frame: Bytes,
}

/// An event's frame, with `body` as what the subscriber may see of it.
fn ready_frame(event: &RecordedEvent, body: &Value) -> Bytes {
    crate::sse::frame(
        Some(&event.position.token()),
        &event.event_type,
        &body.to_string(),
    )
}

/// What ends a subscription other than the client leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The subscriber fell further behind the live tail than its buffer holds.
    Lagged,
    /// The api is shutting down.
    Shutdown,
}

/// Runs `attempt` until it succeeds, backing off after each failure; `None` on shutdown.
async fn until_done<T, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            result = attempt() => match result {
                Ok(value) => return Some(value),
                Err(error) => warn!(error = format!("{error:#}"), "event stream cannot {what}; retrying"),
            },
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(ERROR_BACKOFF) => {}
        }
    }
}

/// Feeds a subscriber: catch-up from `after` (when given), then live events, each checked with
/// `selection`, into `send` (which waits while the subscriber is slow). Returns why it ended,
/// or `None` when the subscriber went away.
pub async fn follow<F, Fut>(
    pool: &Pool,
    registry: &Registry,
    tail: &EventTail,
    selection: &Selection,
    after: Option<LogPosition>,
    shutdown: &CancellationToken,
    mut send: F,
) -> Option<Ending>
where
    F: FnMut(ReadyEvent) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let filter = selection.filter();
    let mut live = tail.subscribe();
    // Live-only subscriptions start at the log's end now, even if the tail is a little behind.
    let mut last = match after {
        Some(after) => after,
        None => {
            let end = until_done(shutdown, "read the log's end", || async {
                let client = pool.get().await?;
                anyhow::Ok(frontier(&**client).await?)
            });
            match end.await {
                Some(end) => end,
                None => return Some(Ending::Shutdown),
            }
        }
    };
    let mut catch_up = after.is_some();
    loop {
        if catch_up {
            // Read what the log holds after `last`; the broadcast buffers meanwhile.
            loop {
                let read = until_done(shutdown, "catch up", || async {
                    let mut client = pool.get().await?;
                    anyhow::Ok(read_batch(&mut client, last, &filter, READ_BATCH).await?)
                });
                let Some(batch) = read.await else {
                    return Some(Ending::Shutdown);
                };
                for event in &batch.events {
                    if let Some(delivery) = selection.delivery(registry, event)
                        && !send(delivery).await
                    {
                        return None;
                    }
                }
                last = batch.past_unreadable("event stream");
                if batch.caught_up {
                    break;
                }
            }
        }
        // Live: a lag right after catching up means the catch-up was long, not that the
        // subscriber is slow, so it catches up again; later, a lag ends the subscription.
        let mut fresh = true;
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return Some(Ending::Shutdown),
                received = live.recv() => received,
            };
            match received {
                Ok(live) => {
                    fresh = false;
                    if live.event.position <= last {
                        continue;
                    }
                    last = live.event.position;
                    if let Some(delivery) = selection.live_delivery(registry, &live)
                        && !send(delivery).await
                    {
                        return None;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) if fresh => {
                    live = live.resubscribe();
                    catch_up = true;
                    break;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(Ending::Lagged),
                Err(broadcast::error::RecvError::Closed) => return Some(Ending::Shutdown),
            }
        }
    }
}
