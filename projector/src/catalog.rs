//! The projection catalog (`herald.projections`): which versions of each view exist, which one
//! serves reads, and how far a rebuild has come.
//!
//! A version is `building` (filled from position zero while the previous one keeps serving),
//! then `active` (the SQL view `herald_views."<name>"` points at its table), then `retired`
//! (its table dropped). At most one version per projection is active and one is building.

use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;
use herald_bus::position::LogPosition;
use herald_bus::schema::DocumentSchema;
use herald_bus::store::StoreError;
use herald_bus::store::lease::{lease_key, runner_name};
use herald_bus::store::reader::{checkpoint_at, save_checkpoint};
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::table::{Column, VersionTable, columns_of, read_relation, shape_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    Building,
    Active,
    Retired,
}

impl VersionState {
    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "building" => Ok(Self::Building),
            "active" => Ok(Self::Active),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt(format!("projection state `{other}`"))),
        }
    }
}

/// One row of the catalog.
#[derive(Debug, Clone)]
pub struct ProjectionVersion {
    pub table: VersionTable,
    pub shape: String,
    pub state: VersionState,
    pub events_total: i64,
    pub events_done: i64,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub runner: Option<String>,
    pub checkpoint: LogPosition,
}

const VERSION_COLUMNS: &str = "p.name, p.version, p.columns, p.shape, p.state, p.events_total, \
     p.events_done, p.created_at, p.activated_at, p.heartbeat_at, p.runner, c.tx_id::text, c.position";

fn version_of(row: &tokio_postgres::Row) -> Result<ProjectionVersion, StoreError> {
    let name: String = row.try_get(0)?;
    let columns: Vec<Column> = serde_json::from_value(row.try_get(2)?)
        .map_err(|e| StoreError::Corrupt(format!("columns of projection {name}: {e}")))?;
    let checkpoint = checkpoint_at(Some(row), 11)?;
    Ok(ProjectionVersion {
        table: VersionTable::new(&name, row.try_get(1)?, columns),
        shape: row.try_get(3)?,
        state: VersionState::parse(row.try_get(4)?)?,
        events_total: row.try_get(5)?,
        events_done: row.try_get(6)?,
        created_at: row.try_get(7)?,
        activated_at: row.try_get(8)?,
        heartbeat_at: row.try_get(9)?,
        runner: row.try_get(10)?,
        checkpoint,
    })
}

/// Every version that is building or active, by projection and version.
pub async fn live_versions(
    client: &impl GenericClient,
) -> Result<Vec<ProjectionVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM herald.projections p
         LEFT JOIN herald.checkpoints c ON c.name = p.checkpoint
         WHERE p.state <> 'retired' ORDER BY p.name, p.version"
    );
    client
        .query(&sql, &[])
        .await?
        .iter()
        .map(version_of)
        .collect()
}

/// One version's row, if it exists.
pub async fn version(
    client: &impl GenericClient,
    projection: &str,
    version: i32,
) -> Result<Option<ProjectionVersion>, StoreError> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM herald.projections p
         LEFT JOIN herald.checkpoints c ON c.name = p.checkpoint
         WHERE p.name = $1 AND p.version = $2"
    );
    client
        .query_opt(&sql, &[&projection, &version])
        .await?
        .as_ref()
        .map(version_of)
        .transpose()
}

/// Makes the catalog serve `schema` as declared: the first version is created active; when the
/// YAML's columns differ from the active version's, a new version is created building (the
/// active one keeps serving until it is ready). Safe to run from many processes at once.
pub async fn ensure_projection(
    client: &mut ClientWrapper,
    schema: &DocumentSchema,
) -> Result<(), StoreError> {
    let name = schema.collection().to_string();
    let columns = columns_of(schema);
    let shape = shape_of(&columns);
    let tx = client.transaction().await?;
    lock_catalog(&*tx, &name).await?;
    let versions: Vec<(i32, String, String)> = tx
        .query(
            "SELECT version, state, shape FROM herald.projections
             WHERE name = $1 AND state <> 'retired'",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let active = versions.iter().find(|v| v.1 == "active");
    let building = versions.iter().find(|v| v.1 == "building");
    match (active, building) {
        (None, _) => {
            // Nothing serves yet: the first version serves while it fills.
            let created = create_version(&*tx, &name, &columns, &shape, "active").await?;
            tx.batch_execute(&point_reads_at(&created)).await?;
        }
        (Some(active), _) if active.2 == shape => {}
        (Some(_), Some(building)) if building.2 == shape => {}
        (Some(_), building) => {
            if let Some(stale) = building {
                retire(&*tx, &name, stale.0).await?;
            }
            create_version(&*tx, &name, &columns, &shape, "building").await?;
        }
    }
    tx.commit().await?;
    drop_retired(client, &name).await
}

/// Starts a rebuild of `schema`'s view: a new version, building from position zero, or the one
/// already building. Returns it.
pub async fn request_rebuild(
    client: &mut ClientWrapper,
    schema: &DocumentSchema,
) -> Result<ProjectionVersion, StoreError> {
    let name = schema.collection().to_string();
    let columns = columns_of(schema);
    let shape = shape_of(&columns);
    let tx = client.transaction().await?;
    lock_catalog(&*tx, &name).await?;
    let building: Option<i32> = tx
        .query_opt(
            "SELECT version FROM herald.projections WHERE name = $1 AND state = 'building'",
            &[&name],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let number = match building {
        Some(number) => number,
        None => {
            create_version(&*tx, &name, &columns, &shape, "building")
                .await?
                .version
        }
    };
    tx.commit().await?;
    version(&**client, &name, number)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("projection {name} v{number} vanished")))
}

/// Serialises catalog changes of one projection.
async fn lock_catalog(client: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&lease_key(&format!("catalog {name}"))],
        )
        .await?;
    Ok(())
}

async fn create_version(
    client: &impl GenericClient,
    name: &str,
    columns: &[Column],
    shape: &str,
    state: &str,
) -> Result<VersionTable, StoreError> {
    let columns_json = serde_json::to_value(columns)
        .map_err(|e| StoreError::Corrupt(format!("columns of projection {name}: {e}")))?;
    let number: i32 = client
        .query_one(
            "INSERT INTO herald.projections (name, version, shape, columns, state, events_total)
             SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4,
                    (SELECT count(*) FROM herald.events WHERE collection = $1)
             FROM herald.projections WHERE name = $1
             RETURNING version",
            &[&name, &shape, &columns_json, &state],
        )
        .await?
        .try_get(0)?;
    let table = VersionTable::new(name, number, columns.to_vec());
    client.batch_execute(&table.table_sql()).await?;
    if state == "active" {
        client.batch_execute(&table.index_sql()).await?;
    }
    Ok(table)
}

/// The DDL pointing reads at `table`. Replacing the view (not `CREATE OR REPLACE`: the columns
/// may differ) inside the switching transaction makes the switch atomic for readers.
fn point_reads_at(table: &VersionTable) -> String {
    let view = read_relation(&table.projection);
    format!(
        "DROP VIEW IF EXISTS {view};
         CREATE VIEW {view} AS SELECT * FROM {};",
        table.table
    )
}

async fn retire(client: &impl GenericClient, name: &str, number: i32) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE herald.projections SET state = 'retired' WHERE name = $1 AND version = $2",
            &[&name, &number],
        )
        .await?;
    Ok(())
}

/// Makes a building version the active one, if it has read at least as far as the version it
/// replaces (so a reader's position never moves back). Returns whether it switched. The
/// replaced version is retired in the same transaction; its table is dropped after.
pub async fn activate(
    client: &mut ClientWrapper,
    table: &VersionTable,
) -> Result<bool, StoreError> {
    // Before the switch, outside its transaction: the indexes reads need.
    client.batch_execute(&table.index_sql()).await?;
    let tx = client.transaction().await?;
    lock_catalog(&*tx, &table.projection).await?;
    // The active runner updates its row in every batch: locking the rows waits for a batch in
    // flight and keeps the next one out, so the checkpoints read below are final.
    tx.execute(
        "SELECT 1 FROM herald.projections WHERE name = $1 AND state <> 'retired' FOR UPDATE",
        &[&table.projection],
    )
    .await?;
    let rows = tx
        .query(
            "SELECT p.version, p.state, c.tx_id::text, c.position
             FROM herald.projections p LEFT JOIN herald.checkpoints c ON c.name = p.checkpoint
             WHERE p.name = $1 AND p.state <> 'retired'",
            &[&table.projection],
        )
        .await?;
    let mut mine = None;
    let mut active = None;
    for row in &rows {
        let checkpoint = checkpoint_at(Some(row), 2)?;
        let number: i32 = row.try_get(0)?;
        if number == table.version {
            mine = Some((row.try_get::<_, String>(1)?, checkpoint));
        } else if row.try_get::<_, &str>(1)? == "active" {
            active = Some((number, checkpoint));
        }
    }
    let Some((state, checkpoint)) = mine else {
        return Ok(false);
    };
    if state != "building" {
        return Ok(false);
    }
    if let Some((_, theirs)) = active
        && theirs > checkpoint
    {
        // Both follow a frontier that every commit moves; what matters is whether the active
        // version has applied an event this one has not. If not, take over its position.
        let ahead: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM herald.events WHERE collection = $1
                                AND (tx_id, position) > ($2::text::xid8, $3)
                                AND (tx_id, position) <= ($4::text::xid8, $5))",
                &[
                    &table.projection,
                    &checkpoint.tx_text(),
                    &checkpoint.position,
                    &theirs.tx_text(),
                    &theirs.position,
                ],
            )
            .await?
            .try_get(0)?;
        if ahead {
            return Ok(false);
        }
        save_checkpoint(&*tx, &table.checkpoint, theirs).await?;
    }
    if let Some((old, _)) = active {
        retire(&*tx, &table.projection, old).await?;
    }
    tx.execute(
        "UPDATE herald.projections SET state = 'active', activated_at = now()
         WHERE name = $1 AND version = $2",
        &[&table.projection, &table.version],
    )
    .await?;
    tx.batch_execute(&point_reads_at(table)).await?;
    tx.commit().await?;
    if let Err(error) = drop_retired(client, &table.projection).await {
        // Reads have switched; the old table goes at the next switch or start-up instead.
        tracing::warn!(%error, projection = %table.projection, "cannot drop a replaced version yet");
    }
    Ok(true)
}

/// Records that the version's runner is alive and has applied `applied` more events (in the
/// caller's transaction, with those events); `false` when the version was retired meanwhile.
pub async fn record_progress(
    client: &impl GenericClient,
    table: &VersionTable,
    applied: i64,
) -> Result<bool, StoreError> {
    let updated = client
        .execute(
            "UPDATE herald.projections
             SET events_done = events_done + $3, heartbeat_at = now(), runner = $4
             WHERE name = $1 AND version = $2 AND state <> 'retired'",
            &[&table.projection, &table.version, &applied, &runner_name()],
        )
        .await?;
    Ok(updated > 0)
}

/// Removes retired versions: their tables, checkpoints and catalog rows. A table still being
/// read is waited for, but not longer than a few seconds: the caller is a view's runner.
pub async fn drop_retired(client: &mut ClientWrapper, name: &str) -> Result<(), StoreError> {
    let retired: Vec<i32> = client
        .query(
            "SELECT version FROM herald.projections WHERE name = $1 AND state = 'retired'",
            &[&name],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for version in retired {
        let table = VersionTable::new(name, version, Vec::new());
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '5s'; DROP TABLE IF EXISTS {}",
            table.table
        ))
        .await?;
        tx.execute(
            "DELETE FROM herald.checkpoints WHERE name = $1",
            &[&table.checkpoint],
        )
        .await?;
        tx.execute(
            "DELETE FROM herald.projections WHERE name = $1 AND version = $2",
            &[&name, &version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// How far the active version of `projection` has read (the start when none has).
pub async fn active_checkpoint(
    client: &impl GenericClient,
    projection: &str,
) -> Result<LogPosition, StoreError> {
    let row = client
        .query_opt(
            "SELECT c.tx_id::text, c.position FROM herald.projections p
             JOIN herald.checkpoints c ON c.name = p.checkpoint
             WHERE p.name = $1 AND p.state = 'active'",
            &[&projection],
        )
        .await?;
    checkpoint_at(row.as_ref(), 0)
}
