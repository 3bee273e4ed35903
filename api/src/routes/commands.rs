//! `GET /v1/commands/{id}`: a command's status, for clients that got `202 Accepted`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use herald_bus::command::Outcome;
use herald_bus::document::rfc3339;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;
use crate::submit::visible_document;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/commands/{id}", get(command_status))
}

async fn command_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = &caller.0;
    // Anonymous callers share no identity, so no command is theirs to look up.
    if principal.is_anonymous() {
        return Err(caller.hidden());
    }
    let id = Uuid::parse_str(&id).map_err(|_| caller.hidden())?;
    let stored = state
        .store
        .load_tenant_command(&principal.tenant, id)
        .await
        .map_err(ApiError::store_unavailable)?
        .filter(|c| principal.is_admin() || c.principal_sub == principal.actor_sub())
        .ok_or_else(|| caller.hidden())?;
    let (status, position, result, problem) = match &stored.outcome {
        None => ("accepted", None, None, None),
        Some(Outcome::Succeeded(success)) => {
            let result = state
                .registry
                .named(&stored.collection)
                .map(|schema| visible_document(schema, principal, success));
            (
                "succeeded",
                success.position.map(|p| p.token()),
                result,
                None,
            )
        }
        Some(Outcome::Rejected(rejection)) => {
            let problem = ApiError::from(rejection.clone()).problem();
            ("rejected", None, None, Some(problem))
        }
    };
    Ok(Json(json!({
        "id": stored.id,
        "status": status,
        "created_at": rfc3339(stored.created_at),
        "completed_at": stored.completed_at.map(rfc3339),
        "position": position,
        "result": result,
        "problem": problem,
    })))
}
