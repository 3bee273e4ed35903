//! The event store. [`EventStore`] is what the command handler needs; [`PgStore`] implements it
//! on PostgreSQL (the source of truth) and [`MemoryStore`] in memory for given/when/then tests
//! of decisions. The [`reader`] walks the global log in commit order without skipping; a
//! [`follow`]er is the leased, checkpointed loop of the readers that must see every event.

mod accept;
mod batch;
mod commit;
pub mod follow;
mod group;
pub mod lease;
mod memory;
mod migrate;
pub mod notify;
pub mod parked;
mod postgres;
pub mod reader;
mod rows;

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use group::GroupCounts;
pub use memory::MemoryStore;
pub use migrate::{MIGRATIONS, Migration, migrate};
pub use postgres::{Acceptance, PgStore};

use crate::command::{CommandEnvelope, Effect, Outcome, Rejection, StoredCommand};
use crate::document::{Change, DocumentState};
use crate::ids::{CommandId, TenantId};
use crate::position::LogPosition;

/// A value of a `unique` field, reserved per tenant and collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueValue {
    pub field: String,
    pub value: String,
}

/// A stream as loaded for a decision: its folded state and its last event's place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedStream {
    pub state: DocumentState,
    pub last_position: LogPosition,
}

/// Everything one command appends, written in one transaction.
#[derive(Debug)]
pub struct Commit<'a> {
    pub command: &'a CommandEnvelope,
    pub stream_id: &'a str,
    /// The version the decision was made on; 0 for a new stream.
    pub expected_version: i64,
    pub changes: &'a [Change],
    pub state: &'a DocumentState,
    pub reserve: &'a [UniqueValue],
    pub release: &'a [UniqueValue],
    pub effect: Effect,
    /// The stream's last position, reported when the command appends nothing.
    pub previous_position: Option<LogPosition>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer moved the stream since it was loaded; decide again.
    #[error("stream {stream_id} moved: expected version {expected}, found {actual:?}")]
    VersionConflict {
        stream_id: String,
        expected: i64,
        actual: Option<i64>,
    },
    /// A `unique` value is reserved by another document of the tenant.
    #[error("the value of `{field}` is already taken")]
    UniqueTaken { field: String },
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection available")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("stored {what} cannot be read or written as JSON")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the connection pool cannot be built")]
    PoolConfig(#[source] deadpool_postgres::BuildError),
    #[error("two migrations are numbered {0}")]
    DuplicateMigration(i32),
}

impl StoreError {
    /// Whether trying again can never help: unreadable stored data, or data the database
    /// refuses (SQLSTATE class 22, data exceptions). Everything else may be transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Corrupt(_) | StoreError::Decode { .. } => true,
            StoreError::Database(error) => error
                .code()
                .is_some_and(|code| code.code().starts_with("22")),
            _ => false,
        }
    }
}

/// The store operations the command handler needs.
///
/// ```no_run
/// # async fn example(store: herald_bus::store::MemoryStore, tenant: herald_bus::ids::TenantId) -> Result<(), herald_bus::store::StoreError> {
/// use herald_bus::store::EventStore;
/// let stream = store.load_stream(&tenant, "petstore.product.0190c4f2-0000-7000-8000-000000000000").await?;
/// assert!(stream.is_none());
/// # Ok(()) }
/// ```
pub trait EventStore: Send + Sync + 'static {
    fn load_command(
        &self,
        id: CommandId,
    ) -> impl Future<Output = Result<Option<StoredCommand>, StoreError>> + Send;

    fn load_stream(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<LoadedStream>, StoreError>> + Send;

    /// Several streams of one tenant at once, by stream id (missing ones are absent).
    fn load_streams(
        &self,
        tenant: &TenantId,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, LoadedStream>, StoreError>> + Send;

    /// Appends the events, the snapshot, the unique reservations and the command's outcome
    /// atomically. When the command was already completed (a redelivery), appends nothing and
    /// returns the stored outcome.
    fn commit(
        &self,
        commit: Commit<'_>,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;

    /// Records a rejection as the command's outcome (or returns the outcome already stored).
    fn reject(
        &self,
        command: &CommandEnvelope,
        rejection: Rejection,
    ) -> impl Future<Output = Result<Outcome, StoreError>> + Send;
}

/// A transaction id (`xid8`, read as text: the driver has no type for it).
pub fn parse_tx_id(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("transaction id `{text}`")))
}

/// What every event records besides its data: who caused it, through which command, in reply
/// to what, and the trace it belongs to. Fields an older event lacks read as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMetadata {
    pub command_id: Option<Uuid>,
    /// The command that started the chain (a task's command keeps its cause's).
    pub correlation_id: Option<Uuid>,
    /// The command or event this one answers; `None` for a command over HTTP.
    pub causation_id: Option<Uuid>,
    pub actor: Actor,
    pub idempotency_key: Option<String>,
    /// W3C `traceparent` of the request.
    pub traceparent: Option<String>,
    /// The fields the event set, when its data is something else (a Rust command's payload):
    /// folding applies these, so replay runs no command code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sets: Option<Map<String, Value>>,
}

/// Who caused an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Actor {
    /// The caller's `sub` (empty for an anonymous caller).
    pub sub: String,
    pub roles: Vec<String>,
    pub tenant: String,
}

impl EventMetadata {
    /// The metadata of every event `command` appends.
    pub fn of(command: &CommandEnvelope) -> Self {
        Self {
            command_id: Some(command.id.0),
            correlation_id: Some(command.correlation_id),
            causation_id: command.causation_id,
            actor: Actor {
                sub: command.principal.actor_sub().to_owned(),
                roles: command.principal.roles.clone(),
                tenant: command.principal.tenant.as_str().to_owned(),
            },
            idempotency_key: command.idempotency_key.clone(),
            traceparent: command.traceparent.clone(),
            sets: None,
        }
    }

    /// The metadata of the event `change` of `command`.
    pub fn of_change(command: &CommandEnvelope, change: &Change) -> Self {
        Self {
            sets: change.sets().cloned(),
            ..Self::of(command)
        }
    }
}

/// The stored type of an event: `<app>.<doc>.<verb>`.
pub fn event_type(command: &CommandEnvelope, change: &Change) -> String {
    command.collection().event_type(change.verb()).to_string()
}
