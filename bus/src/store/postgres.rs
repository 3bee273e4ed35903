//! [`EventStore`] on PostgreSQL, plus the command bookkeeping the api does before publishing.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use serde_json::Value;
use std::collections::HashMap;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::accept::AcceptGroup;
use super::group::{GroupCommit, GroupCounts};
use super::notify::Announcer;
use super::{
    Commit, EventStore, LoadedStream, StoreError, event_metadata, event_type, parse_tx_id,
};
use crate::command::{CommandEnvelope, Outcome, Rejection, StoredCommand, Success};
use crate::document::DocumentState;
use crate::ids::{CommandId, TenantId};
use crate::position::LogPosition;
use crate::settings::DatabaseSettings;

/// A pool of connections to the event store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    announcer: Announcer,
    /// Absent outside a runtime; commits then run alone.
    group: Option<GroupCommit>,
    /// Absent outside a runtime; commands are then recorded one by one.
    records: Option<AcceptGroup>,
}

/// What the api learns when it records a command before publishing it.
#[derive(Debug)]
pub enum Acceptance {
    /// First time this command id is seen.
    New,
    /// The id is known: a retry with the same idempotency key, or a duplicate.
    Existing(Box<StoredCommand>),
}

impl PgStore {
    pub fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            settings.pg_config()?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits, so requests fail fast with 503 while the database is unreachable.
        let timeout = Some(std::time::Duration::from_millis(
            settings.connect_timeout_ms,
        ));
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(StoreError::PoolConfig)?;
        let announcer = Announcer::start(pool.clone());
        let group = GroupCommit::start(&pool, &announcer);
        let records = AcceptGroup::start(&pool);
        Ok(Self {
            pool,
            announcer,
            group,
            records,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// What group commit has done in this process; `None` outside a runtime.
    pub fn group_counts(&self) -> Option<&GroupCounts> {
        self.group.as_ref().map(GroupCommit::counts)
    }

    /// Records a command as accepted, unless its id is already known.
    #[tracing::instrument(skip_all, fields(command.id = %command.id), err(level = "warn"))]
    pub async fn accept_command(
        &self,
        command: &CommandEnvelope,
    ) -> Result<Acceptance, StoreError> {
        let grouped = match &self.records {
            Some(records) => records.record(command).await,
            None => None,
        };
        let inserted = match grouped {
            Some(inserted) => inserted?,
            None => insert_accepted(&self.pool.get().await?, command).await? == 1,
        };
        if inserted {
            return Ok(Acceptance::New);
        }
        match self.load_command(command.id).await? {
            Some(stored) => Ok(Acceptance::Existing(Box::new(stored))),
            None => Err(StoreError::Corrupt("command vanished".into())),
        }
    }

    /// A command of `tenant`, for `GET /v1/commands/{id}`.
    pub async fn load_tenant_command(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<StoredCommand>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("{COMMAND_COLUMNS} WHERE id = $1 AND tenant = $2"),
                &[&id, &tenant.as_str()],
            )
            .await?;
        row.map(|r| stored_command(&r)).transpose()
    }
}

const COMMAND_COLUMNS: &str = "SELECT id, request_hash, created_at, completed_at, outcome, principal, collection FROM herald.commands";

fn stored_command(row: &tokio_postgres::Row) -> Result<StoredCommand, StoreError> {
    let outcome: Option<Value> = row.try_get(4)?;
    Ok(StoredCommand {
        id: CommandId(row.try_get(0)?),
        request_hash: row.try_get(1)?,
        created_at: row.try_get(2)?,
        completed_at: row.try_get(3)?,
        outcome: outcome.map(parse_outcome).transpose()?,
        principal_sub: row.try_get(5)?,
        collection: row.try_get(6)?,
    })
}

fn parse_outcome(value: Value) -> Result<Outcome, StoreError> {
    serde_json::from_value(value).map_err(|source| StoreError::Decode {
        what: "command outcome".into(),
        source,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|source| StoreError::Decode {
        what: "value".into(),
        source,
    })
}

const STREAM_COLUMNS: &str =
    "SELECT stream_id, snapshot, last_tx::text, last_position FROM herald.streams";

/// A row of [`STREAM_COLUMNS`] as the stream's id and its loaded state.
fn loaded_stream(row: &tokio_postgres::Row) -> Result<(String, LoadedStream), StoreError> {
    let stream_id: String = row.try_get(0)?;
    let state: DocumentState =
        serde_json::from_value(row.try_get(1)?).map_err(|source| StoreError::Decode {
            what: format!("snapshot of {stream_id}"),
            source,
        })?;
    let last_position = LogPosition {
        tx_id: parse_tx_id(row.try_get(2)?)?,
        position: row.try_get(3)?,
    };
    Ok((
        stream_id,
        LoadedStream {
            state,
            last_position,
        },
    ))
}

/// Records a command as accepted; does nothing when its id is already known.
pub(crate) async fn insert_accepted(
    client: &impl deadpool_postgres::GenericClient,
    command: &CommandEnvelope,
) -> Result<u64, StoreError> {
    Ok(execute_cached(
        client,
        "INSERT INTO herald.commands
             (id, tenant, principal, collection, idempotency_key, request_hash, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'accepted')
         ON CONFLICT (id) DO NOTHING",
        &[
            &command.id.0,
            &command.principal.tenant.as_str(),
            &command.principal.actor_sub(),
            &command.collection(),
            &command.idempotency_key,
            &command.request_hash,
        ],
    )
    .await?)
}

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

async fn query_opt_cached(
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
async fn lock_command(
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

/// The `status` and `position` a command's row records for its outcome.
pub(crate) fn stored_status(outcome: &Outcome) -> (&'static str, Option<i64>) {
    match outcome {
        Outcome::Succeeded(success) => ("succeeded", success.position.map(|p| p.position)),
        Outcome::Rejected(_) => ("rejected", None),
    }
}

async fn complete_command(
    tx: &Transaction<'_>,
    id: CommandId,
    outcome: &Outcome,
) -> Result<(), StoreError> {
    let (status, position) = stored_status(outcome);
    execute_cached(
        tx,
        "UPDATE herald.commands
         SET status = $2, outcome = $3, position = $4, completed_at = now()
         WHERE id = $1",
        &[&id.0, &status, &to_json(outcome)?, &position],
    )
    .await?;
    Ok(())
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

impl EventStore for PgStore {
    async fn load_command(&self, id: CommandId) -> Result<Option<StoredCommand>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(&format!("{COMMAND_COLUMNS} WHERE id = $1"), &[&id.0])
            .await?;
        row.map(|r| stored_command(&r)).transpose()
    }

    async fn load_stream(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<Option<LoadedStream>, StoreError> {
        // Its own statement rather than `load_streams` with one id: a generic plan of
        // `= ANY($2)` is a bitmap scan, several times the cost of this index probe, and this
        // runs once for every command.
        let client = self.pool.get().await?;
        let row = query_opt_cached(
            &client,
            &format!("{STREAM_COLUMNS} WHERE tenant = $1 AND stream_id = $2"),
            &[&tenant.as_str(), &stream_id],
        )
        .await?;
        row.map(|row| loaded_stream(&row).map(|(_, loaded)| loaded))
            .transpose()
    }

    async fn load_streams(
        &self,
        tenant: &TenantId,
        stream_ids: &[String],
    ) -> Result<HashMap<String, LoadedStream>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "{STREAM_COLUMNS} WHERE tenant = $1 AND stream_id = ANY($2)"
            ))
            .await?;
        let rows = client
            .query(&statement, &[&tenant.as_str(), &stream_ids])
            .await?;
        rows.iter().map(loaded_stream).collect()
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Outcome, StoreError> {
        if let Some(group) = &self.group
            && let Some(outcome) = group.commit(&commit).await
        {
            return outcome;
        }
        commit_alone(&self.pool, &self.announcer, commit).await
    }

    async fn reject(
        &self,
        command: &CommandEnvelope,
        rejection: Rejection,
    ) -> Result<Outcome, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(stored) = lock_command(&tx, command).await? {
            return Ok(stored);
        }
        let outcome = Outcome::Rejected(rejection);
        complete_command(&tx, command.id, &outcome).await?;
        tx.commit().await?;
        Ok(outcome)
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
        announcer.appended(commit.command.collection());
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
    let collection = command.collection();
    let snapshot = to_json(commit.state)?;
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
    let metadata = event_metadata(command);
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
                    &metadata,
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
        http_status: commit.http_status,
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
