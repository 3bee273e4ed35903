//! The gap-free ordered reader of the global log.
//!
//! Positions are taken from a sequence before commit, so a reader that asks for
//! "position > checkpoint" can pass over an event whose transaction commits later. Instead,
//! events are read in `(tx_id, position)` order and only from transactions below the
//! snapshot's `xmin`: every such transaction has finished, so nothing can appear behind a
//! checkpoint later. (The technique Emmett uses.)

use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::parked::{EventFailure, Stage};
use super::{EventMetadata, StoreError, parse_tx_id};
use crate::document::{Change, DocumentState, FoldError, Stamp, apply};
use crate::position::LogPosition;
use crate::telemetry::error_chain;

/// The notification channel appends signal on (payload: the collection).
pub const EVENTS_CHANNEL: &str = "herald_events";

/// One event as read from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: LogPosition,
    pub event_id: Uuid,
    pub tenant: String,
    pub stream_id: String,
    pub collection: String,
    pub document_id: Uuid,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// Who created the document, when the read asked for it ([`LogFilter::creators`]): what
    /// `owner` access checks need.
    pub created_by: Option<String>,
}

/// Why a stored event cannot be folded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("event {event_id} has a type no document knows: {event_type}")]
    UnknownEventType { event_id: Uuid, event_type: String },
    #[error("event {event_id} ({event_type}) cannot be applied")]
    Unapplicable {
        event_id: Uuid,
        event_type: String,
        #[source]
        source: FoldError,
    },
}

impl RecordedEvent {
    /// The document after this event, given the state before it: the one fold of
    /// [`crate::document::apply`], for views and history alike.
    pub fn fold(&self, before: Option<DocumentState>) -> Result<DocumentState, ReplayError> {
        let change = Change::from_stored(&self.event_type, &self.data, self.metadata.sets.as_ref())
            .ok_or_else(|| ReplayError::UnknownEventType {
                event_id: self.event_id,
                event_type: self.event_type.clone(),
            })?;
        let stamp = Stamp {
            version: self.version,
            at: self.recorded_at,
            by: &self.metadata.actor.sub,
        };
        apply(before, self.document_id, &change, stamp).map_err(|source| {
            ReplayError::Unapplicable {
                event_id: self.event_id,
                event_type: self.event_type.clone(),
                source,
            }
        })
    }

    /// The event as `HERALD_EVENTS` and task runs carry it: the [`Self::wire`] form with all
    /// of `data`, the tenant, and the ids of the command behind it.
    pub fn published(&self) -> Value {
        let mut body = self.wire(self.data.clone());
        body["tenant"] = self.tenant.clone().into();
        body["metadata"] = serde_json::json!({
            "command_id": self.metadata.command_id,
            "correlation_id": self.metadata.correlation_id,
            "causation_id": self.metadata.causation_id,
        });
        body
    }

    /// The event as clients see it (SSE, event pages, `HERALD_EVENTS`), with `data` given
    /// (redacted for the reader, where it must be).
    pub fn wire(&self, data: Value) -> Value {
        let actor = &self.metadata.actor;
        serde_json::json!({
            "id": self.event_id,
            "type": self.event_type,
            "stream": self.stream_id,
            "document_id": self.document_id,
            "version": self.version,
            "position": self.position,
            "time": self.recorded_at,
            "actor": {"sub": actor.sub, "roles": actor.roles},
            "data": data,
        })
    }
}

/// The columns [`recorded`] reads, in its order.
const EVENT_COLUMNS: &str = "e.position, e.tx_id::text, e.event_id, e.tenant, e.stream_id, \
     e.collection, e.document_id, e.version, e.type, e.schema_version, e.data, e.metadata, \
     e.recorded_at";

/// An event row ([`EVENT_COLUMNS`], then the creator or `NULL`).
fn recorded(row: &tokio_postgres::Row) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position: position_of(row)?,
        event_id: row.try_get(2)?,
        tenant: row.try_get(3)?,
        stream_id: row.try_get(4)?,
        collection: row.try_get(5)?,
        document_id: row.try_get(6)?,
        version: row.try_get(7)?,
        event_type: row.try_get(8)?,
        schema_version: row.try_get(9)?,
        data: row.try_get(10)?,
        metadata: row.try_get::<_, Json<EventMetadata>>(11)?.0,
        recorded_at: row.try_get(12)?,
        created_by: row.try_get(13)?,
    })
}

fn position_of(row: &tokio_postgres::Row) -> Result<LogPosition, StoreError> {
    Ok(LogPosition {
        tx_id: parse_tx_id(row.try_get(1)?)?,
        position: row.try_get(0)?,
    })
}

/// An event row that [`recorded`] cannot decode, as a failure: what can be read of it, and why.
fn unreadable(row: &tokio_postgres::Row, error: &StoreError) -> Result<EventFailure, StoreError> {
    Ok(EventFailure {
        position: position_of(row)?,
        event_id: row.try_get(2).ok(),
        event_type: row.try_get(8).ok(),
        collection: row.try_get(5).ok(),
        stage: Stage::Read,
        error: error_chain(error),
    })
}

/// Decodes event rows in order up to the first that cannot be: the events before it, and that
/// one as a failure.
fn decode(
    rows: &[tokio_postgres::Row],
) -> Result<(Vec<RecordedEvent>, Option<EventFailure>), StoreError> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        match recorded(row) {
            Ok(event) => events.push(event),
            Err(error) => return Ok((events, Some(unreadable(row, &error)?))),
        }
    }
    Ok((events, None))
}

/// The events of the stream that holds the event at `at`, up to `until`, in log order: what a
/// view that has read the log up to `until` folds into that document's row. Log order rather
/// than version order, because that is the order a view (and a rebuild of it) applies them in.
/// The inner `Err` is the first row that cannot be decoded; no events when `at` holds none.
pub async fn read_stream_of(
    client: &impl GenericClient,
    at: LogPosition,
    until: LogPosition,
) -> Result<Result<Vec<RecordedEvent>, EventFailure>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, NULL::text
         FROM herald.events e
         WHERE (e.tenant, e.stream_id) = (SELECT tenant, stream_id FROM herald.events
                                          WHERE tx_id = $1::text::xid8 AND position = $2)
           AND (e.tx_id, e.position) <= ($3::text::xid8, $4)
         ORDER BY e.tx_id, e.position"
    );
    let rows = client
        .query(
            &sql,
            &[
                &at.tx_text(),
                &at.position,
                &until.tx_text(),
                &until.position,
            ],
        )
        .await?;
    let (events, unreadable) = decode(&rows)?;
    Ok(unreadable.map_or(Ok(events), Err))
}

/// Every event of one stream, by version, with the document's creator.
pub async fn read_stream(
    client: &impl GenericClient,
    tenant: &str,
    stream_id: &str,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, s.created_by
         FROM herald.events e
         JOIN herald.streams s ON s.tenant = e.tenant AND s.stream_id = e.stream_id
         WHERE e.tenant = $1 AND e.stream_id = $2
         ORDER BY e.version"
    );
    client
        .query(&sql, &[&tenant, &stream_id])
        .await?
        .iter()
        .map(recorded)
        .collect()
}

/// Which events a read returns. Every condition is a bind parameter.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub tenant: Option<String>,
    pub collection: Option<String>,
    pub stream_id: Option<String>,
    /// Full type names (`petstore.product.updated`); `None` means every type.
    pub types: Option<Vec<String>>,
    /// Also read each document's creator.
    pub creators: bool,
}

impl LogFilter {
    pub fn collection(collection: impl Into<String>) -> Self {
        Self {
            collection: Some(collection.into()),
            ..Self::default()
        }
    }
}

/// A batch of the log after some position.
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<RecordedEvent>,
    /// The batch stopped at an event whose row cannot be decoded: it comes right after
    /// `events`, and [`Batch::checkpoint`] stops before it. A reader that must see every event
    /// parks it ([`super::parked`]); the others pass over it ([`Batch::past_unreadable`]).
    pub unreadable: Option<EventFailure>,
    /// Where the next read starts: the last event read, or, when the batch reached the safe
    /// frontier, the frontier itself (so a filtered reader moves on even without matches).
    pub checkpoint: LogPosition,
    /// The read reached the safe frontier: there is nothing more to read for now.
    pub caught_up: bool,
    /// Committed events exist beyond the frontier, held back by an older open transaction:
    /// read again soon rather than waiting for the next notification.
    pub held_back: bool,
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// The safe frontier of the statement's snapshot, as SQL: in a `REPEATABLE READ` transaction
/// every statement sees the same snapshot, so statements that use it can be sent together.
const FRONTIER: &str = "pg_snapshot_xmin(pg_current_snapshot())";

impl LogFilter {
    /// The `WHERE` and `ORDER BY` of a read after the position `after` (two SQL expressions:
    /// transaction id and position), below the safe frontier when `below_frontier`, with the
    /// filter's parameters appended to `params`. Only the present parts appear, and the
    /// equality columns lead the order, so each combination is its own statement that walks
    /// its index in log order — `(tenant, collection, tx_id, position)`,
    /// `(collection, …)`, `(tenant, …)` or the stream's key — rather than one generic plan that
    /// scans the whole log.
    fn clauses<'a>(
        &'a self,
        params: &mut Vec<Param<'a>>,
        after: (&str, &str),
        below_frontier: bool,
    ) -> (String, String) {
        let mut bind = |value: Param<'a>| {
            params.push(value);
            format!("${}", params.len())
        };
        let mut equal = Vec::new();
        if let Some(tenant) = &self.tenant {
            equal.push(("e.tenant", bind(tenant)));
        }
        let mut conditions = String::new();
        if let Some(stream) = &self.stream_id {
            // A stream has few events: its key finds them, a sort orders them.
            conditions.push_str(&format!(" AND e.stream_id = {}", bind(stream)));
        } else if let Some(collection) = &self.collection {
            equal.push(("e.collection", bind(collection)));
        }
        if let Some(types) = &self.types {
            conditions.push_str(&format!(" AND e.type = ANY({})", bind(types)));
        }
        let leading: Vec<&str> = equal.iter().map(|(column, _)| *column).collect();
        for (column, value) in &equal {
            conditions.push_str(&format!(" AND {column} = {value}"));
        }
        // The equalities fix the index's leading columns and the row comparison covers only
        // `(tx_id, position)`: Postgres then starts the scan at the position. With the leading
        // columns inside the row comparison it starts at the first entry of the collection
        // (or tenant) instead, and a read near the end of a long log walks all of it.
        let (after_tx, after_position) = after;
        let keys = format!("(e.tx_id, e.position) > ({after_tx}, {after_position})");
        let order = if self.stream_id.is_some() {
            "e.tx_id, e.position".to_owned()
        } else {
            [leading.as_slice(), &["e.tx_id", "e.position"]]
                .concat()
                .join(", ")
        };
        let below = if below_frontier {
            format!(" AND e.tx_id < {FRONTIER}")
        } else {
            String::new()
        };
        (format!("{keys}{below}{conditions}"), order)
    }
}

/// Reads up to `limit` events after `after` that match `filter`.
///
/// One `REPEATABLE READ` snapshot for the frontier, the read and the held-back check, so the
/// frontier describes exactly what was read; the three statements go out together (each
/// computes the frontier from the shared snapshot), so a read costs three round trips with
/// the transaction's begin and commit.
#[tracing::instrument(skip(client), err(level = "warn"))]
pub async fn read_batch(
    client: &mut ClientWrapper,
    after: LogPosition,
    filter: &LogFilter,
    limit: i64,
) -> Result<Batch, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let (creator, join) = if filter.creators {
        (
            "s.created_by",
            "LEFT JOIN herald.streams s ON s.tenant = e.tenant AND s.stream_id = e.stream_id",
        )
    } else {
        ("NULL::text", "")
    };
    let after_tx = after.tx_text();
    let mut params: Vec<Param<'_>> = vec![&after_tx, &after.position, &limit];
    let (conditions, order) = filter.clauses(&mut params, ("$1::text::xid8", "$2"), true);
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, {creator}
         FROM herald.events e {join}
         WHERE {conditions}
         ORDER BY {order}
         LIMIT $3"
    );
    // Anything of the filter's at or past the frontier: read it again soon. Ordered like the
    // read, so it walks the same index (an `EXISTS` may be planned as a scan of the whole log
    // when nothing matches).
    let mut held_back_params: Vec<Param<'_>> = Vec::new();
    let (held_back_conditions, held_back_order) =
        filter.clauses(&mut held_back_params, (FRONTIER, "0"), false);
    let held_back_sql = format!(
        "SELECT 1 FROM herald.events e WHERE {held_back_conditions} ORDER BY {held_back_order} LIMIT 1"
    );
    let frontier = async {
        let statement = tx
            .prepare_cached(&format!("SELECT {FRONTIER}::text"))
            .await?;
        let frontier: String = tx.query_one(&statement, &[]).await?.try_get(0)?;
        Ok::<_, tokio_postgres::Error>(frontier)
    };
    let rows = async {
        let statement = tx.prepare_cached(&sql).await?;
        tx.query(&statement, &params).await
    };
    let held_back = async {
        let statement = tx.prepare_cached(&held_back_sql).await?;
        Ok(tx.query_opt(&statement, &held_back_params).await?.is_some())
    };
    let (frontier, rows, held_back) = futures::try_join!(frontier, rows, held_back)?;
    tx.commit().await?;
    let (events, unreadable) = decode(&rows)?;
    let last = events.last().map_or(after, |e| e.position);
    let caught_up =
        unreadable.is_none() && events.len() < usize::try_from(limit).unwrap_or(usize::MAX);
    let checkpoint = if caught_up {
        let frontier = LogPosition {
            tx_id: parse_tx_id(&frontier)?,
            position: 0,
        };
        last.max(frontier)
    } else {
        last
    };
    Ok(Batch {
        events,
        unreadable,
        checkpoint,
        caught_up,
        held_back,
    })
}

impl Batch {
    /// Where a reader that passes over unreadable events reads on: past the unreadable event
    /// when the batch stopped at one (logged here, with its position), else the checkpoint.
    pub fn past_unreadable(&self, reader: &str) -> LogPosition {
        match &self.unreadable {
            Some(failure) => {
                tracing::warn!(
                    reader,
                    position = %failure.position,
                    event_id = ?failure.event_id,
                    error = %failure.error,
                    "passing over an event that cannot be read"
                );
                failure.position
            }
            None => self.checkpoint,
        }
    }
}

/// When a reader that has caught up reads again: soon, and a little later each time, while
/// committed events are held back behind an older open transaction; otherwise after the
/// polling interval (a notification usually comes first).
#[derive(Debug)]
pub struct Pacing {
    held_back_delay: std::time::Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            held_back_delay: Self::FIRST,
        }
    }
}

impl Pacing {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(1);
    const MOST: std::time::Duration = std::time::Duration::from_millis(50);
    pub const POLL: std::time::Duration = std::time::Duration::from_millis(500);

    pub fn wait(&mut self, held_back: bool) -> std::time::Duration {
        if held_back {
            self.held_back_delay = (self.held_back_delay * 2).min(Self::MOST);
            self.held_back_delay
        } else {
            self.held_back_delay = Self::FIRST;
            Self::POLL
        }
    }
}

/// The safe frontier now: every event a reader can still be shown lies after it.
pub async fn frontier(client: &impl GenericClient) -> Result<LogPosition, StoreError> {
    let text: String = client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?
        .try_get(0)?;
    Ok(LogPosition {
        tx_id: parse_tx_id(&text)?,
        position: 0,
    })
}

/// A checkpoint read as `tx_id::text, position` starting at column `at` (the start of the log
/// when the row or its columns are absent, as after an outer join).
pub fn checkpoint_at(
    row: Option<&tokio_postgres::Row>,
    at: usize,
) -> Result<LogPosition, StoreError> {
    let Some(row) = row else {
        return Ok(LogPosition::START);
    };
    match (
        row.try_get::<_, Option<&str>>(at)?,
        row.try_get::<_, Option<i64>>(at + 1)?,
    ) {
        (Some(tx), Some(position)) => Ok(LogPosition {
            tx_id: parse_tx_id(tx)?,
            position,
        }),
        _ => Ok(LogPosition::START),
    }
}

/// The relay's checkpoint name (a view's is its table's, the task triggers' is their own).
pub const RELAY_CHECKPOINT: &str = "relay";

/// How far the reader `name` trails the log.
pub async fn checkpoint_lag(client: &impl GenericClient, name: &str) -> Result<Lag, StoreError> {
    let checkpoint = load_checkpoint(client, name).await?;
    lag(client, checkpoint, None).await
}

/// How far the reader `name` has read the log (the start when it has not read anything yet).
pub async fn load_checkpoint(
    client: &impl GenericClient,
    name: &str,
) -> Result<LogPosition, StoreError> {
    let row = client
        .query_opt(
            "SELECT tx_id::text, position FROM herald.checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    checkpoint_at(row.as_ref(), 0)
}

/// Moves the checkpoint `name` (in the caller's transaction, with the work it covers).
pub async fn save_checkpoint(
    client: &impl GenericClient,
    name: &str,
    at: LogPosition,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO herald.checkpoints (name, tx_id, position) VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (name) DO UPDATE
             SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()",
            &[&name, &at.tx_text(), &at.position],
        )
        .await?;
    Ok(())
}

/// How far a reader trails the safe frontier.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Lag {
    /// Committed events (of the collection, when given) it has not read.
    pub events: i64,
    /// Age of the oldest of them; 0 when there are none.
    pub seconds: f64,
}

/// The lag of a reader at `after`, over one collection or the whole log.
pub async fn lag(
    client: &impl GenericClient,
    after: LogPosition,
    collection: Option<&str>,
) -> Result<Lag, StoreError> {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at))::float8, 0)
             FROM herald.events
             WHERE (tx_id, position) > ($1::text::xid8, $2)
               AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
               AND ($3::text IS NULL OR collection = $3)",
            &[&after.tx_text(), &after.position, &collection],
        )
        .await?;
    Ok(Lag {
        events: row.try_get(0)?,
        seconds: row.try_get(1)?,
    })
}

/// The age in seconds of the oldest committed event of `collection` after `after` (0 when there
/// is none): one step along the collection's index, cheap enough for every readiness probe.
pub async fn oldest_unread_age(
    client: &impl GenericClient,
    after: LogPosition,
    collection: &str,
) -> Result<f64, StoreError> {
    let row = client
        .query_opt(
            "SELECT extract(epoch FROM now() - e.recorded_at)::float8 FROM herald.events e
             WHERE (e.collection, e.tx_id, e.position) > ($3, $1::text::xid8, $2)
               AND e.collection = $3
               AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.collection, e.tx_id, e.position LIMIT 1",
            &[&after.tx_text(), &after.position, &collection],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0.0))
}

/// How long the oldest open writing transaction has held the safe frontier back, in seconds.
pub async fn frontier_age(client: &impl GenericClient) -> Result<f64, StoreError> {
    Ok(client
        .query_one(
            "SELECT coalesce(extract(epoch FROM now() - min(xact_start))::float8, 0)
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?)
}
