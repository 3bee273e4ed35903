//! Task runs: one run's state for its tenant's admins, and the dead letters for operators.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_workers::queue::publish;
use herald_workers::runs::{self, TaskRow};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query, page_limit, reject_unknown_parameters};
use crate::routes::admin::operator;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks/{id}", get(show))
        .route("/v1/admin/tasks/dead", get(dead))
        .route("/v1/admin/tasks/dead/{id}/retry", post(retry))
}

/// A run as its readers see it: without its payload (the event, which may hold fields the
/// reader may not read).
fn run_json(row: &TaskRow) -> Value {
    json!({
        "id": row.id, "name": row.name, "state": row.state, "attempts": row.attempts,
        "max_attempts": row.max_attempts, "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at, "event_id": row.event_id,
        "duration_ms": row.duration_ms, "created_at": row.created_at,
        "updated_at": row.updated_at, "finished_at": row.finished_at,
    })
}

/// `GET /v1/tasks/{id}`: for admins of the run's tenant and operators; `404` for anyone else.
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = caller.document_id(&id)?;
    let client = state.db().await?;
    let row = runs::load(&**client, id)
        .await
        .map_err(ApiError::store_unavailable)?;
    let operator_tenant = state.settings.auth.operator_tenant.as_deref();
    let principal = &caller.0;
    let visible = |row: &TaskRow| {
        principal.is_operator(operator_tenant)
            || (principal.is_admin() && principal.tenant.as_str() == row.tenant)
    };
    match row.filter(visible) {
        Some(row) => Ok(Json(run_json(&row))),
        None => Err(caller.hidden()),
    }
}

/// `GET /v1/admin/tasks/dead`: the dead runs of every tenant, most recently ended first, in
/// keyset pages.
async fn dead(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &caller)?;
    reject_unknown_parameters(&query, &["limit", "cursor"])?;
    let limit = page_limit(query.get("limit"))?;
    const SCOPE: &str = "dead tasks";
    let after = match query.get("cursor") {
        None => None,
        Some(raw) => Some(
            state
                .cursors
                .decode(SCOPE, raw)
                .and_then(|bytes| serde_json::from_slice::<(DateTime<Utc>, Uuid)>(&bytes).ok())
                .ok_or_else(|| {
                    ApiError::invalid_query("cursor", "not a cursor from this server")
                })?,
        ),
    };
    let client = state.db().await?;
    let mut rows = runs::dead(&**client, after, limit + 1)
        .await
        .map_err(ApiError::store_unavailable)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = match rows.last().filter(|_| has_more) {
        Some(last) => {
            let payload =
                serde_json::to_vec(&(last.updated_at, last.id)).map_err(ApiError::internal)?;
            Some(state.cursors.encode(SCOPE, &payload))
        }
        None => None,
    };
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut run = run_json(row);
            run["tenant"] = row.tenant.clone().into();
            run
        })
        .collect();
    Ok(Json(
        json!({"data": data, "next_cursor": next_cursor, "has_more": has_more}),
    ))
}

/// `POST /v1/admin/tasks/dead/{id}/retry`: the run goes back in the queue with its attempts
/// reset; `202` with its `Location`. A run that is not dead is `409`.
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    operator(&state, &caller)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let client = state.db().await?;
    let Some(row) = runs::requeue_dead(&**client, id)
        .await
        .map_err(ApiError::store_unavailable)?
    else {
        return match runs::load(&**client, id)
            .await
            .map_err(ApiError::store_unavailable)?
        {
            Some(row) => Err(ApiError::Conflict(format!(
                "the run is {}, not dead",
                row.state.as_str()
            ))),
            None => Err(ApiError::NotFound),
        };
    };
    // Published now; if this fails the run stays in the outbox and the trigger reader
    // publishes it.
    if publish(&state.bus, std::slice::from_ref(&row))
        .await
        .is_ok()
    {
        runs::published(&**client, &[(row.id, row.round)])
            .await
            .map_err(ApiError::store_unavailable)?;
    }
    let mut response = (StatusCode::ACCEPTED, Json(run_json(&row))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/tasks/{}", row.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}
