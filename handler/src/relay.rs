//! The event relay: every committed event is published to `<PREFIX>_EVENTS` on
//! `<prefix>.evt.<tenant>.<app>.<doc>.<verb>`, in log order, exactly once.
//!
//! The relay reads the ordered log (so it never skips an event committed late) and holds a
//! lease, so one relay publishes at a time and a standby takes over. Exactly once, across a
//! crash at any point:
//!
//! - each publish carries `Nats-Expected-Last-Sequence`, so the stream only accepts events in
//!   order, directly after the previous one: a lost publish makes the ones after it fail too;
//! - on start (and after any failure) the relay resumes after the last event the stream holds
//!   (its `Herald-Position` header) or its checkpoint, whichever is further; a crash between a
//!   publish and the checkpoint therefore republishes nothing;
//! - `Nats-Msg-Id` is the event id, so JetStream's duplicate window is a second guard.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use herald_bus::nats::Bus;
use herald_bus::position::LogPosition;
use herald_bus::settings::{DatabaseSettings, RelaySettings};
use herald_bus::store::lease::{LeaseConnection, lease_key};
use herald_bus::store::notify;
use herald_bus::store::parked::{self, EventFailure, Poison};
use herald_bus::store::reader::{
    LogFilter, Pacing, RELAY_CHECKPOINT, load_checkpoint, read_batch, save_checkpoint,
};

/// The header carrying the event's position token on every relayed message.
pub const POSITION_HEADER: &str = "Herald-Position";
/// The header carrying the event's type.
pub const TYPE_HEADER: &str = "Herald-Event-Type";

const LEASE_RETRY: Duration = Duration::from_secs(1);
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Relays until `shutdown`.
pub async fn run(
    bus: Bus,
    database: DatabaseSettings,
    settings: RelaySettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stream = bus
        .ensure_events_stream(Duration::from_secs(settings.max_age_secs))
        .await?;
    let listener = TaskTracker::new();
    let mut wake = notify::wake_on_appends(database.clone(), None, &listener, shutdown.clone());
    listener.close();
    let mut poison = Poison::default();
    while !shutdown.is_cancelled() {
        let held = hold(
            &bus, &stream, &database, &settings, &mut wake, &shutdown, &poison,
        );
        if let Err(error) = held.await {
            let failure = error.downcast_ref::<EventFailure>();
            poison
                .back_off("the event relay", &error, failure, ERROR_BACKOFF, &shutdown)
                .await;
        }
    }
    listener.wait().await;
    Ok(())
}

/// Where the stream ends: its last sequence and the position of the event stored there.
async fn stream_end(stream: &Stream) -> anyhow::Result<(u64, Option<LogPosition>)> {
    let mut stream = stream.clone();
    let state = stream.info().await?.state.clone();
    if state.messages == 0 {
        return Ok((state.last_sequence, None));
    }
    let last = stream.get_raw_message(state.last_sequence).await?;
    let position = last
        .headers
        .get(POSITION_HEADER)
        .and_then(|v| LogPosition::parse(v.as_str()));
    Ok((state.last_sequence, position))
}

async fn hold(
    bus: &Bus,
    stream: &Stream,
    database: &DatabaseSettings,
    settings: &RelaySettings,
    wake: &mut watch::Receiver<u64>,
    shutdown: &CancellationToken,
    poison: &Poison,
) -> anyhow::Result<()> {
    let mut lease = LeaseConnection::open(database).await?;
    loop {
        if lease.try_take(lease_key(RELAY_CHECKPOINT)).await? {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(LEASE_RETRY) => {}
        }
    }
    let (mut sequence, published) = stream_end(stream).await?;
    let checkpoint = load_checkpoint(&**lease.client(), RELAY_CHECKPOINT).await?;
    let mut after = published.map_or(checkpoint, |p| p.max(checkpoint));
    info!(resume = %after, sequence, "event relay lease taken");
    let mut pacing = Pacing::default();
    loop {
        let batch = read_batch(
            lease.client(),
            after,
            &LogFilter::default(),
            settings.batch_size,
        )
        .await?;
        if !batch.events.is_empty() {
            // Pipelined: every publish is sent before the first ack is awaited.
            let mut acks = Vec::with_capacity(batch.events.len());
            for event in &batch.events {
                let mut headers = HeaderMap::new();
                headers.insert(POSITION_HEADER, event.position.token().as_str());
                headers.insert(TYPE_HEADER, event.event_type.as_str());
                if let Some(traceparent) = event.metadata["traceparent"].as_str() {
                    headers.insert("traceparent", traceparent);
                }
                let publish = PublishMessage::build()
                    .headers(headers)
                    .payload(serde_json::to_vec(&event.published())?.into())
                    .message_id(event.event_id.to_string())
                    .expected_last_sequence(sequence);
                acks.push(
                    bus.jetstream
                        .send_publish(bus.event_subject(&event.tenant, &event.event_type), publish)
                        .await?,
                );
                sequence += 1;
            }
            for ack in acks {
                ack.await?;
            }
            save_checkpoint(&**lease.client(), RELAY_CHECKPOINT, batch.checkpoint).await?;
        }
        after = batch.checkpoint;
        if let Some(failure) = &batch.unreadable {
            if !poison.exhausted(failure.position) {
                return Err(failure.clone().into());
            }
            let tx = lease.client().transaction().await?;
            let attempts = poison.attempts(failure.position);
            parked::park(&*tx, RELAY_CHECKPOINT, failure, attempts).await?;
            save_checkpoint(&*tx, RELAY_CHECKPOINT, failure.position).await?;
            tx.commit().await?;
            after = failure.position;
            continue;
        }
        if !batch.caught_up {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            continue;
        }
        let wait = pacing.wait(batch.held_back);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = wake.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
