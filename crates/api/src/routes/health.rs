//! `/healthz` (the process is alive) and `/readyz` (it can serve: Postgres and NATS answer).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

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

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let postgres = async {
        let client = state.store.pool().get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    let postgres_ok = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres).await,
        Ok(Some(_))
    );
    let nats_ok = matches!(
        state.bus.client.connection_state(),
        async_nats::connection::State::Connected
    ) && tokio::time::timeout(CHECK_TIMEOUT, state.bus.client.flush())
        .await
        .is_ok_and(|r| r.is_ok());
    if postgres_ok && nats_ok {
        Ok(Json(
            json!({"status": "ready", "checks": {"postgres": "ok", "nats": "ok"}}),
        ))
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
