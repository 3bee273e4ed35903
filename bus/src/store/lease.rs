//! Leases: one active runner per job (a projection version, the relay), with standbys.
//!
//! A lease is a session-level advisory lock held by a dedicated connection, and the holder does
//! its Postgres writes on that same connection. When the holder dies, Postgres ends its session
//! and frees the lock, so a standby's next attempt takes over; a holder whose connection broke
//! cannot write to Postgres any more either. (Writes elsewhere — the relay's publishes — need a
//! guard of their own: see `crate::relay`.)

use std::sync::OnceLock;

use deadpool_postgres::ClientWrapper;
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

use super::StoreError;
use crate::settings::DatabaseSettings;

/// The advisory-lock key of a named job (a stable digest, the same in every process).
pub fn lease_key(name: &str) -> i64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&Sha256::digest(format!("herald lease {name}").as_bytes())[..8]);
    i64::from_be_bytes(key)
}

/// Names this process in heartbeats: `<host>/<pid>`.
pub fn runner_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}/{}", std::process::id())
    })
}

/// A connection of its own, outside the pool, with a statement cache of its own.
pub async fn connect(database: &DatabaseSettings) -> Result<ClientWrapper, StoreError> {
    let (client, connection) = database.pg_config()?.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "dedicated connection lost");
        }
    });
    Ok(ClientWrapper::new(client, driver))
}

/// A dedicated connection that may hold leases. Dropping it closes the session, which frees
/// every lease it holds.
pub struct LeaseConnection {
    client: ClientWrapper,
}

impl LeaseConnection {
    pub async fn open(database: &DatabaseSettings) -> Result<Self, StoreError> {
        Ok(Self {
            client: connect(database).await?,
        })
    }

    /// Takes the lease `key` if nobody holds it; `false` when another session does.
    pub async fn try_take(&self, key: i64) -> Result<bool, StoreError> {
        Ok(self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await?
            .try_get(0)?)
    }

    /// The connection, for the holder's work.
    pub fn client(&mut self) -> &mut ClientWrapper {
        &mut self.client
    }
}
