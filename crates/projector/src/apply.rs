//! Applying the log to a view, one batch per transaction: the rows the batch touches are loaded
//! once, folded in memory with [`herald_bus::document::apply`], written back, and the checkpoint
//! moves in the same transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient};
use herald_bus::document::{Change, DocumentState, FoldError, Stamp, apply};
use herald_bus::position::LogPosition;
use herald_bus::store::StoreError;
use herald_bus::store::reader::{RecordedEvent, read_batch};
use serde_json::Value;
use uuid::Uuid;

use crate::table::{ViewTable, ensure_view, view_checkpoint};

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error")]
    Database(#[from] tokio_postgres::Error),
    #[error("event {event_id} has a type no view knows: {event_type}")]
    UnknownEventType { event_id: Uuid, event_type: String },
    #[error("event {event_id} ({event_type}) cannot be applied to its view")]
    Unapplicable {
        event_id: Uuid,
        event_type: String,
        #[source]
        source: FoldError,
    },
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
}

/// Reads and applies the next batch of the view's events.
#[tracing::instrument(skip_all, fields(projection = %view.projection), err(level = "warn"))]
pub async fn try_project_next(
    client: &mut Client,
    view: &ViewTable,
    batch_size: i64,
) -> Result<Progress, ProjectError> {
    let after = view_checkpoint(&*client, &view.projection).await?;
    let collection = view.schema.collection();
    let batch = read_batch(client, after, Some(&collection), batch_size).await?;
    let caught_up = batch.events.len() < usize::try_from(batch_size).unwrap_or(usize::MAX);
    let progress = Progress {
        applied: batch.events.len(),
        caught_up,
        held_back: batch.held_back,
        checkpoint: batch.checkpoint,
    };
    if batch.checkpoint == after {
        return Ok(progress);
    }
    let tx = client.transaction().await?;
    // Writers of one view take turns, and a step only applies what it read if nobody moved the
    // checkpoint meanwhile (another runner, or a rebuild): otherwise it reads again.
    lock_view(&tx, view).await?;
    if view_checkpoint(&tx, &view.projection).await? != after {
        return Ok(Progress {
            applied: 0,
            caught_up: false,
            held_back: false,
            checkpoint: after,
        });
    }
    let mut rows = load_rows(&tx, view, &batch.events).await?;
    let mut touched = Vec::new();
    for event in &batch.events {
        let key = (event.tenant.clone(), event.document_id);
        if rows.get(&key).is_some_and(|s| s.version >= event.version) {
            // Already reflected (the view was written by a newer step); keep it.
            continue;
        }
        let next = fold_event(rows.remove(&key), event)?;
        rows.insert(key.clone(), next);
        if !touched.contains(&key) {
            touched.push(key);
        }
    }
    let upsert = tx.prepare_cached(&view.upsert_sql()).await?;
    for key in &touched {
        if let Some(state) = rows.get(key) {
            let doc = Value::Object(state.fields.clone());
            tx.execute(
                &upsert,
                &[
                    &key.0,
                    &state.id,
                    &state.version,
                    &state.archived,
                    &state.created_at,
                    &state.created_by,
                    &state.updated_at,
                    &state.updated_by,
                    &doc,
                ],
            )
            .await?;
        }
    }
    save_checkpoint(&tx, &view.projection, batch.checkpoint).await?;
    tx.commit().await?;
    Ok(progress)
}

fn fold_event(
    current: Option<DocumentState>,
    event: &RecordedEvent,
) -> Result<DocumentState, ProjectError> {
    let unapplicable = |source| ProjectError::Unapplicable {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        source,
    };
    let change = Change::from_stored(&event.event_type, &event.data).ok_or_else(|| {
        ProjectError::UnknownEventType {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
        }
    })?;
    let actor = event.metadata["actor"]["sub"].as_str().unwrap_or("unknown");
    let stamp = Stamp {
        version: event.version,
        at: event.recorded_at,
        by: actor,
    };
    apply(current, event.document_id, &change, stamp).map_err(unapplicable)
}

type RowKey = (String, Uuid);

async fn load_rows(
    client: &impl GenericClient,
    view: &ViewTable,
    events: &[RecordedEvent],
) -> Result<HashMap<RowKey, DocumentState>, ProjectError> {
    let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.document_id).collect();
    let sql = format!(
        "SELECT tenant, {} FROM {} WHERE (tenant, id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))",
        ViewTable::ROW_COLUMNS,
        view.table
    );
    let rows = client.query(&sql, &[&tenants, &ids]).await?;
    Ok(rows
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row_state(row, 1)))
        .collect())
}

/// Reads a view row (columns [`ViewTable::ROW_COLUMNS`] starting at `offset`) as a state.
pub fn row_state(row: &tokio_postgres::Row, offset: usize) -> DocumentState {
    let doc: Value = row.get(offset + 7);
    DocumentState {
        id: row.get(offset),
        version: row.get(offset + 1),
        archived: row.get(offset + 2),
        created_at: row.get::<_, DateTime<Utc>>(offset + 3),
        created_by: row.get(offset + 4),
        updated_at: row.get(offset + 5),
        updated_by: row.get(offset + 6),
        fields: match doc {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
    }
}

/// Held until the transaction ends.
async fn lock_view(
    client: &impl GenericClient,
    view: &ViewTable,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&view.lock_key])
        .await?;
    Ok(())
}

async fn save_checkpoint(
    client: &impl GenericClient,
    projection: &str,
    at: LogPosition,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO herald.checkpoints (name, tx_id, position) VALUES ($1, $2::text::xid8, $3)
             ON CONFLICT (name) DO UPDATE
             SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()",
            &[&projection, &at.tx_text(), &at.position],
        )
        .await?;
    Ok(())
}

/// Rebuilds a view from the start of the log: the table is emptied and the checkpoint reset in
/// one transaction, then the log is applied again until the view has caught up.
pub async fn rebuild(
    client: &mut Client,
    view: &ViewTable,
    batch_size: i64,
) -> Result<u64, ProjectError> {
    ensure_view(&*client, view).await?;
    let tx = client.transaction().await?;
    lock_view(&tx, view).await?;
    tx.batch_execute(&format!("TRUNCATE {}", view.table))
        .await?;
    tx.execute(
        "DELETE FROM herald.checkpoints WHERE name = $1",
        &[&view.projection],
    )
    .await?;
    tx.commit().await?;
    let mut applied = 0u64;
    loop {
        let progress = try_project_next(client, view, batch_size).await?;
        applied += progress.applied as u64;
        if progress.caught_up {
            return Ok(applied);
        }
    }
}
