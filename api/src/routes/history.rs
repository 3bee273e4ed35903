//! A document's past: `GET /v1/{app}/{doc}/{id}/history` (every event, oldest first, with the
//! fields each one changed) and the state at a version or time (`?as_of=` on a read). Both fold
//! the document's stream from Postgres and need the collection's `history` right.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use herald_bus::access::{Ownership, Principal};
use herald_bus::document::{DocumentState, rfc3339};
use herald_bus::schema::{AclAction, DocumentSchema};
use herald_bus::store::reader::{RecordedEvent, read_stream};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query, page_limit, reject_unknown_parameters};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/{app}/{doc}/{id}/history", get(history))
}

/// A document's events, by version, and its creator.
pub struct Past {
    pub events: Vec<RecordedEvent>,
    pub creator: String,
}

/// The past of a document the caller may read the history of (its collection found with
/// [`AppState::readable_collection`]): `404` (or `401`) when it may not read the document, `403`
/// when it may read it but not its history. Archived documents keep their history.
pub async fn readable_history(
    state: &AppState,
    caller: &Caller,
    schema: &DocumentSchema,
    id: Uuid,
) -> Result<Past, ApiError> {
    let principal = &caller.0;
    let client = state.db().await?;
    let stream_id = format!("{}.{id}", schema.collection());
    let events = read_stream(&**client, principal.tenant.as_str(), &stream_id)
        .await
        .map_err(ApiError::store_unavailable)?;
    let creator = events
        .first()
        .and_then(|e| e.created_by.clone())
        .ok_or_else(|| caller.hidden())?;
    let owner = Ownership::CreatedBy(&creator);
    if !principal.may(schema.acl.roles(&AclAction::Read), owner) {
        return Err(caller.hidden());
    }
    if !principal.may(schema.acl.roles(&AclAction::History), owner) {
        return Err(ApiError::Forbidden(
            "you may not read the history of this document".into(),
        ));
    }
    Ok(Past { events, creator })
}

/// Folds `events` and returns the state after the last one.
fn fold(events: &[RecordedEvent]) -> Result<Option<DocumentState>, ApiError> {
    events.iter().try_fold(None, |state, event| {
        event.fold(state).map(Some).map_err(ApiError::internal)
    })
}

/// A point in a document's past: a version, or a time.
#[derive(Debug, Clone, Copy)]
pub enum AsOf {
    Version(i64),
    Time(DateTime<Utc>),
}

impl AsOf {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if let Ok(version) = raw.parse::<i64>() {
            return if version >= 1 {
                Ok(Self::Version(version))
            } else {
                Err(ApiError::invalid_query("as_of", "a version starts at 1"))
            };
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| Self::Time(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid_query("as_of", "must be a version or an RFC 3339 time"))
    }

    fn covers(self, event: &RecordedEvent) -> bool {
        match self {
            Self::Version(version) => event.version <= version,
            Self::Time(time) => event.recorded_at <= time,
        }
    }
}

/// The document as it was at `as_of`: `None` when it did not exist yet or was archived then.
pub fn state_as_of(
    events: &[RecordedEvent],
    as_of: AsOf,
) -> Result<Option<DocumentState>, ApiError> {
    let until = events.iter().take_while(|e| as_of.covers(e)).count();
    Ok(fold(&events[..until])?.filter(|state| !state.archived))
}

/// The fields of a state as the caller may see them.
fn visible(
    principal: &Principal,
    schema: &DocumentSchema,
    state: Option<&DocumentState>,
    creator: &str,
) -> Map<String, Value> {
    let mut fields = state.map(|s| s.fields.clone()).unwrap_or_default();
    principal.redact(&schema.fields, &mut fields, Ownership::CreatedBy(creator));
    fields
}

/// One history entry: who did what, and each visible field's value before and after.
fn entry(event: &RecordedEvent, before: &Map<String, Value>, after: &Map<String, Value>) -> Value {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changes: Map<String, Value> = names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| {
            let change = json!({
                "before": before.get(name).cloned().unwrap_or(Value::Null),
                "after": after.get(name).cloned().unwrap_or(Value::Null),
            });
            (name.clone(), change)
        })
        .collect();
    let actor = &event.metadata.actor;
    json!({
        "version": event.version,
        "type": event.event_type,
        "time": rfc3339(event.recorded_at),
        "actor": {"sub": actor.sub, "roles": actor.roles},
        "command_id": event.metadata.command_id,
        "idempotency_key": event.metadata.idempotency_key,
        "changes": changes,
    })
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, doc, id)): Path<(String, String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (schema, _) = state.readable_collection(&caller, &app, &doc)?;
    let id = caller.document_id(&id)?;
    reject_unknown_parameters(&query, &["limit", "cursor"])?;
    let limit = usize::try_from(page_limit(query.get("limit"))?).unwrap_or(usize::MAX);
    let scope = format!("history {}.{id}", schema.collection());
    let after = match query.get("cursor") {
        None => 0,
        Some(raw) => state
            .cursors
            .decode(&scope, raw)
            .and_then(|bytes| Some(i64::from_be_bytes(bytes.try_into().ok()?)))
            .ok_or_else(|| ApiError::invalid_query("cursor", "not a cursor from this server"))?,
    };
    let Past { events, creator } = readable_history(&state, &caller, schema, id).await?;
    let principal = &caller.0;
    let mut data = Vec::new();
    let mut current: Option<DocumentState> = None;
    for event in &events {
        let next = event.fold(current.clone()).map_err(ApiError::internal)?;
        if event.version > after {
            let before = visible(principal, schema, current.as_ref(), &creator);
            let after = visible(principal, schema, Some(&next), &creator);
            data.push(entry(event, &before, &after));
            if data.len() > limit {
                break;
            }
        }
        current = Some(next);
    }
    let has_more = data.len() > limit;
    data.truncate(limit);
    let next_cursor = has_more
        .then(|| data.last().and_then(|e| e["version"].as_i64()))
        .flatten()
        .map(|version| state.cursors.encode(&scope, &version.to_be_bytes()));
    let mut response =
        Json(json!({"data": data, "next_cursor": next_cursor, "has_more": has_more}))
            .into_response();
    if let Some(cursor) = &next_cursor {
        let link =
            format!("</v1/{app}/{doc}/{id}/history?limit={limit}&cursor={cursor}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}
