//! Committing one command alone, in a transaction of its own: lock its row (a redelivered
//! command finds its stored outcome and appends nothing), write the rows of [`super::rows`] for
//! a group of one, store the outcome, commit. [`super::group`] runs commits that arrive
//! together as one transaction and falls back to this path whenever a group cannot be written
//! as one.

use std::collections::HashMap;

use deadpool_postgres::{Pool, Transaction};
use serde_json::Value;
use tokio_postgres::error::SqlState;

use super::accept::insert_accepted;
use super::notify::Announcer;
use super::{Commit, StoreError, rows};
use crate::command::{CommandEnvelope, Outcome, Success};
use crate::ids::CommandId;

/// Runs `sql` as a statement prepared once per connection: the hot paths pay neither a
/// parse-and-plan on the server nor the extra round trip of an unnamed statement.
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
    let (_, stored) = futures::try_join!(
        rows::generic_plans(&tx),
        lock_command(&tx, commit.command)
    )?;
    if let Some(stored) = stored {
        return Ok(stored);
    }
    let outcome = match append(&tx, &commit).await {
        Ok(outcome) => outcome,
        Err(StoreError::Database(e)) => return Err(classify(e, &commit)),
        Err(other) => return Err(other),
    };
    tx.commit().await.map_err(|e| classify(e, &commit))?;
    if !commit.changes.is_empty() {
        announcer.appended(commit.command.collection());
    }
    Ok(outcome)
}

/// The body of a commit, inside the transaction that holds the command's lock: the rows of
/// [`rows`] for a group of one, then the command's outcome.
async fn append(tx: &Transaction<'_>, commit: &Commit<'_>) -> Result<Outcome, StoreError> {
    let commits = std::slice::from_ref(commit);
    let mut position = commit.previous_position;
    let mut positions = HashMap::new();
    if !commit.changes.is_empty() {
        let written = rows::write(tx, commits).await?;
        if written.streams == 0 {
            return Err(conflict(commit, None));
        }
        if let Some(taken) = written.taken(commit) {
            return Err(StoreError::UniqueTaken {
                field: taken.field.clone(),
            });
        }
        position = written.positions.get(&rows::stream_key(commit)).copied();
        positions = written.positions;
    }
    let outcome = Outcome::Succeeded(Success {
        http_status: commit.http_status,
        document: commit.state.clone(),
        position,
    });
    rows::finish(tx, commits, &positions, std::slice::from_ref(&outcome)).await?;
    Ok(outcome)
}

/// A stored outcome.
pub(crate) fn parse_outcome(value: Value) -> Result<Outcome, StoreError> {
    serde_json::from_value(value).map_err(|source| StoreError::Decode {
        what: "command outcome".into(),
        source,
    })
}
