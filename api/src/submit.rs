//! Submitting a command: record it, publish it durably, wait for its outcome, answer.
//!
//! The command row is written before publishing so that `GET /v1/commands/{id}` and
//! idempotent retries know about it from the first moment; JetStream dedupes the publish on
//! `Nats-Msg-Id` (the command id), the handler dedupes on the stored outcome.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_bus::access::{Ownership, Principal};
use herald_bus::command::{CommandEnvelope, Effect, Outcome, Success};
use herald_bus::schema::DocumentSchema;
use herald_bus::store::{Acceptance, EventStore};
use serde_json::Value;

use crate::error::ApiError;
use crate::headers::{Wait, etag};
use crate::replies::Waiter;
use crate::state::AppState;

/// How long a publish may wait for JetStream's ack before the request fails fast.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn submit(
    state: &AppState,
    schema: &DocumentSchema,
    command: CommandEnvelope,
    wait: Wait,
) -> Result<Response, ApiError> {
    let wait = match wait {
        Wait::Up(duration) if !duration.is_zero() => Some(duration),
        _ => None,
    };
    // Recording and publishing run on a task of their own: a client that disconnects in
    // between must not leave a command recorded as accepted that is never published.
    let (accepted, waiter) = {
        let (state, command) = (state.clone(), command.clone());
        tokio::spawn(async move { record_and_publish(&state, &command, wait.is_some()).await })
            .await
            .map_err(ApiError::internal)??
    };
    if let Acceptance::Existing(stored) = accepted {
        if stored.request_hash != command.request_hash {
            return Err(ApiError::IdempotencyKeyReused);
        }
        if let Some(outcome) = stored.outcome {
            return respond(schema, &command.principal, outcome);
        }
        return Err(ApiError::IdempotencyInFlight);
    }
    if let (Some(mut waiter), Some(duration)) = (waiter, wait) {
        if let Ok(Ok(outcome)) = tokio::time::timeout(duration, &mut waiter.receiver).await {
            return respond(schema, &command.principal, outcome);
        }
        // The reply may have been lost: the stored outcome is authoritative.
        let stored = state
            .store
            .load_command(command.id)
            .await
            .map_err(ApiError::store_unavailable)?;
        if let Some(outcome) = stored.and_then(|s| s.outcome) {
            return respond(schema, &command.principal, outcome);
        }
    }
    Ok(accepted_response(&command))
}

/// Records the command and publishes it when it is new (with a waiter for its reply when
/// asked), or publishes it again when it is known but still undecided, so a command whose
/// first publish was lost cannot stay stuck (JetStream drops the copy if the first landed).
async fn record_and_publish(
    state: &AppState,
    command: &CommandEnvelope,
    wait: bool,
) -> Result<(Acceptance, Option<Waiter>), ApiError> {
    let accepted = state
        .store
        .accept_command(command)
        .await
        .map_err(ApiError::store_unavailable)?;
    match &accepted {
        Acceptance::New => {
            // Registered before publishing, so a fast reply is not missed.
            let waiter = wait.then(|| state.replies.register(command.id));
            let reply_to = waiter.as_ref().map(|_| state.replies.subject(command.id));
            publish(state, command, reply_to).await?;
            Ok((accepted, waiter))
        }
        Acceptance::Existing(stored)
            if stored.outcome.is_none() && stored.request_hash == command.request_hash =>
        {
            publish(state, command, None).await?;
            Ok((accepted, None))
        }
        Acceptance::Existing(_) => Ok((accepted, None)),
    }
}

#[tracing::instrument(skip_all, fields(command.id = %command.id), err(level = "warn"))]
async fn publish(
    state: &AppState,
    command: &CommandEnvelope,
    reply_to: Option<String>,
) -> Result<(), ApiError> {
    let ack = state.bus.publish_command(command, reply_to.as_deref());
    match tokio::time::timeout(PUBLISH_TIMEOUT, ack).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "command publish failed");
            Err(ApiError::Unavailable(
                "the command bus is unavailable; retry with the same Idempotency-Key".into(),
            ))
        }
        Err(_) => Err(ApiError::Unavailable(
            "the command bus did not confirm in time; retry with the same Idempotency-Key".into(),
        )),
    }
}

fn accepted_response(command: &CommandEnvelope) -> Response {
    let location = format!("/v1/commands/{}", command.id);
    let body = serde_json::json!({"id": command.id, "status": "accepted"});
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The document as the caller may see it.
pub fn visible_document(
    schema: &DocumentSchema,
    principal: &Principal,
    success: &Success,
) -> Value {
    let mut document = success.document.to_json();
    principal.redact(
        &schema.fields,
        &mut document,
        Ownership::CreatedBy(&success.document.created_by),
    );
    Value::Object(document)
}

/// The HTTP answer for an outcome: the same for the first request and every retry.
pub fn respond(
    schema: &DocumentSchema,
    principal: &Principal,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let success = match outcome {
        Outcome::Succeeded(success) => success,
        Outcome::Rejected(rejection) => return Err(rejection.into()),
    };
    let status = match success.effect {
        Effect::Created => StatusCode::CREATED,
        Effect::Changed => StatusCode::OK,
        Effect::Archived => StatusCode::NO_CONTENT,
    };
    let mut response = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, Json(visible_document(schema, principal, &success))).into_response()
    };
    let headers = response.headers_mut();
    let document = &success.document;
    if let Ok(value) = HeaderValue::from_str(&etag(document.version)) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = success
        .position
        .and_then(|p| HeaderValue::from_str(&p.token()).ok())
    {
        headers.insert("herald-position", value);
    }
    if status == StatusCode::CREATED {
        let location = format!("/v1/{}/{}/{}", schema.app, schema.name, document.id);
        if let Ok(value) = HeaderValue::from_str(&location) {
            headers.insert(header::LOCATION, value);
        }
    }
    Ok(response)
}
