//! The services tests run against, found through `HERALD_TEST_DATABASE_URL` and
//! `HERALD_TEST_NATS_URL`: a database per test, cloned from a template migrated once per
//! migration set, and the clean-up of what failed tests left behind.

// A test harness: a row it cannot decode fails the test, as an assertion would.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use herald_bus::store::migrate;
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::NoTls;

const TEMPLATE_LOCK: i64 = 0x7465_6d70_6c74;

pub(crate) fn admin_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub(crate) fn nats_url() -> String {
    std::env::var("HERALD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub(crate) fn random_lower(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

pub(crate) async fn admin_client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(
        || "cannot reach the test Postgres (set HERALD_TEST_DATABASE_URL or run scripts/test)",
    )?;
    tokio::spawn(connection);
    Ok(client)
}

/// The URL of database `name` on the test server.
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => admin,
    }
}

/// The migrated template every test database is cloned from; made once per migration set.
async fn template() -> anyhow::Result<&'static str> {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    let name = TEMPLATE
        .get_or_try_init(|| async {
            let admin = admin_client(&admin_url()).await?;
            admin
                .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
                .await?;
            let result = async {
                let name = format!(
                    "herald_template_{}",
                    env!("CARGO_PKG_VERSION").replace('.', "_")
                );
                let migrated = admin
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                    .await?
                    .is_some();
                let (mut client, connection) = if migrated {
                    tokio_postgres::connect(&database_url(&name), NoTls).await?
                } else {
                    admin
                        .batch_execute(&format!("CREATE DATABASE {name}"))
                        .await?;
                    tokio_postgres::connect(&database_url(&name), NoTls).await?
                };
                let driver = tokio::spawn(connection);
                // Applies only what the template lacks, so a new migration updates it.
                migrate(&mut client, &herald_cli::database::MIGRATIONS).await?;
                drop(client);
                drop(driver.await);
                drop_stale_databases(&admin).await?;
                drop_stale_streams().await;
                anyhow::Ok(name)
            }
            .await;
            admin
                .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
                .await?;
            result
        })
        .await?;
    Ok(name.as_str())
}

/// Test databases are named with their creation time; ones older than an hour are leftovers.
async fn drop_stale_databases(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'herald_test_%'",
            &[],
        )
        .await?;
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            drop(
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await,
            );
        }
    }
    Ok(())
}

/// Test streams (prefix `t…`, so `T…_COMMANDS`) older than an hour are leftovers of tests
/// that failed before cleaning up.
async fn drop_stale_streams() {
    use futures::TryStreamExt;
    let Ok(client) = async_nats::connect(nats_url()).await else {
        return;
    };
    let jetstream = async_nats::jetstream::new(client);
    let names: Vec<String> = jetstream
        .stream_names()
        .try_collect()
        .await
        .unwrap_or_default();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in names.iter().filter(|n| {
        n.starts_with('T')
            && (n.ends_with("_COMMANDS") || n.ends_with("_TASKS") || n.ends_with("_EVENTS"))
    }) {
        let Ok(mut stream) = jetstream.get_stream(name).await else {
            continue;
        };
        let old = stream
            .info()
            .await
            .is_ok_and(|info| SystemTime::from(info.created) < hour_ago);
        if old {
            drop(jetstream.delete_stream(name).await);
        }
    }
}

/// A fresh, migrated database for one test.
pub async fn create_test_database() -> anyhow::Result<String> {
    static CLONING: Mutex<()> = Mutex::const_new(());
    let template = template().await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let name = format!("herald_test_{now}_{}", random_lower(10));
    let _one_at_a_time = CLONING.lock().await;
    let admin = admin_client(&admin_url()).await?;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await?;
    let created = admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .await;
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await?;
    created?;
    Ok(name)
}

/// Runs `sql` on the test server's maintenance database (for faults such as refusing
/// connections to a test database).
pub async fn admin_execute(sql: &str) {
    let client = match admin_client(&admin_url()).await {
        Ok(client) => client,
        Err(error) => panic!("{error:#}"),
    };
    if let Err(error) = client.batch_execute(sql).await {
        panic!("{sql}: {error}");
    }
}
