//! [`EventStore`] on PostgreSQL, plus the command bookkeeping the api does before publishing.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use std::collections::HashMap;
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::accept::{AcceptGroup, insert_accepted};
use super::commit::{
    commit_alone, complete_command, lock_command, parse_outcome, query_opt_cached,
};
use super::group::{GroupCommit, GroupCounts};
use super::notify::Announcer;
use super::{Commit, EventStore, LoadedStream, StoreError, parse_tx_id};
use crate::command::{CommandEnvelope, Outcome, Rejection, StoredCommand};
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
