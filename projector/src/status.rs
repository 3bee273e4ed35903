//! What operators see of each projection: its versions, state, checkpoint, lag against the safe
//! frontier, last heartbeat and rebuild progress (`GET /v1/admin/projections`, `/metrics`,
//! `/readyz`).

use herald_bus::store::StoreError;
use herald_bus::store::reader::{Lag, lag, oldest_unread_age};
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

use crate::catalog::{ProjectionVersion, VersionState, live_versions};

/// One live version and its lag.
#[derive(Debug, Clone)]
pub struct VersionStatus {
    pub version: ProjectionVersion,
    pub lag: Lag,
}

impl VersionStatus {
    pub fn to_json(&self) -> Value {
        let v = &self.version;
        let mut body = json!({
            "name": v.table.projection,
            "version": v.table.version,
            "state": v.state,
            "checkpoint": v.checkpoint,
            "lag": {"events": self.lag.events, "seconds": self.lag.seconds},
            "heartbeat_at": v.heartbeat_at,
            "runner": v.runner,
            "created_at": v.created_at,
            "activated_at": v.activated_at,
            "events_applied": v.events_done,
        });
        if v.state == VersionState::Building {
            // Events that arrive during the rebuild count too: done + still to read.
            let total = v.events_done + self.lag.events;
            body["rebuild"] = json!({
                "done": v.events_done,
                "total": total,
                "percent": if total == 0 { 100.0 } else { 100.0 * v.events_done as f64 / total as f64 },
            });
        }
        body
    }
}

/// Every live version with its lag, by projection and version.
pub async fn statuses(client: &impl GenericClient) -> Result<Vec<VersionStatus>, StoreError> {
    let mut out = Vec::new();
    for version in live_versions(client).await? {
        let lag = lag(client, version.checkpoint, Some(&version.table.projection)).await?;
        out.push(VersionStatus { version, lag });
    }
    Ok(out)
}

/// The active versions whose oldest unapplied event is older than `bound_secs`.
pub async fn stuck(
    client: &impl GenericClient,
    bound_secs: f64,
) -> Result<Vec<String>, StoreError> {
    let mut stuck = Vec::new();
    for version in live_versions(client).await? {
        if version.state != VersionState::Active {
            continue;
        }
        let age = oldest_unread_age(client, version.checkpoint, &version.table.projection).await?;
        if age > bound_secs {
            stuck.push(version.table.checkpoint);
        }
    }
    Ok(stuck)
}
