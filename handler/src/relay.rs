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
use deadpool_postgres::ClientWrapper;
use tokio_util::sync::CancellationToken;
use tracing::info;

use herald_bus::nats::Bus;
use herald_bus::position::LogPosition;
use herald_bus::settings::{DatabaseSettings, RelaySettings};
use herald_bus::store::follow::{Follower, Step, follow};
use herald_bus::store::reader::{LogFilter, RELAY_CHECKPOINT, RecordedEvent};

/// The header carrying the event's position token on every relayed message.
pub const POSITION_HEADER: &str = "Herald-Position";
/// The header carrying the event's type.
pub const TYPE_HEADER: &str = "Herald-Event-Type";

const FOLLOWER_ROLE: &str = "the event relay";

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
    let follower = Follower {
        name: RELAY_CHECKPOINT,
        role: FOLLOWER_ROLE,
        filter: LogFilter::default(),
        batch_size: settings.batch_size,
        max_wait: None,
    };
    let mut publish = Publish {
        bus: &bus,
        stream,
        sequence: 0,
    };
    follow(&follower, &database, &mut publish, &shutdown).await;
    Ok(())
}

/// The relay's step: publish each event after the last one the stream holds.
struct Publish<'a> {
    bus: &'a Bus,
    stream: Stream,
    /// The stream's last sequence, which the next publish expects.
    sequence: u64,
}

impl Step for Publish<'_> {
    /// After the last event the stream holds or the checkpoint, whichever is further: a crash
    /// between a publish and its checkpoint republishes nothing.
    async fn resume(
        &mut self,
        _client: &mut ClientWrapper,
        checkpoint: LogPosition,
    ) -> anyhow::Result<LogPosition> {
        let (sequence, published) = stream_end(&self.stream).await?;
        self.sequence = sequence;
        info!(
            sequence,
            "the event relay resumes after the stream's last message"
        );
        Ok(published.map_or(checkpoint, |p| p.max(checkpoint)))
    }

    async fn handle(
        &mut self,
        _tx: &tokio_postgres::Transaction<'_>,
        events: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        // Pipelined: every publish is sent before the first ack is awaited.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert(POSITION_HEADER, event.position.token().as_str());
            headers.insert(TYPE_HEADER, event.event_type.as_str());
            if let Some(traceparent) = event.metadata.traceparent.as_deref() {
                headers.insert("traceparent", traceparent);
            }
            let publish = PublishMessage::build()
                .headers(headers)
                .payload(serde_json::to_vec(&event.published())?.into())
                .message_id(event.event_id.to_string())
                .expected_last_sequence(self.sequence);
            let subject = self.bus.event_subject(&event.tenant, &event.event_type);
            acks.push(self.bus.jetstream.send_publish(subject, publish).await?);
            self.sequence += 1;
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }
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
