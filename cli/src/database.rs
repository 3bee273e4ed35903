//! Creating the configured database (for `herald dev`) and applying migrations.

use anyhow::Context;
use herald_bus::settings::DatabaseSettings;
use herald_bus::store::{Migration, PgStore, migrate};
use tokio_postgres::NoTls;

/// Creates the configured database on its server when it does not exist yet.
pub async fn create_if_missing(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let name = settings.database_name()?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        anyhow::bail!("database name `{name}` must be letters, digits, `_` or `-`");
    }
    let mut config = settings.pg_config()?;
    config.dbname("postgres");
    let (client, connection) = config.connect(NoTls).await.context(
        "cannot connect to the Postgres server (is it running? see `scripts/services status`)",
    )?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        tracing::info!(database = %name, "database created");
    }
    drop(client);
    drop(driver.await);
    Ok(())
}

/// The migrations of every crate that owns tables: the event store, the projection catalog
/// and the task runs.
pub const MIGRATIONS: [&[Migration]; 4] = [
    herald_bus::store::MIGRATIONS,
    herald_projector::MIGRATIONS,
    herald_workers::MIGRATIONS,
    herald_api::MIGRATIONS,
];

/// Applies pending migrations; returns how many ran.
pub async fn run_migrations(store: &PgStore) -> anyhow::Result<usize> {
    let mut client = store
        .pool()
        .get()
        .await
        .context("cannot connect to the event store")?;
    Ok(migrate(&mut client, &MIGRATIONS).await?)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn the_crates_number_their_migrations_one_after_another() {
        let mut versions: Vec<i32> = MIGRATIONS
            .iter()
            .flat_map(|set| set.iter().map(|m| m.version))
            .collect();
        versions.sort_unstable();
        let expected: Vec<i32> = (1..=10).collect();
        assert_eq!(versions, expected);
    }
}
