//! Operators' routes (admins of `auth.operator_tenant`): projection status and rebuilds, and the
//! events readers parked.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_bus::store::parked;
use herald_projector::catalog::request_rebuild;
use herald_projector::status::statuses;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/projections", get(list))
        .route("/v1/admin/projections/{name}", get(show))
        .route("/v1/admin/projections/{name}/rebuild", post(rebuild))
        .route("/v1/admin/parked-events", get(parked_events))
}

/// Operators only (admins of `auth.operator_tenant`): these routes act on every tenant's data.
/// Anonymous callers must authenticate, others are refused.
pub(crate) fn operator(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let operator_tenant = state.settings.auth.operator_tenant.as_deref();
    if caller.0.is_operator(operator_tenant) {
        Ok(())
    } else if caller.0.is_anonymous() {
        Err(ApiError::Unauthenticated("a bearer token is required"))
    } else {
        Err(ApiError::Forbidden(
            "this route needs the admin role in the operators' tenant".into(),
        ))
    }
}

/// The most parked events listed at once.
const PARKED_LIST_LIMIT: i64 = 1_000;

/// The events readers parked (newest first): which reader, where in the log, and why.
async fn parked_events(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &caller)?;
    let client = state.db().await?;
    let events = parked::list(&**client, PARKED_LIST_LIMIT)
        .await
        .map_err(ApiError::store_unavailable)?;
    Ok(Json(json!({"data": events})))
}

/// Every live version, as operators see them.
async fn projections(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let client = state.db().await?;
    Ok(statuses(&**client)
        .await
        .map_err(ApiError::store_unavailable)?
        .iter()
        .map(|s| s.to_json())
        .collect())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    operator(&state, &caller)?;
    Ok(Json(json!({"data": projections(&state).await?})))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &caller)?;
    state.registry.named(&name).ok_or(ApiError::NotFound)?;
    let versions: Vec<Value> = projections(&state)
        .await?
        .into_iter()
        .filter(|v| v["name"] == name.as_str())
        .collect();
    Ok(Json(json!({"name": name, "versions": versions})))
}

/// Starts building a new version from position zero (or reports the one already building);
/// the current version keeps serving reads until the new one has caught up.
async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    operator(&state, &caller)?;
    let schema = state.registry.named(&name).ok_or(ApiError::NotFound)?;
    let mut client = state.db().await?;
    let version = request_rebuild(&mut client, schema)
        .await
        .map_err(ApiError::store_unavailable)?;
    let location = format!("/v1/admin/projections/{name}");
    let body = json!({
        "name": name,
        "version": version.table.version,
        "state": version.state,
        "events_total": version.events_total,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}
