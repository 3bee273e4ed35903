//! The command-handler runtime: pulls commands from `HERALD_COMMANDS`, decides, appends and
//! replies. [`Handler::handle`] is the whole business step and runs against any
//! [`EventStore`]; [`run`] feeds it from JetStream.
//!
//! Ordering per message: commit, then reply, then acknowledge. A crash before the ack makes
//! JetStream redeliver; the stored outcome is then returned again and nothing is appended twice.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use rand::Rng;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use herald_bus::command::{CommandEnvelope, Outcome, Rejection, RejectionCode};
use herald_bus::decide::decide;
use herald_bus::nats::{Bus, BusError, REPLY_TO_HEADER, consume};
use herald_bus::references::{unresolved, with_unresolved};
use herald_bus::schema::Registry;
use herald_bus::store::{Commit, EventStore, StoreError};

/// Commands on one stream are handled one at a time per process (striped locks); across
/// processes, version conflicts make the loser decide again.
const STREAM_LOCK_STRIPES: usize = 256;

/// How long JetStream waits for an ack before redelivering to another handler.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Decides and appends commands against a store.
pub struct Handler<S> {
    store: S,
    registry: Arc<Registry>,
    max_conflict_retries: u32,
    stripes: Vec<Mutex<()>>,
}

impl<S: EventStore> Handler<S> {
    pub fn new(store: S, registry: Arc<Registry>, max_conflict_retries: u32) -> Self {
        Self {
            store,
            registry,
            max_conflict_retries,
            stripes: (0..STREAM_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Handles one command to its outcome. Errors are infrastructure failures only (the
    /// command is then retried); every business refusal is an `Outcome::Rejected`.
    #[tracing::instrument(skip_all, fields(command.id = %command.id, stream.id), err)]
    pub async fn handle(&self, command: &CommandEnvelope) -> Result<Outcome, StoreError> {
        // No look-up of the command first: `commit` and `reject` lock its row and return the
        // stored outcome of a redelivered command, so the common case costs no extra query.
        let Some(schema) = self.registry.get(&command.app, &command.doc) else {
            return self.store.reject(command, Rejection::not_found()).await;
        };
        let stream_id = schema.collection().stream(command.document_id);
        let stream = stream_id.as_str();
        tracing::Span::current().record("stream.id", stream);
        let _serialized = self.stripe(command, stream).lock().await;
        let mut attempt = 0;
        loop {
            let loaded = self
                .store
                .load_stream(&command.principal.tenant, stream)
                .await?;
            let current = loaded.as_ref().map(|l| &l.state);
            let decision = match decide(schema, current, command, Utc::now()) {
                Ok(decision) => decision,
                Err(mut rejection) => {
                    if rejection.code == RejectionCode::ValidationFailed {
                        let values = command.action.values();
                        let errors = std::mem::take(&mut rejection.errors);
                        rejection.errors = with_unresolved(
                            &self.store,
                            &self.registry,
                            &command.principal,
                            &schema.fields,
                            values,
                            errors,
                        )
                        .await?;
                    }
                    return self.store.reject(command, rejection).await;
                }
            };
            let missing = unresolved(
                &self.store,
                &self.registry,
                &command.principal,
                &decision.refs,
            )
            .await?;
            if !missing.is_empty() {
                return self
                    .store
                    .reject(command, Rejection::validation(missing))
                    .await;
            }
            let commit = Commit {
                command,
                stream_id: stream,
                expected_version: current.map_or(0, |s| s.version),
                changes: &decision.changes,
                state: &decision.state,
                reserve: &decision.reserve,
                release: &decision.release,
                effect: decision.effect,
                previous_position: loaded.as_ref().map(|l| l.last_position),
            };
            match self.store.commit(commit).await {
                Err(StoreError::VersionConflict { .. }) if attempt < self.max_conflict_retries => {
                    attempt += 1;
                    let jitter = rand::rng().random_range(1..=5u64 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                Err(StoreError::UniqueTaken { field }) => {
                    let rejection = Rejection {
                        code: RejectionCode::UniqueViolation,
                        detail: format!("another document already has this `{field}`"),
                        errors: Vec::new(),
                    };
                    return self.store.reject(command, rejection).await;
                }
                result => return result,
            }
        }
    }

    fn stripe(&self, command: &CommandEnvelope, stream: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        command.principal.tenant.hash(&mut hasher);
        stream.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % STREAM_LOCK_STRIPES as u64).unwrap_or(0);
        &self.stripes[index]
    }
}

/// Feeds the handler from JetStream until `shutdown`; commands in flight finish and are
/// acknowledged, any delivered after shutdown began go back to the queue at once.
pub async fn run<S: EventStore>(
    handler: Arc<Handler<S>>,
    bus: Bus,
    concurrency: usize,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let max_pending = i64::try_from(concurrency * 4).unwrap_or(i64::MAX);
    let consumer = bus.commands_consumer(ACK_WAIT, max_pending).await?;
    info!(concurrency, "command handler started");
    consume(&consumer, concurrency, &shutdown, |message| {
        let (handler, bus) = (handler.clone(), bus.clone());
        async move { process(&handler, &bus, message).await }
    })
    .await;
    drop(bus.client.flush().await);
    info!("command handler stopped");
    Ok(())
}

async fn process<S: EventStore>(handler: &Handler<S>, bus: &Bus, message: Message) {
    let command: CommandEnvelope = match serde_json::from_slice(&message.payload) {
        Ok(command) => command,
        Err(error) => {
            // Only Herald publishes here; an unreadable message can never succeed.
            error!(%error, subject = %message.subject, "dropping an unreadable command");
            drop(message.ack_with(AckKind::Term).await);
            return;
        }
    };
    let span = info_span!("command", command.id = %command.id, subject = %message.subject);
    async {
        match handler.handle(&command).await {
            Ok(outcome) => {
                reply(bus, &message, &outcome).await;
                if let Err(error) = message.double_ack().await {
                    warn!(%error, "ack failed; the command will be redelivered and answered from its stored outcome");
                }
            }
            Err(error) if error.is_permanent() => {
                // Retrying would fail the same way, forever; park it for an operator instead.
                error!(error = format!("{error:#}"), "command cannot be handled; it stays accepted and is not retried");
                drop(message.double_ack_with(AckKind::Term).await);
            }
            Err(error) => {
                warn!(%error, "command not handled; it will be retried");
                drop(message.double_ack_with(AckKind::Nak(Some(Duration::from_millis(500)))).await);
            }
        }
    }
    .instrument(span)
    .await;
}

async fn reply(bus: &Bus, message: &Message, outcome: &Outcome) {
    let Some(reply_to) = message
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_TO_HEADER))
        .map(|v| v.as_str().to_owned())
    else {
        return;
    };
    match serde_json::to_vec(outcome) {
        Ok(payload) => {
            if let Err(error) = bus.client.publish(reply_to, payload.into()).await {
                warn!(%error, "reply not sent; the api will read the outcome from the store");
            }
        }
        Err(error) => error!(%error, "outcome not serializable"),
    }
}
