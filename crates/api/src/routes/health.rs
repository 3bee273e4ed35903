//! `/healthz` (the process is alive) and `/readyz` (it can serve: Postgres and NATS answer, and
//! no active view lags further behind the log than `projector.max_lag_secs`).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

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

/// Active views whose oldest unapplied event is older than the configured bound; `None` when
/// Postgres does not answer (or the check fails).
async fn stuck_projections(state: &AppState) -> Option<Vec<String>> {
    let client = state.store.pool().get().await.ok()?;
    let bound = state.settings.projector.max_lag_secs as f64;
    stuck(&**client, bound).await.ok()
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
    let stuck = stuck.unwrap_or_default();
    if postgres_ok && nats_ok && stuck.is_empty() {
        Ok(Json(
            json!({"status": "ready", "checks": {"postgres": "ok", "nats": "ok", "projections": "ok"}}),
        ))
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
