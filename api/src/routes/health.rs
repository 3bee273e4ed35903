//! `/healthz` (the process is alive) and `/readyz` (it can serve: Postgres and NATS answer, and
//! no active view lags further behind the log than `projector.max_lag_secs`). `/readyz` also
//! reports each role of the process and the parked events: a role that is restarting after a
//! failure, or parked events, make the status `degraded` (still `200`: the api serves).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use herald_bus::store::parked;
use herald_bus::supervise::RoleState;
use herald_projector::status::stuck;

use crate::error::ApiError;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Active views whose oldest unapplied event is older than the configured bound, and the parked
/// events by reader; `None` when Postgres does not answer (or a check fails).
async fn stuck_projections(state: &AppState) -> Option<(Vec<String>, Vec<(String, i64)>)> {
    let client = state.store.pool().get().await.ok()?;
    let bound = state.settings.projector.max_lag_secs as f64;
    let stuck = stuck(&**client, bound).await.ok()?;
    let parked = parked::counts(&**client).await.ok()?;
    Some((stuck, parked))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stuck = tokio::time::timeout(CHECK_TIMEOUT, stuck_projections(&state))
        .await
        .ok()
        .flatten();
    let postgres_ok = stuck.is_some();
    let nats_ok = matches!(
        state.bus.client.connection_state(),
        async_nats::connection::State::Connected
    ) && tokio::time::timeout(CHECK_TIMEOUT, state.bus.client.flush())
        .await
        .is_ok_and(|r| r.is_ok());
    let (stuck, parked) = stuck.unwrap_or_default();
    let roles = state.roles.snapshot();
    let failed: Vec<&str> = roles
        .iter()
        .filter(|(_, role)| matches!(role, RoleState::Failed { .. }))
        .map(|(name, _)| name.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "not ready: role(s) {} failed",
            failed.join(", ")
        )));
    }
    if postgres_ok && nats_ok && stuck.is_empty() {
        let degraded = !parked.is_empty() || !state.roles.degraded().is_empty();
        let parked: serde_json::Map<String, Value> = parked
            .into_iter()
            .map(|(reader, count)| (reader, count.into()))
            .collect();
        Ok(Json(json!({
            "status": if degraded { "degraded" } else { "ready" },
            "checks": {"postgres": "ok", "nats": "ok", "projections": "ok"},
            "roles": roles,
            "parked_events": parked,
        })))
    } else if postgres_ok && nats_ok {
        Err(ApiError::Unavailable(format!(
            "not ready: projection(s) {} lag more than {} s behind the log",
            stuck.join(", "),
            state.settings.projector.max_lag_secs
        )))
    } else {
        let failing: Vec<&str> = [("postgres", postgres_ok), ("nats", nats_ok)]
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect();
        Err(ApiError::Unavailable(format!(
            "not ready: {} unreachable",
            failing.join(" and ")
        )))
    }
}
