//! The document collection routes: create, read, list, update, archive, restore. Each handler
//! reads as its steps: find the collection, authorize, validate, then submit or query.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use herald_bus::access::{Ownership, Principal};
use herald_bus::command::{Action, CommandEnvelope, RejectionCode, request_hash};
use herald_bus::decide::{creates, decide};
use herald_bus::document::DocumentState;
use herald_bus::ids::CommandId;
use herald_bus::position::LogPosition;
use herald_bus::references::with_unresolved;
use herald_bus::schema::model::On;
use herald_bus::schema::validate::validate_fields;
use herald_bus::schema::{AclAction, DocumentSchema, Mode};
use herald_bus::store::EventStore;
use herald_projector::query::{DocumentView, Vocabulary};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Caller;
use crate::body::{JsonBody, ParamsBody};
use crate::error::ApiError;
use crate::extract::{Path, Query, reject_unknown_parameters};
use crate::headers::{
    Wait, etag, idempotency_key, if_match, if_none_match, prefer_count, prefer_wait, traceparent,
};
use crate::list::{ListQuery, Listing};
use crate::routes::history::{AsOf, readable_history, state_as_of};
use crate::state::AppState;
use crate::submit::submit;
use crate::views::{fetch_document, wait_for_position};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/{app}/{doc}", post(create).get(list))
        .route(
            "/v1/{app}/{doc}/{id}",
            get(read)
                .patch(update)
                .delete(|request, path| bodiless(Action::Archive, request, path))
                // The segment after the collection names a command on the collection here.
                .post(run_on_collection),
        )
        .route(
            "/v1/{app}/{doc}/{id}/restore",
            post(|request, path| bodiless(Action::Restore, request, path)),
        )
        .route("/v1/{app}/{doc}/{id}/{command}", post(run))
}

/// The early check for creating, where no document exists yet to be hidden; actions on an
/// existing document are decided by the handler, which tells a missing document (`404`)
/// from a forbidden action (`403`).
fn authorize(caller: &Caller, schema: &DocumentSchema, action: &AclAction) -> Result<(), ApiError> {
    if caller.0.may_some_document(schema.acl.roles(action)) {
        Ok(())
    } else if caller.0.is_anonymous() {
        Err(caller.hidden())
    } else {
        Err(ApiError::Forbidden(format!(
            "you may not {action} documents of this collection"
        )))
    }
}

/// A command's params against their declaration: `422` with every error.
fn check_params(
    schema: &DocumentSchema,
    name: &str,
    params: &serde_json::Map<String, Value>,
) -> Result<(), ApiError> {
    let declared = schema.commands.get(name).ok_or(ApiError::NotFound)?;
    let body = Value::Object(params.clone());
    match validate_fields(&declared.params, &body, Mode::Create, &|_| true) {
        Ok(_) => Ok(()),
        Err(errors) => Err(ApiError::Validation {
            detail: format!("the params of `{name}` are not valid"),
            errors,
        }),
    }
}

/// The stateless checks (body shape, types, constraints, field write rights), so a bad request
/// costs no trip over the bus. When they fail, the checks that need stored data run too (the
/// decision on the current document, the references), so one answer names every problem.
async fn precheck(
    state: &AppState,
    schema: &DocumentSchema,
    command: &CommandEnvelope,
) -> Result<(), ApiError> {
    let principal = &command.principal;
    let (mode, owner) = match &command.action {
        Action::Create { .. } => (Mode::Create, Ownership::Creating),
        Action::Update { .. } => (Mode::Patch, Ownership::Unknown),
        Action::Archive | Action::Restore => return Ok(()),
        Action::Run {
            command: name,
            params,
        } => {
            let Err(invalid) = check_params(schema, name, params) else {
                return Ok(());
            };
            // Existence, rights and If-Match come before the params, as in the handler; the
            // decision stops at the params, so no command code runs here. A command on the
            // collection has a new id, which no stored document has.
            let current = if creates(schema, &command.action) {
                None
            } else {
                stored_document(state, schema, command).await?
            };
            return match decide(schema, current.as_ref(), command, Utc::now()) {
                Err(rejection) if rejection.code != RejectionCode::ValidationFailed => {
                    Err(rejection.into())
                }
                _ => Err(invalid),
            };
        }
    };
    let values = command.action.values();
    let may_write = |roles: &_| principal.may(Some(roles), owner);
    let Err(mut errors) = schema.validate(&Value::Object(values.clone()), mode, &may_write) else {
        return Ok(());
    };
    // The decision validates the body too, with the stored document: its errors are the
    // complete list (the body's own, `immutable`, the merged document).
    let current = match mode {
        Mode::Patch => stored_document(state, schema, command).await?,
        _ => None,
    };
    match decide(schema, current.as_ref(), command, Utc::now()) {
        Err(rejection) if rejection.code == RejectionCode::ValidationFailed => {
            errors = rejection.errors
        }
        // Existence and rights come before the body, as in the handler.
        Err(rejection) => return Err(rejection.into()),
        Ok(_) => {}
    }
    let errors = with_unresolved(
        &state.store,
        &state.registry,
        principal,
        &schema.fields,
        values,
        errors,
    )
    .await
    .map_err(ApiError::store_unavailable)?;
    Err(validation_failed(errors))
}

/// The document the command is about, as the handler will find it.
async fn stored_document(
    state: &AppState,
    schema: &DocumentSchema,
    command: &CommandEnvelope,
) -> Result<Option<DocumentState>, ApiError> {
    let stream = schema.collection().stream(command.document_id);
    let loaded = state
        .store
        .load_stream(&command.principal.tenant, stream.as_str())
        .await
        .map_err(ApiError::store_unavailable)?;
    Ok(loaded.map(|l| l.state))
}

fn validation_failed(errors: Vec<herald_bus::schema::FieldError>) -> ApiError {
    ApiError::Validation {
        detail: "the request body is not valid for this document".into(),
        errors,
    }
}

/// What every write takes from its request besides the path and body: the caller and the
/// headers and target the command's hash and preconditions come from.
struct Request {
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    method: Method,
}

impl FromRequestParts<AppState> for Request {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            state: state.clone(),
            caller: Caller::from_request_parts(parts, state).await?,
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
            method: parts.method.clone(),
        })
    }
}

impl Request {
    /// The collection the path names, if the caller may see it.
    fn schema(&self, app: &str, doc: &str) -> Result<Arc<DocumentSchema>, ApiError> {
        let (schema, _) = self.state.readable_collection(&self.caller, app, doc)?;
        Ok(Arc::clone(schema))
    }

    /// Builds and submits the command for `action` on one document.
    async fn send(
        self,
        schema: &DocumentSchema,
        document_id: Uuid,
        mut action: Action,
        raw_body: &[u8],
    ) -> Result<Response, ApiError> {
        if self.caller.0.is_anonymous()
            && !self
                .caller
                .0
                .may_some_document(schema.acl.roles(&action.acl_action()))
        {
            return Err(self.caller.hidden());
        }
        let idempotency_key = idempotency_key(&self.headers)?;
        if idempotency_key.is_some() && self.caller.0.is_anonymous() {
            // Keys are scoped to the caller, and anonymous callers have no identity to scope by.
            return Err(ApiError::Unauthenticated(
                "an Idempotency-Key needs an authenticated caller",
            ));
        }
        let principal = self.caller.0;
        let id = idempotency_key
            .as_deref()
            .map_or_else(CommandId::generate, |key| {
                CommandId::from_idempotency_key(&principal.tenant, principal.actor_sub(), key)
            });
        let expected_version = if_match(&self.headers)?;
        if schema.require_if_match && expected_version.is_none() && !creates(schema, &action) {
            return Err(ApiError::PreconditionRequired(
                "this collection requires If-Match with the document's version".into(),
            ));
        }
        let http = &self.state.settings.http;
        let wait = prefer_wait(
            &self.headers,
            http.default_wait(),
            std::time::Duration::from_secs(http.max_wait_secs),
        );
        // Passwords are hashed here, before anything is recorded or published.
        let digested = match &mut action {
            Action::Create { fields: values } | Action::Update { patch: values } => {
                self.state.passwords.seal(schema, values, raw_body).await?
            }
            _ => std::borrow::Cow::Borrowed(raw_body),
        };
        let command = CommandEnvelope {
            id,
            app: schema.app.clone(),
            doc: schema.name.clone(),
            document_id,
            action,
            expected_version,
            request_hash: request_hash(self.method.as_str(), self.uri.path(), &digested),
            principal,
            idempotency_key,
            correlation_id: id.0,
            causation_id: None,
            traceparent: traceparent(&self.headers),
            submitted_at: Utc::now(),
        };
        precheck(&self.state, schema, &command).await?;
        submit(&self.state, schema, command, wait).await
    }
}

async fn create(
    request: Request,
    Path((app, doc)): Path<(String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let schema = request.schema(&app, &doc)?;
    authorize(&request.caller, &schema, &AclAction::Create)?;
    let action = Action::Create {
        fields: body.object,
    };
    request
        .send(&schema, Uuid::now_v7(), action, &body.raw)
        .await
}

async fn update(
    request: Request,
    Path((app, doc, id)): Path<(String, String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let schema = request.schema(&app, &doc)?;
    let id = document_id(&request.caller, &schema, &id)?;
    let action = Action::Update { patch: body.object };
    request.send(&schema, id, action, &body.raw).await
}

/// Archive (`DELETE`) and restore: commands on one document that carry no body.
async fn bodiless(
    action: Action,
    request: Request,
    Path((app, doc, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let schema = request.schema(&app, &doc)?;
    let id = document_id(&request.caller, &schema, &id)?;
    request.send(&schema, id, action, &[]).await
}

/// The id of one document in the path. Where the name of a command on the collection stands in
/// its place, the path is that command's, which only takes `POST`.
fn document_id(caller: &Caller, schema: &DocumentSchema, id: &str) -> Result<Uuid, ApiError> {
    if schema.command(id, On::Collection).is_some() {
        return Err(ApiError::MethodNotAllowed(Some("POST")));
    }
    caller.document_id(id)
}

/// A command the collection declares, on one document; the body holds its params.
async fn run(
    request: Request,
    Path((app, doc, id, command)): Path<(String, String, String, String)>,
    ParamsBody(body): ParamsBody,
) -> Result<Response, ApiError> {
    let schema = request.schema(&app, &doc)?;
    let id = request.caller.document_id(&id)?;
    declared(&schema, &command, On::Document)?;
    let action = Action::Run {
        command,
        params: body.object,
    };
    request.send(&schema, id, action, &body.raw).await
}

/// A command the collection declares `on: collection`: it creates a document, under a new id.
async fn run_on_collection(
    request: Request,
    Path((app, doc, command)): Path<(String, String, String)>,
    ParamsBody(body): ParamsBody,
) -> Result<Response, ApiError> {
    let schema = request.schema(&app, &doc)?;
    if Uuid::parse_str(&command).is_ok() {
        // A document's path, which takes no POST.
        return Err(ApiError::MethodNotAllowed(Some("GET, PATCH, DELETE")));
    }
    declared(&schema, &command, On::Collection)?;
    let action = Action::Run {
        command,
        params: body.object,
    };
    authorize(&request.caller, &schema, &action.acl_action())?;
    request
        .send(&schema, Uuid::now_v7(), action, &body.raw)
        .await
}

/// A command is found only on the route of what it acts on.
fn declared(schema: &DocumentSchema, command: &str, on: On) -> Result<(), ApiError> {
    schema
        .command(command, on)
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

/// `min_position` from the query, waiting for the view to reach it when given.
async fn await_min_position(
    state: &AppState,
    view: &DocumentView,
    token: Option<&String>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let target = LogPosition::parse(token).ok_or_else(|| {
        ApiError::invalid_query("min_position", "not a position token from this server")
    })?;
    let http = &state.settings.http;
    let wait = match prefer_wait(
        headers,
        http.default_read_wait(),
        std::time::Duration::from_secs(http.max_wait_secs),
    ) {
        Wait::Up(duration) => duration,
        Wait::Async => http.default_read_wait(),
    };
    wait_for_position(state.store.pool(), view, target, wait).await
}

fn position_header(checkpoint: LogPosition) -> (&'static str, HeaderValue) {
    let value =
        HeaderValue::from_str(&checkpoint.token()).unwrap_or_else(|_| HeaderValue::from_static(""));
    ("herald-position", value)
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, doc, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (schema, view) = state.readable_collection(&caller, &app, &doc)?;
    let id = document_id(&caller, schema, &id)?;
    reject_unknown_parameters(&query, &["min_position", "as_of"])?;
    let if_none_match = if_none_match(&headers)?;
    if let Some(raw) = query.get("as_of") {
        return read_as_of(&state, &caller, schema, id, AsOf::parse(raw)?).await;
    }
    await_min_position(&state, view, query.get("min_position"), &headers).await?;
    let principal: &Principal = &caller.0;
    let (document, checkpoint) =
        fetch_document(state.store.pool(), view, principal.tenant.as_str(), id).await?;
    let document = document
        .filter(|d| {
            principal.may(
                schema.acl.roles(&AclAction::Read),
                Ownership::CreatedBy(&d.created_by),
            )
        })
        .ok_or_else(|| caller.hidden())?;
    let tag = HeaderValue::from_str(&etag(document.version)).map_err(ApiError::internal)?;
    let position = position_header(checkpoint);
    if if_none_match.matches(document.version) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)], [position]).into_response());
    }
    let mut body = document.to_json();
    principal.redact(
        &schema.fields,
        &mut body,
        Ownership::CreatedBy(&document.created_by),
    );
    Ok(([(header::ETAG, tag)], [position], Json(Value::Object(body))).into_response())
}

/// The document as it was at a version or time, folded from its events.
async fn read_as_of(
    state: &AppState,
    caller: &Caller,
    schema: &DocumentSchema,
    id: Uuid,
    as_of: AsOf,
) -> Result<Response, ApiError> {
    let past = readable_history(state, caller, schema, id).await?;
    let document = state_as_of(&past.events, as_of)?.ok_or(ApiError::NotFound)?;
    let tag = HeaderValue::from_str(&etag(document.version)).map_err(ApiError::internal)?;
    let mut body = document.to_json();
    caller.0.redact(
        &schema.fields,
        &mut body,
        Ownership::CreatedBy(&document.created_by),
    );
    Ok(([(header::ETAG, tag)], Json(Value::Object(body))).into_response())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, doc)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (schema, view) = state.readable_collection(&caller, &app, &doc)?;
    let principal = &caller.0;
    let own_only = !principal.may_any_document(schema.acl.roles(&AclAction::Read));
    let vocabulary = Vocabulary {
        schema,
        columns: &view.columns,
        principal,
        own_only,
    };
    let query = ListQuery::parse(&vocabulary, &pairs, &state.cursors)?;
    let min_position = pairs.iter().find(|(name, _)| name == "min_position");
    await_min_position(&state, view, min_position.map(|(_, v)| v), &headers).await?;
    let count = prefer_count(&headers);
    let listing = Listing {
        view,
        principal,
        own_only,
        count,
    };
    let page = query.run(&state, listing).await?;
    let data: Vec<Value> = page
        .documents
        .iter()
        .map(|document| {
            let mut body = document.to_json();
            principal.redact(
                &schema.fields,
                &mut body,
                Ownership::CreatedBy(&document.created_by),
            );
            if let Some(select) = &query.select {
                body.retain(|name, _| name == "id" || select.contains(name));
            }
            Value::Object(body)
        })
        .collect();
    let mut body =
        json!({"data": data, "next_cursor": page.next_cursor, "has_more": page.has_more});
    if let Some(total) = page.total {
        body["total"] = json!(total);
    }
    let mut response = Json(body).into_response();
    let response_headers = response.headers_mut();
    let (name, value) = position_header(page.checkpoint);
    response_headers.insert(name, value);
    if count {
        response_headers.insert(
            "preference-applied",
            HeaderValue::from_static("count=exact"),
        );
    }
    if let Some(cursor) = page.next_cursor {
        let mut next = query.link.clone();
        next.push(("cursor".to_owned(), cursor));
        let link = format!(
            "<{}?{}>; rel=\"next\"",
            uri.path(),
            serde_urlencoded::to_string(&next).map_err(ApiError::internal)?
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response_headers.insert(header::LINK, value);
        }
    }
    Ok(response)
}
