//! Schema migrations, embedded in the binary and applied in order under an advisory lock, so
//! several processes starting at once migrate exactly once.
//!
//! Each crate owns the tables it writes and ships their migrations (`bus/migrations/`: the log,
//! commands and checkpoints; the projector's and the workers' own folders: the projection
//! catalog and the task runs). One numbering spans them all, so the order across crates is
//! fixed: a new migration takes the next free number, whichever crate it belongs to.

use tokio_postgres::Client;

use super::StoreError;

/// One numbered migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub sql: &'static str,
}

/// The event store's migrations.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/0001_event_store.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/0005_parked_events.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/0006_tenant_log_indexes.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../../migrations/0010_parked_event_replay.sql"),
    },
];

/// Any constant works; it only has to be the same for every Herald process.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// Applies the migrations of every set not yet applied, in version order; returns how many ran.
///
/// # Errors
/// A migration that fails (nothing of this call is kept then), or two migrations with one number.
pub async fn migrate(client: &mut Client, sets: &[&[Migration]]) -> Result<usize, StoreError> {
    let mut migrations: Vec<Migration> = sets.iter().flat_map(|set| set.iter().copied()).collect();
    migrations.sort_by_key(|m| m.version);
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(StoreError::DuplicateMigration(pair[0].version));
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS herald;
         CREATE TABLE IF NOT EXISTS herald.schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM herald.schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut ran = 0;
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO herald.schema_migrations (version) VALUES ($1)",
            &[&migration.version],
        )
        .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
