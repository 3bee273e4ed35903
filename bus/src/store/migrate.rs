//! Schema migrations, embedded in the binary and applied in order under an advisory lock, so
//! several processes starting at once migrate exactly once.

use tokio_postgres::Client;

use super::StoreError;

const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_event_store.sql")),
    (
        2,
        include_str!("../../migrations/0002_projections_and_streams.sql"),
    ),
    (3, include_str!("../../migrations/0003_tasks.sql")),
    (
        4,
        include_str!("../../migrations/0004_task_trigger_last_seen.sql"),
    ),
    (5, include_str!("../../migrations/0005_parked_events.sql")),
];

/// Any constant works; it only has to be the same for every Herald process.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// Applies the migrations not yet applied; returns how many ran.
pub async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
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
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO herald.schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
