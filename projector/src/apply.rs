//! Applying the log to one version of a view, one batch per transaction: the rows the batch
//! touches are loaded once, folded in memory with [`herald_bus::document::apply`], written back
//! in one statement, and the checkpoint and progress move in the same transaction.
//!
//! Only the holder of the version's lease calls this (see [`crate::runner`]), on the lease's
//! own connection, so no two writers ever interleave.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::{ClientWrapper, Transaction};
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use herald_bus::store::StoreError;
use herald_bus::store::parked::{self, EventFailure, Poison, Stage};
use herald_bus::store::reader::{
    Batch, RecordedEvent, load_checkpoint, read_batch, save_checkpoint,
};
use serde_json::Value;
use uuid::Uuid;

use crate::catalog::record_progress;
use crate::table::{ROW_COLUMNS, VersionTable};

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    /// An event of the batch cannot be read or applied (and is not to be parked yet).
    #[error(transparent)]
    Event(#[from] EventFailure),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub applied: usize,
    /// The view has read everything below the safe frontier.
    pub caught_up: bool,
    /// Committed events wait behind an older open transaction; look again soon.
    pub held_back: bool,
    pub checkpoint: LogPosition,
    /// The version was retired meanwhile: nothing was written, and its runner should stop.
    pub retired: bool,
}

impl Progress {
    fn of(batch: &Batch) -> Self {
        Self {
            applied: batch.events.len(),
            caught_up: batch.caught_up,
            held_back: batch.held_back,
            checkpoint: batch.checkpoint,
            retired: false,
        }
    }
}

/// Reads and applies the next batch of the version's events; `poison` tells which failing
/// event has spent its attempts and is to be parked.
#[tracing::instrument(skip_all, fields(projection = %table.checkpoint), err(Display, level = "warn"))]
pub async fn project_next(
    client: &mut ClientWrapper,
    table: &VersionTable,
    batch_size: i64,
    poison: &Poison,
) -> Result<Progress, ProjectError> {
    let after = load_checkpoint(&**client, &table.checkpoint).await?;
    let batch = read_batch(client, after, &table.filter(), batch_size).await?;
    if batch.checkpoint == after && batch.unreadable.is_none() {
        return Ok(Progress::of(&batch));
    }
    apply_batch(client, table, &batch, poison).await
}

/// Applies a batch read after the version's checkpoint: rows, checkpoint and progress in one
/// transaction. An event that cannot be read or applied fails the batch, until `poison` says
/// its attempts are spent: then it is parked in the same transaction and the view goes on.
pub async fn apply_batch(
    client: &mut ClientWrapper,
    table: &VersionTable,
    batch: &Batch,
    poison: &Poison,
) -> Result<Progress, ProjectError> {
    let mut progress = Progress::of(batch);
    let tx = client.transaction().await?;
    let mut rows = load_rows(&tx, table, &batch.events).await?;
    let mut touched = Vec::new();
    let mut seen = HashSet::new();
    let mut parked = Vec::new();
    for event in &batch.events {
        let key = (event.tenant.clone(), event.document_id);
        let before = rows.remove(&key);
        let park = poison.exhausted(event.position);
        let kept = if park { before.clone() } else { None };
        match event.fold(before) {
            Ok(next) => {
                rows.insert(key.clone(), next);
            }
            Err(error) => {
                let failure = failure_of(event, &error);
                if !park {
                    return Err(failure.into());
                }
                if let Some(kept) = kept {
                    rows.insert(key.clone(), kept);
                }
                parked.push(failure);
                continue;
            }
        }
        if seen.insert(key.clone()) {
            touched.push(key);
        }
    }
    let mut checkpoint = batch.checkpoint;
    if let Some(failure) = &batch.unreadable {
        if !poison.exhausted(failure.position) {
            return Err(failure.clone().into());
        }
        checkpoint = failure.position;
        progress.checkpoint = checkpoint;
        parked.push(failure.clone());
    }
    for failure in &parked {
        let attempts = poison.attempts(failure.position);
        parked::park(&*tx, &table.checkpoint, failure, attempts).await?;
    }
    let applied = i64::try_from(batch.events.len()).unwrap_or(i64::MAX);
    // Sent together: none needs another's result, and a retired version rolls all back.
    let (_, live, _) = futures::try_join!(
        async { write_rows(&tx, table, &touched, &rows).await },
        async { Ok(record_progress(&*tx, table, applied).await?) },
        async { Ok(save_checkpoint(&*tx, &table.checkpoint, checkpoint).await?) },
    )?;
    if !live {
        tx.rollback().await?;
        progress.retired = true;
        return Ok(progress);
    }
    tx.commit().await?;
    Ok(progress)
}

/// A fold error as the failure of its event.
pub(crate) fn failure_of(event: &RecordedEvent, error: &dyn std::error::Error) -> EventFailure {
    EventFailure {
        position: event.position,
        event_id: Some(event.event_id),
        event_type: Some(event.event_type.clone()),
        collection: Some(event.collection.clone()),
        stage: Stage::Applied,
        error: herald_bus::telemetry::error_chain(error),
    }
}

/// A view row's key: tenant and document id.
pub(crate) type RowKey = (String, Uuid);

async fn load_rows(
    client: &Transaction<'_>,
    table: &VersionTable,
    events: &[RecordedEvent],
) -> Result<HashMap<RowKey, DocumentState>, ProjectError> {
    let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.document_id).collect();
    let sql = format!(
        "SELECT tenant, {ROW_COLUMNS} FROM {}
         WHERE (tenant, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))",
        table.table
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&tenants, &ids]).await?;
    Ok(rows
        .iter()
        .map(|row| Ok(((row.try_get(0)?, row.try_get(1)?), row_state(row, 1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?)
}

/// Writes the touched rows in one statement.
pub(crate) async fn write_rows(
    client: &Transaction<'_>,
    table: &VersionTable,
    touched: &[RowKey],
    rows: &HashMap<RowKey, DocumentState>,
) -> Result<(), ProjectError> {
    let states: Vec<(&str, &DocumentState)> = touched
        .iter()
        .filter_map(|key| Some((key.0.as_str(), rows.get(key)?)))
        .collect();
    let tenants: Vec<&str> = states.iter().map(|(t, _)| *t).collect();
    let ids: Vec<Uuid> = states.iter().map(|(_, s)| s.id).collect();
    let versions: Vec<i64> = states.iter().map(|(_, s)| s.version).collect();
    let archived: Vec<bool> = states.iter().map(|(_, s)| s.archived).collect();
    let created_at: Vec<DateTime<Utc>> = states.iter().map(|(_, s)| s.created_at).collect();
    let created_by: Vec<&str> = states.iter().map(|(_, s)| s.created_by.as_str()).collect();
    let updated_at: Vec<DateTime<Utc>> = states.iter().map(|(_, s)| s.updated_at).collect();
    let updated_by: Vec<&str> = states.iter().map(|(_, s)| s.updated_by.as_str()).collect();
    let docs: Vec<Value> = states
        .iter()
        .map(|(_, s)| Value::Object(s.fields.clone()))
        .collect();
    let statement = client.prepare_cached(&table.upsert_sql()).await?;
    client
        .execute(
            &statement,
            &[
                &tenants,
                &ids,
                &versions,
                &archived,
                &created_at,
                &created_by,
                &updated_at,
                &updated_by,
                &docs,
            ],
        )
        .await?;
    Ok(())
}

/// Reads a view row (columns [`ROW_COLUMNS`] starting at `offset`) as a state.
pub fn row_state(
    row: &tokio_postgres::Row,
    offset: usize,
) -> Result<DocumentState, tokio_postgres::Error> {
    let doc: Value = row.try_get(offset + 7)?;
    Ok(DocumentState {
        id: row.try_get(offset)?,
        version: row.try_get(offset + 1)?,
        archived: row.try_get(offset + 2)?,
        created_at: row.try_get::<_, DateTime<Utc>>(offset + 3)?,
        created_by: row.try_get(offset + 4)?,
        updated_at: row.try_get(offset + 5)?,
        updated_by: row.try_get(offset + 6)?,
        fields: match doc {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
    })
}
