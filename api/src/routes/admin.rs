//! Operators' routes (admins of `auth.operator_tenant`): projection status and rebuilds, and the
//! events readers parked, with their replay.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_bus::schema::validate::validate_fields;
use herald_bus::schema::{Field, FieldKind, Fields, Mode};
use herald_bus::store::{notify, parked};
use herald_projector::VersionTable;
use herald_projector::catalog::{live_versions, request_rebuild};
use herald_projector::status::statuses;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::{JsonBody, ParamsBody};
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/projections", get(list))
        .route("/v1/admin/projections/{name}", get(show))
        .route("/v1/admin/projections/{name}/rebuild", post(rebuild))
        .route("/v1/admin/parked-events", get(parked_events))
        .route("/v1/admin/parked-events/replay", post(replay_parked_events))
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

/// The body of `POST /v1/admin/parked-events/replay`, in the language of document fields.
static REPLAY: LazyLock<Fields> = LazyLock::new(|| {
    let mut reader = Field::new(FieldKind::String);
    (reader.min, reader.max) = (Some(1.0), Some(200.0));
    [("reader".to_owned(), reader)].into_iter().collect()
});

/// Asks view versions to apply their parked events again: the one named by `reader`, else every
/// live one. Each version's runner refolds the events' documents once it is idle and drops the
/// parked rows that now apply. The relay's and the task triggers' parked events are records
/// only: no reader of theirs is a view version, so none is ever replayed.
async fn replay_parked_events(
    State(state): State<AppState>,
    caller: Caller,
    ParamsBody(body): ParamsBody,
) -> Result<Response, ApiError> {
    operator(&state, &caller)?;
    let reader = replay_reader(body)?;
    let client = state.db().await?;
    let versions = live_versions(&**client)
        .await
        .map_err(ApiError::store_unavailable)?;
    let views: Vec<&VersionTable> = versions
        .iter()
        .map(|v| &v.table)
        .filter(|table| reader.as_deref().is_none_or(|r| r == table.checkpoint))
        .collect();
    if reader.is_some() && views.is_empty() {
        return Err(ApiError::NotFound);
    }
    let readers: Vec<String> = views.iter().map(|t| t.checkpoint.clone()).collect();
    let requested = parked::request_replay(&**client, &readers)
        .await
        .map_err(ApiError::store_unavailable)?;
    // Wakes the runners at once; without it they find the request at their next poll.
    let collections: Vec<String> = views.iter().map(|t| t.projection.clone()).collect();
    if let Err(error) = notify::announce(&client, &collections).await {
        tracing::debug!(%error, "replay notifications not sent");
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"requested": requested}))).into_response())
}

/// The view version a replay is limited to, when the body names one.
fn replay_reader(body: JsonBody) -> Result<Option<String>, ApiError> {
    let checked = validate_fields(&REPLAY, &Value::Object(body.object), Mode::Create, &|_| {
        true
    })
    .map_err(|errors| ApiError::Validation {
        detail: "the replay request is not valid".into(),
        errors,
    })?;
    Ok(checked["reader"].as_str().map(str::to_owned))
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
