//! `POST /v1/api-keys`, `GET /v1/api-keys`, `DELETE /v1/api-keys/{id}`: a tenant's API keys,
//! for its admins (see [`crate::api_keys`]).

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::Utc;
use herald_bus::schema::validate::validate_fields;
use herald_bus::schema::{ErrorCode, Field, FieldError, FieldKind, Fields, Mode};
use serde_json::{Value, json};

use crate::api_keys::{self, RolesError, grantable};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api-keys", post(create).get(list))
        .route("/v1/api-keys/{id}", delete(revoke))
}

/// The body of `POST /v1/api-keys`, in the language of document fields.
static NEW_KEY: LazyLock<Fields> = LazyLock::new(|| {
    let mut name = Field::new(FieldKind::String);
    (name.required, name.min, name.max) = (true, Some(1.0), Some(100.0));
    let mut role = Field::new(FieldKind::String);
    role.max = Some(64.0);
    let mut roles = Field::new(FieldKind::Array(Box::new(role)));
    (roles.required, roles.max_items) = (true, Some(20));
    let mut days = Field::new(FieldKind::Integer);
    (days.required, days.min, days.max) = (true, Some(1.0), Some(365.0));
    [("name", name), ("roles", roles), ("expires_in_days", days)]
        .into_iter()
        .map(|(key, field)| (key.to_owned(), field))
        .collect()
});

/// Only the tenant's admins manage its keys.
fn admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.is_anonymous() {
        Err(caller.hidden())
    } else if caller.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only an admin of the tenant manages its API keys".into(),
        ))
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    let invalid = |errors| ApiError::Validation {
        detail: "the API key's description is not valid".into(),
        errors,
    };
    let checked = validate_fields(&NEW_KEY, &Value::Object(body.object), Mode::Create, &|_| {
        true
    })
    .map_err(invalid)?;
    let requested: Vec<String> = checked["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let roles = grantable(&caller.0, &requested).map_err(|error| {
        invalid(vec![FieldError {
            pointer: "/roles".into(),
            code: match error {
                RolesError::NotARole(_) => ErrorCode::Enum,
                RolesError::NotYours(_) => ErrorCode::ForbiddenField,
            },
            detail: error.to_string(),
        }])
    })?;
    let name = checked["name"].as_str().unwrap_or_default();
    let days = checked["expires_in_days"].as_i64().unwrap_or(1);
    let expires_at = Utc::now() + chrono::Duration::days(days);
    let client = state.db().await?;
    let (key, text) = api_keys::create(&client, &caller.0, name, &roles, expires_at)
        .await
        .map_err(ApiError::store_unavailable)?;
    let mut shown = json!(key);
    shown["key"] = json!(text);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    admin(&caller)?;
    let client = state.db().await?;
    let keys = api_keys::list(&client, &caller.0.tenant)
        .await
        .map_err(ApiError::store_unavailable)?;
    Ok(Json(json!({"data": keys})).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    let id = caller.document_id(&id)?;
    let client = state.db().await?;
    let revoked = api_keys::revoke(&client, &caller.0.tenant, id)
        .await
        .map_err(ApiError::store_unavailable)?;
    if revoked {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
