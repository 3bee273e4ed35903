//! Reads from document views as the api answers them: connections, the by-id read, waiting for
//! a view to reach a position, and signed page cursors. The SQL is the projector's
//! (`herald_projector::query`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::Pool;
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use herald_bus::store::parse_tx_id;
use herald_projector::catalog::active_checkpoint;
use herald_projector::query::{self, DocumentView};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::ApiError;

/// A pooled connection to the event store; `503` when none can be had.
pub async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, ApiError> {
    pool.get().await.map_err(ApiError::store_unavailable)
}

/// One document (not archived) and the view's checkpoint, in one round trip.
pub async fn fetch_document(
    pool: &Pool,
    view: &DocumentView,
    tenant: &str,
    id: Uuid,
) -> Result<(Option<DocumentState>, LogPosition), ApiError> {
    let client = connection(pool).await?;
    Ok(query::fetch_document(&client, view, tenant, id).await?)
}

/// The key that signs page cursors, so a client cannot forge or alter one.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

type Mac = hmac::Hmac<sha2::Sha256>;
const MAC_LEN: usize = 16;

impl CursorKey {
    /// Derived from the token key, so every api process agrees; random when there is none.
    pub fn from_settings(auth: &herald_bus::settings::AuthSettings) -> Self {
        use hmac::Mac as _;
        use rand::RngCore;
        use secrecy::ExposeSecret;
        let mut key = [0u8; 32];
        match auth
            .hs256_secret
            .as_ref()
            .and_then(|s| Mac::new_from_slice(s.expose_secret().as_bytes()).ok())
        {
            Some(mut mac) => {
                mac.update(b"herald list cursor");
                key.copy_from_slice(&mac.finalize().into_bytes());
            }
            None => rand::rng().fill_bytes(&mut key),
        }
        Self(key)
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> Option<Mac> {
        use hmac::Mac as _;
        let mut mac = Mac::new_from_slice(&self.0).ok()?;
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        Some(mac)
    }

    /// A cursor carrying `payload` (where a page ends) for `scope` (what it pages: a collection,
    /// a document's history): the payload and a truncated MAC, base64url.
    pub fn encode(&self, scope: &str, payload: &[u8]) -> String {
        use hmac::Mac as _;
        let mut bytes = payload.to_vec();
        if let Some(mac) = self.mac(scope, payload) {
            bytes.extend_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of a cursor, if this server made it for `scope`.
    pub fn decode(&self, scope: &str, cursor: &str) -> Option<Vec<u8>> {
        use hmac::Mac as _;
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let split = bytes.len().checked_sub(MAC_LEN)?;
        let (payload, tag) = bytes.split_at(split);
        self.mac(scope, payload)?.verify_truncated_left(tag).ok()?;
        Some(payload.to_vec())
    }
}

/// Waits until the view covers `target`, up to `wait`; the answer of a read may then include
/// the caller's own write.
pub async fn wait_for_position(
    pool: &Pool,
    view: &DocumentView,
    target: LogPosition,
    wait: Duration,
) -> Result<(), ApiError> {
    // A token no write has produced yet would be waited for in vain: refuse it at once.
    check_issued(pool, "min_position", target).await?;
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(2);
    loop {
        let client = connection(pool).await?;
        let checkpoint = active_checkpoint(&**client, &view.projection)
            .await
            .map_err(ApiError::store_unavailable)?;
        drop(client);
        if checkpoint >= target {
            return Ok(());
        }
        if Instant::now() + delay > deadline {
            return Err(ApiError::ViewLagging);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Refuses a position no write has produced yet (a forged or foreign token), naming `parameter`.
pub async fn check_issued(
    pool: &Pool,
    parameter: &str,
    target: LogPosition,
) -> Result<(), ApiError> {
    let client = connection(pool).await?;
    let head: String = client
        .query_one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", &[])
        .await
        .map_err(ApiError::store_unavailable)?
        .try_get(0)
        .map_err(ApiError::internal)?;
    if target.tx_id >= parse_tx_id(&head).map_err(ApiError::internal)? {
        return Err(ApiError::invalid_query(
            parameter,
            "is beyond the end of the log",
        ));
    }
    Ok(())
}
