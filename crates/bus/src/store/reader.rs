//! The gap-free ordered reader of the global log.
//!
//! Positions are taken from a sequence before commit, so a reader that asks for
//! "position > checkpoint" can pass over an event whose transaction commits later. Instead,
//! events are read in `(tx_id, position)` order and only from transactions below the
//! snapshot's `xmin`: every such transaction has finished, so nothing can appear behind a
//! checkpoint later. (The technique Emmett uses.)

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use serde_json::Value;
use uuid::Uuid;

use super::{StoreError, parse_tx_id};
use crate::position::LogPosition;

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
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

/// A batch of the log after some position.
#[derive(Debug)]
pub struct Batch {
    pub events: Vec<RecordedEvent>,
    /// Where the next read starts: the last event read, or, when the batch reached the safe
    /// frontier, the frontier itself (so a filtered reader moves on even without matches).
    pub checkpoint: LogPosition,
    /// Committed events exist beyond the frontier, held back by an older open transaction:
    /// read again soon rather than waiting for the next notification.
    pub held_back: bool,
}

/// Reads up to `limit` events after `after`, optionally of one collection only.
#[tracing::instrument(skip(client), err(level = "warn"))]
pub async fn read_batch(
    client: &mut Client,
    after: LogPosition,
    collection: Option<&str>,
    limit: i64,
) -> Result<Batch, StoreError> {
    // One snapshot for the frontier and the reads, so the frontier describes exactly what we saw.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let frontier: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?
        .get(0);
    let after_tx = after.tx_text();
    let rows = tx
        .query(
            "SELECT position, tx_id::text, event_id, tenant, stream_id, collection, document_id,
                    version, type, schema_version, data, metadata, recorded_at
             FROM herald.events
             WHERE (tx_id, position) > ($1::text::xid8, $2)
               AND tx_id < $3::text::xid8
               AND ($4::text IS NULL OR collection = $4)
             ORDER BY tx_id, position
             LIMIT $5",
            &[&after_tx, &after.position, &frontier, &collection, &limit],
        )
        .await?;
    let events = rows
        .iter()
        .map(|row| {
            let tx_text: &str = row.get(1);
            Ok(RecordedEvent {
                position: LogPosition {
                    tx_id: parse_tx_id(tx_text)?,
                    position: row.get(0),
                },
                event_id: row.get(2),
                tenant: row.get(3),
                stream_id: row.get(4),
                collection: row.get(5),
                document_id: row.get(6),
                version: row.get(7),
                event_type: row.get(8),
                schema_version: row.get(9),
                data: row.get(10),
                metadata: row.get(11),
                recorded_at: row.get(12),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let held_back: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM herald.events
                            WHERE tx_id >= $1::text::xid8 AND ($2::text IS NULL OR collection = $2))",
            &[&frontier, &collection],
        )
        .await?
        .get(0);
    tx.commit().await?;
    let last = events.last().map_or(after, |e| e.position);
    let checkpoint = if events.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
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
        checkpoint,
        held_back,
    })
}
