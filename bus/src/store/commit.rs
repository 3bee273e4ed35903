//! Committing one command alone, in a transaction of its own: lock its row (a redelivered
//! command finds its stored outcome and appends nothing), write its stream row, unique values
//! and events, store the outcome, commit. [`super::group`] runs commits that arrive together as
//! one transaction with the multi-row statements of [`super::rows`], and falls back to this
//! path whenever a group cannot be written as one.
//!
//! A lone commit keeps single-row statements: through the multi-row ones (as a group of one)
//! creates ran 10–25 % slower in the benchmark harness (W1), see docs/performance.md.

use deadpool_postgres::{Pool, Transaction};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;

use super::accept::insert_accepted;
use super::notify::Announcer;
use uuid::Uuid;

use super::{Commit, EventMetadata, StoreError, event_type, parse_tx_id, rows};
use crate::command::{CommandEnvelope, Outcome, Success};
use crate::ids::CommandId;
use crate::position::LogPosition;

/// Runs `sql` as a statement prepared once per connection: the hot paths pay neither a
/// parse-and-plan on the server nor the extra round trip of an unnamed statement.
async fn execute_cached(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// [`execute_cached`] for a query answering at most one row.
pub(crate) async fn query_opt_cached(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// Locks the command's row for this transaction (recording it first when it was published
/// without the api's bookkeeping). Returns its outcome when a handler already completed it,
/// so a redelivered command appends nothing.
pub(crate) async fn lock_command(
    tx: &Transaction<'_>,
    command: &CommandEnvelope,
) -> Result<Option<Outcome>, StoreError> {
    const LOCK: &str = "SELECT outcome FROM herald.commands WHERE id = $1 FOR UPDATE";
    let row = match query_opt_cached(tx, LOCK, &[&command.id.0]).await? {
        Some(row) => row,
        // Our own insert is locked by this transaction until it ends.
        None if insert_accepted(tx, command).await? == 1 => return Ok(None),
        // Inserted concurrently since the first look: lock that row.
        None => tx.query_one(LOCK, &[&command.id.0]).await?,
    };
    row.try_get::<_, Option<Value>>(0)?
        .map(parse_outcome)
        .transpose()
}

pub(crate) async fn complete_command(
    tx: &Transaction<'_>,
    id: CommandId,
    outcome: &Outcome,
) -> Result<(), StoreError> {
    rows::complete(tx, &[id.0], std::slice::from_ref(outcome)).await
}

fn conflict(commit: &Commit<'_>, actual: Option<i64>) -> StoreError {
    StoreError::VersionConflict {
        stream_id: commit.stream_id.to_owned(),
        expected: commit.expected_version,
        actual,
    }
}

/// Maps the database's own concurrency guards to a version conflict.
fn classify(error: tokio_postgres::Error, commit: &Commit<'_>) -> StoreError {
    let code = error.code();
    if code == Some(&SqlState::UNIQUE_VIOLATION)
        || code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    {
        conflict(commit, None)
    } else {
        StoreError::Database(error)
    }
}

/// Commits one command in a transaction of its own (see [`super::group`] for commits that
/// arrive together).
// A version conflict is routine (the handler decides again), so failures log at debug.
#[tracing::instrument(
    skip_all,
    fields(command.id = %commit.command.id, stream.id = commit.stream_id, expected_version = commit.expected_version),
    err(level = "debug")
)]
pub(crate) async fn commit_alone(
    pool: &Pool,
    announcer: &Announcer,
    commit: Commit<'_>,
) -> Result<Outcome, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(stored) = lock_command(&tx, commit.command).await? {
        return Ok(stored);
    }
    let outcome = match append(&tx, &commit).await {
        Ok(outcome) => outcome,
        Err(StoreError::Database(e)) => return Err(classify(e, &commit)),
        Err(other) => return Err(other),
    };
    tx.commit().await.map_err(|e| classify(e, &commit))?;
    if !commit.changes.is_empty() {
        announcer.appended(commit.command.collection().to_string());
    }
    Ok(outcome)
}

/// The body of a commit, inside the transaction that holds the command's lock: the stream
/// row, unique values, events and the command's outcome.
///
/// Statements that do not need each other's results are sent together (tokio-postgres
/// pipelines the queries of one connection), so a typical create costs four round trips
/// between the lock and the commit instead of eight. Postgres still runs them in the order
/// sent, so the stream row is taken first, as below; a failure aborts the transaction and
/// fails the statements after it.
async fn append(tx: &Transaction<'_>, commit: &Commit<'_>) -> Result<Outcome, StoreError> {
    let command = commit.command;
    let tenant = command.principal.tenant.as_str();
    let collection = command.collection().to_string();
    let snapshot = rows::to_json(commit.state)?;
    let new_version = commit.expected_version + commit.changes.len() as i64;
    let stream = async {
        if commit.changes.is_empty() {
            return Ok(1);
        }
        // Taking the stream row first serializes writers on it: the loser waits, then finds
        // the version moved and decides again instead of failing on the events key.
        if commit.expected_version == 0 {
            execute_cached(
                tx,
                "INSERT INTO herald.streams
                     (tenant, stream_id, collection, version, archived, created_by, snapshot, last_tx, last_position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, pg_current_xact_id(), 0)
                 ON CONFLICT DO NOTHING",
                &[&tenant, &commit.stream_id, &collection, &new_version, &commit.state.archived, &commit.state.created_by, &snapshot],
            )
            .await
        } else {
            execute_cached(
                tx,
                "UPDATE herald.streams SET version = $3, archived = $4, snapshot = $5
                 WHERE tenant = $1 AND stream_id = $2 AND version = $6",
                &[
                    &tenant,
                    &commit.stream_id,
                    &new_version,
                    &commit.state.archived,
                    &snapshot,
                    &commit.expected_version,
                ],
            )
            .await
        }
    };
    let collection = collection.as_str();
    let released = futures::future::try_join_all(commit.release.iter().map(|released| async move {
        execute_cached(
            tx,
            "DELETE FROM herald.unique_keys
             WHERE tenant = $1 AND collection = $2 AND field = $3 AND value = $4 AND stream_id = $5",
            &[&tenant, &collection, &released.field, &released.value, &commit.stream_id],
        )
        .await
    }));
    let reserved =
        futures::future::try_join_all(commit.reserve.iter().map(|reserved| async move {
            execute_cached(
                tx,
                "INSERT INTO herald.unique_keys (tenant, collection, field, value, stream_id)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, collection, field, value)
             DO UPDATE SET stream_id = EXCLUDED.stream_id
             WHERE unique_keys.stream_id = EXCLUDED.stream_id",
                &[
                    &tenant,
                    &collection,
                    &reserved.field,
                    &reserved.value,
                    &commit.stream_id,
                ],
            )
            .await
        }));
    let metadata: Vec<Json<EventMetadata>> = commit
        .changes
        .iter()
        .map(|change| Json(EventMetadata::of_change(command, change)))
        .collect();
    let types: Vec<String> = commit
        .changes
        .iter()
        .map(|change| event_type(command, change))
        .collect();
    let data: Vec<Value> = commit
        .changes
        .iter()
        .map(crate::document::Change::data)
        .collect();
    let (types, data, metadata) = (&types, &data, &metadata);
    let events = futures::future::try_join_all(commit.changes.iter().enumerate().map(
        |(offset, _)| async move {
            let version = commit.expected_version + 1 + offset as i64;
            let statement = tx
                .prepare_cached(
                    "INSERT INTO herald.events
                         (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     RETURNING position, tx_id::text",
                )
                .await?;
            tx.query_one(
                &statement,
                &[
                    &tenant,
                    &commit.stream_id,
                    &collection,
                    &command.document_id,
                    &version,
                    &Uuid::now_v7(),
                    &types[offset],
                    &data[offset],
                    &metadata[offset],
                    &commit.state.updated_at,
                ],
            )
            .await
        },
    ));
    let (moved, _, reserved, rows) = futures::try_join!(stream, released, reserved, events)?;
    if moved == 0 {
        return Err(conflict(commit, None));
    }
    if let Some(index) = reserved.iter().position(|taken| *taken == 0) {
        return Err(StoreError::UniqueTaken {
            field: commit.reserve[index].field.clone(),
        });
    }
    let mut position = commit.previous_position;
    for row in &rows {
        position = Some(LogPosition {
            tx_id: parse_tx_id(row.try_get(1)?)?,
            position: row.try_get(0)?,
        });
    }
    let outcome = Outcome::Succeeded(Success {
        effect: commit.effect,
        document: commit.state.clone(),
        position,
    });
    let completed = complete_command(tx, command.id, &outcome);
    match (commit.changes.is_empty(), position) {
        (false, Some(last)) => {
            let last_tx = last.tx_text();
            let moved_to = async {
                execute_cached(
                    tx,
                    "UPDATE herald.streams SET last_tx = $3::text::xid8, last_position = $4
                     WHERE tenant = $1 AND stream_id = $2",
                    &[&tenant, &commit.stream_id, &last_tx, &last.position],
                )
                .await
                .map_err(StoreError::from)
            };
            futures::try_join!(moved_to, completed)?;
        }
        _ => completed.await?,
    }
    Ok(outcome)
}

/// A stored outcome.
pub(crate) fn parse_outcome(value: Value) -> Result<Outcome, StoreError> {
    serde_json::from_value(value).map_err(|source| StoreError::Decode {
        what: "command outcome".into(),
        source,
    })
}
