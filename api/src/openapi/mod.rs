//! The OpenAPI 3.1 description of the API, generated once at start-up from the loaded
//! documents: one schema per document for reads, creates and patches, every route with its
//! headers, and the problem responses.
//!
//! - [`operations`]: stable `operationId`s and the links between operations.
//! - [`syntax`]: the syntax of tokens, cursors, filters and entity tags, as patterns.
//! - [`identity`]: the built-in login's routes, when it is on.

mod identity;
mod operations;
mod syntax;

use herald_bus::schema::model::{CommandDecl, On};
use herald_bus::schema::query::field_path;
use herald_bus::schema::versions::FIRST_VERSION;
use herald_bus::schema::{
    DocumentSchema, Field, FieldKind, Fields, IDENTITY_APP, PASSWORD_LENGTH, Registry,
};

use herald_projector::query::{MANAGED_QUERY_FIELDS, managed, operator_names};

use crate::list::{MAX_ORDER_KEYS, MAX_SEARCH_CHARS};
use operations::DocumentOperations;
use serde_json::{Map, Value, json};

/// The whole document served at `/v1/openapi.json`.
pub fn describe(registry: &Registry, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = common_schemas();
    for doc in registry.documents() {
        let name = type_name(doc);
        schemas.insert(name.clone(), document_schema(doc));
        schemas.insert(
            format!("{name}.create"),
            body_schema(&doc.fields, Body::Create),
        );
        schemas.insert(
            format!("{name}.patch"),
            body_schema(&doc.fields, Body::Patch),
        );
        schemas.insert(
            format!("{name}.page"),
            json!({
                "type": "object",
                "required": ["data", "next_cursor", "has_more"],
                "properties": {
                    "data": {"type": "array", "items": reference(&name)},
                    "next_cursor": {"type": ["string", "null"]},
                    "has_more": {"type": "boolean"},
                    "total": {"type": "integer", "description": "With Prefer: count=exact."},
                },
            }),
        );
        let ops = DocumentOperations::of(registry, doc);
        let base = format!("/{version}/{}/{}", doc.app, doc.name);
        paths.insert(base.clone(), collection_path(doc, &name, &ops));
        paths.insert(format!("{base}/{{id}}"), document_path(doc, &name, &ops));
        paths.insert(
            format!("{base}/{{id}}/restore"),
            restore_path(doc, &name, &ops),
        );
        paths.insert(format!("{base}/{{id}}/history"), history_path(doc, &ops));
        for command in doc.commands.values() {
            let path = match command.on {
                On::Document => format!("{base}/{{id}}/{}", command.name),
                On::Collection => format!("{base}/{}", command.name),
            };
            paths.insert(path, run_path(doc, &name, command, &ops));
        }
        let types: Vec<String> = doc.event_types().iter().map(ToString::to_string).collect();
        paths.insert(
            format!("{base}/events"),
            events_path(
                &format!("Events of {name} documents"),
                (&name, &ops.events()),
                &types,
                false,
            ),
        );
        paths.insert(
            format!("{base}/{{id}}/events"),
            events_path(
                &format!("Events of one {name}"),
                (&name, &ops.stream_events()),
                &types,
                true,
            ),
        );
    }
    if version == FIRST_VERSION {
        paths.extend(platform_paths(registry));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Herald API {version}"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Commands over HTTP and queries over projected views. Every error is an RFC 9457 problem.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas,
        },
    })
}

/// The routes outside the apps' documents, served as `v1` only: events of every collection,
/// commands, tasks, admin, API keys, the built-in login and health.
fn platform_paths(registry: &Registry) -> Map<String, Value> {
    let mut paths = Map::new();
    let every_type: Vec<String> = registry
        .documents()
        .flat_map(|doc| doc.event_types())
        .map(|event_type| event_type.to_string())
        .collect();
    paths.insert(
        "/v1/events".into(),
        events_path(
            "Every event the caller may read",
            ("events", operations::LIST_EVENTS),
            &every_type,
            false,
        ),
    );
    paths.extend(admin_paths());
    paths.extend(api_key_paths());
    if registry.get(IDENTITY_APP, "user").is_some() {
        paths.extend(identity::paths());
    }
    paths.insert("/v1/commands/{id}".into(), command_path());
    for (path, summary, id) in [
        ("/healthz", "The process is alive", operations::CHECK_HEALTH),
        (
            "/readyz",
            "PostgreSQL and NATS answer and no view is stuck",
            operations::CHECK_READINESS,
        ),
    ] {
        let ok = json!({"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status"], "properties": {
                "status": {"type": "string"}, "checks": {"type": "object"}}}}}});
        paths.insert(
            path.into(),
            json!({"get": {"summary": summary, "operationId": id, "security": [], "tags": ["operations"],
                "responses": {"200": ok, "503": problem_response("Not ready")}}}),
        );
    }
    paths
}

/// Schemas are named by collection (`petstore.product`), which no two documents share.
fn type_name(doc: &DocumentSchema) -> String {
    doc.collection().to_string()
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn common_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "request_id": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "pointer": {"type": "string"}, "parameter": {"type": "string"}, "header": {"type": "string"},
                    "code": {"type": "string"}, "detail": {"type": "string"}}}},
            },
        }),
    );
    schemas.insert(
        "Event".into(),
        json!({"type": "object",
            "required": ["id", "type", "stream", "document_id", "version", "position", "time", "actor", "data"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "type": {"type": "string"},
                "stream": {"type": "string"},
                "document_id": {"type": "string", "format": "uuid"},
                "version": {"type": "integer", "minimum": 1},
                "position": syntax::position(),
                "time": {"type": "string", "format": "date-time"},
                "actor": {"type": "object", "properties": {
                    "sub": {"type": "string"}, "roles": {"type": ["array", "null"], "items": {"type": "string"}}}},
                "data": {"type": "object"}}}),
    );
    schemas.insert(
        "EventPage".into(),
        json!({"type": "object", "required": ["data", "next_after"], "properties": {
            "data": {"type": "array", "items": reference("Event")},
            "next_after": {"oneOf": [syntax::position(), {"type": "null"}]}}}),
    );
    schemas.insert(
        "TaskRun".into(),
        json!({"type": "object", "required": ["id", "name", "state", "attempts", "max_attempts"], "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "description": "<app>.<task>"},
            "state": {"enum": ["queued", "running", "retrying", "succeeded", "dead"]},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "last_error": {"type": ["string", "null"]},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "event_id": {"type": ["string", "null"], "format": "uuid"},
            "duration_ms": {"type": ["integer", "null"]},
            "tenant": {"type": "string", "description": "In the dead-letter list only."},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"}}}),
    );
    schemas.insert(
        "ProjectionVersion".into(),
        json!({"type": "object", "required": ["name", "version", "state", "checkpoint", "lag"], "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "state": {"enum": ["building", "active", "retired"]},
            "checkpoint": syntax::position(),
            "lag": {"type": "object", "properties": {"events": {"type": "integer"}, "seconds": {"type": "number"}}},
            "heartbeat_at": {"type": ["string", "null"], "format": "date-time"},
            "runner": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "activated_at": {"type": ["string", "null"], "format": "date-time"},
            "events_applied": {"type": "integer"},
            "rebuild": {"type": "object", "properties": {
                "done": {"type": "integer"}, "total": {"type": "integer"}, "percent": {"type": "number"}}}}}),
    );
    schemas.insert(
        "HistoryPage".into(),
        json!({"type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {
            "data": {"type": "array", "items": {"type": "object",
                "required": ["version", "type", "time", "actor", "command_id", "idempotency_key", "changes"],
                "properties": {
                    "version": {"type": "integer", "minimum": 1},
                    "type": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "actor": {"type": "object", "properties": {
                        "sub": {"type": "string"}, "roles": {"type": ["array", "null"], "items": {"type": "string"}}}},
                    "command_id": {"type": ["string", "null"]},
                    "idempotency_key": {"type": ["string", "null"]},
                    "changes": {"type": "object", "additionalProperties": {"type": "object",
                        "required": ["before", "after"], "properties": {"before": {}, "after": {}}}}}}},
            "next_cursor": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"}}}),
    );
    schemas.insert(
        "Accepted".into(),
        json!({"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "status": {"const": "accepted"}}}),
    );
    schemas.insert(
        "CommandStatus".into(),
        json!({"type": "object", "required": ["id", "status", "created_at"], "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"enum": ["accepted", "succeeded", "rejected"]},
            "created_at": {"type": "string", "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "position": {"type": ["string", "null"]},
            "result": {"type": ["object", "null"]},
            "problem": {"oneOf": [reference("Problem"), {"type": "null"}]}}}),
    );
    schemas
}

#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// What reads return: every field optional (hidden fields are absent), plus the managed ones.
    Read,
    Create,
    Patch,
}

fn document_schema(doc: &DocumentSchema) -> Value {
    let mut schema = body_schema(&doc.fields, Body::Read);
    let managed = json!({
        "id": {"type": "string", "format": "uuid", "readOnly": true},
        "version": {"type": "integer", "minimum": 1, "readOnly": true},
        "created_at": {"type": "string", "format": "date-time", "readOnly": true},
        "created_by": {"type": "string", "readOnly": true},
        "updated_at": {"type": "string", "format": "date-time", "readOnly": true},
        "updated_by": {"type": "string", "readOnly": true},
    });
    if let (Some(properties), Some(managed)) =
        (schema["properties"].as_object_mut(), managed.as_object())
    {
        properties.extend(managed.clone());
    }
    schema["required"] = json!([
        "id",
        "version",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by"
    ]);
    if let Some(description) = &doc.description {
        schema["description"] = Value::String(description.clone());
    }
    schema
}

fn body_schema(fields: &Fields, body: Body) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, field) in fields {
        if field.read_only && body != Body::Read {
            continue;
        }
        if field.required && body == Body::Create && field.default.is_none() {
            required.push(Value::String(name.clone()));
        }
        properties.insert(name.clone(), field_schema(field, body));
    }
    let mut schema =
        json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema
}

fn field_schema(field: &Field, body: Body) -> Value {
    let mut schema = match &field.kind {
        FieldKind::Object(nested) => body_schema(
            nested,
            if body == Body::Patch {
                Body::Patch
            } else {
                body
            },
        ),
        FieldKind::Array(item) => {
            let mut array = json!({"type": "array", "items": field_schema(item, Body::Create)});
            if let Some(min) = field.min_items {
                array["minItems"] = json!(min);
            }
            if let Some(max) = field.max_items {
                array["maxItems"] = json!(max);
            }
            array
        }
        kind => scalar_schema(kind, field),
    };
    let nullable = field.nullable || (body == Body::Patch && !field.required);
    if nullable && let Some(kind) = schema.get("type").cloned() {
        schema["type"] = json!([kind, "null"]);
    }
    if let Some(default) = &field.default {
        schema["default"] = default.clone();
    }
    if field.read_only {
        schema["readOnly"] = json!(true);
    }
    let mut notes = field.description.clone().into_iter().collect::<Vec<_>>();
    if field.immutable {
        notes.push("Set on create only.".into());
    }
    if field.unique {
        notes.push("Unique per tenant.".into());
    }
    if !notes.is_empty() {
        schema["description"] = Value::String(notes.join(" "));
    }
    schema
}

fn scalar_schema(kind: &FieldKind, field: &Field) -> Value {
    let mut schema = match kind {
        FieldKind::Integer => json!({"type": "integer", "format": "int64"}),
        FieldKind::Number => json!({"type": "number"}),
        FieldKind::Boolean => json!({"type": "boolean"}),
        FieldKind::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldKind::Date => json!({"type": "string", "format": "date"}),
        FieldKind::Uuid => json!({"type": "string", "format": "uuid"}),
        FieldKind::Email => json!({"type": "string", "format": "email"}),
        FieldKind::Url => json!({"type": "string", "format": "uri"}),
        FieldKind::Password => json!({"type": "string", "format": "password", "writeOnly": true,
            "minLength": PASSWORD_LENGTH.start(), "maxLength": PASSWORD_LENGTH.end()}),
        FieldKind::Ref { app, doc } => json!({"type": "string", "format": "uuid",
            "description": format!("The id of a {app}.{doc} document.")}),
        _ => json!({"type": "string"}),
    };
    if matches!(kind, FieldKind::Integer | FieldKind::Number) {
        if let Some(min) = field.min {
            schema["minimum"] = json!(min);
        }
        if let Some(max) = field.max {
            schema["maximum"] = json!(max);
        }
    } else {
        // JSON Schema lengths are non-negative integers; the YAML reads every bound as a number.
        if let Some(min) = field.min.and_then(length) {
            schema["minLength"] = json!(min);
        }
        if let Some(max) = field.max.and_then(length) {
            schema["maxLength"] = json!(max);
        }
    }
    if let Some(pattern) = &field.pattern {
        schema["pattern"] = Value::String(pattern.as_str().to_owned());
    }
    if let Some(values) = &field.enum_values {
        schema["enum"] = Value::Array(values.clone());
    }
    schema
}

/// A string length bound as an integer (the schema loader only accepts whole, non-negative ones).
fn length(bound: f64) -> Option<u64> {
    format!("{bound:.0}").parse().ok()
}

fn problem_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": reference("Problem")}}})
}

fn header(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "header", "required": false, "description": description, "schema": schema})
}

fn write_headers() -> Vec<Value> {
    vec![
        header(
            "Idempotency-Key",
            "Retrying with the same key returns the first outcome and appends nothing; the same key with another body is 422.",
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}),
        ),
        header(
            "Prefer",
            "`wait=N` waits up to N seconds for the outcome; `respond-async` answers 202 at once.",
            json!({"type": "string"}),
        ),
    ]
}

/// The write headers of a change to one document: the others and `If-Match`.
fn conditional_write_headers() -> Vec<Value> {
    let mut headers = write_headers();
    headers.push(header(
        "If-Match",
        "The version the change is based on, e.g. \"3\"; a stale version, or a value that is not one entity tag, is 412. `*` states no precondition.",
        json!({"type": "string", "pattern": syntax::IF_MATCH_PATTERN}),
    ));
    headers
}

fn errors(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(status, what)| ((*status).to_owned(), problem_response(what)))
        .collect()
}

fn document_response(name: &str, description: &str, links: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": reference(name)}},
        "headers": {"ETag": {"required": true, "schema": {"type": "string", "pattern": "^\"[0-9]+\"$"}},
            "Herald-Position": {"schema": syntax::position(), "description": "Not on a read with as_of."}},
        "links": links})
}

fn accepted() -> Value {
    json!({"description": "Accepted: durable, not yet handled; the status is at Location.",
        "content": {"application/json": {"schema": reference("Accepted")}},
        "headers": {"Location": {"required": true, "schema": {"type": "string"}}},
        "links": operations::links_from_accepted()})
}

const COMMON: [(&str, &str); 4] = [
    ("401", "Missing or invalid token"),
    ("404", "Not found, or not visible to the caller"),
    ("429", "Rate limited"),
    ("503", "Unavailable"),
];

/// The problems every write can meet besides [`COMMON`].
const WRITE_ERRORS: [(&str, &str); 3] = [
    ("403", "Forbidden"),
    (
        "409",
        "Conflict, unique value taken, or the first request with this Idempotency-Key is in flight",
    ),
    (
        "422",
        "Invalid body, or an Idempotency-Key that is invalid or was used for another request",
    ),
];

/// The problems of a write with a body.
const BODY_ERRORS: [(&str, &str); 3] = [
    ("400", "Malformed JSON"),
    ("413", "Body too large"),
    ("415", "Not JSON"),
];

/// The problems of a write to one document.
const CONDITIONAL_ERRORS: [(&str, &str); 2] = [
    ("412", "Version mismatch, or a malformed If-Match"),
    ("428", "If-Match required"),
];

fn with_common(mut responses: Map<String, Value>, extra: &[&[(&str, &str)]]) -> Value {
    responses.extend(errors(&COMMON));
    for codes in extra {
        responses.extend(errors(codes));
    }
    Value::Object(responses)
}

fn id_parameter() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

fn min_position() -> Value {
    json!({"name": "min_position", "in": "query", "required": false, "schema": syntax::position(),
        "description": "Wait until the view covers this Herald-Position."})
}

fn limit() -> Value {
    json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}})
}

fn cursor() -> Value {
    json!({"name": "cursor", "in": "query", "required": false, "schema": syntax::cursor()})
}

fn collection_path(doc: &DocumentSchema, name: &str, ops: &DocumentOperations) -> Value {
    let tag = doc.collection();
    let mut create_responses = Map::new();
    let mut created = document_response(name, "Created", ops.links_from_document());
    created["headers"]["Location"] = json!({"required": true, "schema": {"type": "string"}});
    create_responses.insert("201".into(), created);
    create_responses.insert("202".into(), accepted());
    let mut list_responses = Map::new();
    list_responses.insert(
        "200".into(),
        json!({"description": "A page", "content": {"application/json": {"schema": reference(&format!("{name}.page"))}},
            "headers": {"Herald-Position": {"required": true, "schema": syntax::position()}}}),
    );
    json!({
        "post": {
            "summary": format!("Create a {tag}"), "operationId": ops.create(), "tags": [tag],
            "parameters": write_headers(),
            "requestBody": {"required": true, "content": {"application/json": {"schema": reference(&format!("{name}.create"))}}},
            "responses": with_common(create_responses, &[&BODY_ERRORS, &WRITE_ERRORS]),
        },
        "get": {
            "summary": format!("List {tag} documents"), "operationId": ops.list(), "tags": [tag],
            "description": "Filters are `<field>=[not.]<operator>.<value>`; several filters (on the same field too) must all hold. Pages are keyset pages: follow `next_cursor` (or the `Link: rel=\"next\"` header) with the same filters, order and q.",
            "parameters": list_parameters(doc),
            "responses": with_common(list_responses, &[&[("400", "Invalid query")]]),
        },
    })
}

/// The query parameters of a list: one per filterable field, then order, q, select, paging.
fn list_parameters(doc: &DocumentSchema) -> Vec<Value> {
    let columns = herald_projector::columns_of(doc);
    let mut parameters = Vec::new();
    let mut sortable: Vec<&str> = MANAGED_QUERY_FIELDS.to_vec();
    let managed_fields = MANAGED_QUERY_FIELDS
        .iter()
        .filter_map(|path| managed(path).map(|target| (*path, target.field, true)));
    let declared = columns
        .iter()
        .filter(|c| c.search.is_none())
        .filter_map(|c| {
            let chain = field_path(&doc.fields, &c.field)?;
            let field = chain.last()?;
            if field.sort {
                sortable.push(&c.field);
            }
            Some((c.field.as_str(), (*field).clone(), field.filter))
        });
    let filters: Vec<(&str, Field, bool)> = managed_fields.chain(declared).collect();
    for (path, field, filter) in &filters {
        if !filter {
            continue;
        }
        let operators = operator_names(field);
        parameters.push(json!({
            "name": path, "in": "query", "required": false, "schema": syntax::filter(&operators),
            "x-herald-operators": operators,
            "description": format!("Filter on this {} field: [not.]<operator>.<value> with operator one of {}.",
                field.kind.name(), operators.join(", ")),
        }));
    }
    parameters.push(json!({
        "name": "order", "in": "query", "required": false, "schema": {"type": "string"},
        "x-herald-sortable": sortable,
        "description": format!("Comma-separated <field>[.asc|.desc][.nullsfirst|.nullslast], at most {MAX_ORDER_KEYS} fields; id breaks ties. Sortable: {}.", sortable.join(", ")),
    }));
    if columns.iter().any(|c| c.search.is_some()) {
        parameters.push(json!({
            "name": "q", "in": "query", "required": false, "schema": {"type": "string", "maxLength": MAX_SEARCH_CHARS},
            "description": format!("Full-text search (web search syntax: words, \"phrases\", or, -word) in the {} language; ranked unless order is given.", doc.search_language),
        }));
    }
    parameters.push(json!({
        "name": "select", "in": "query", "required": false, "schema": {"type": "string"},
        "description": "Comma-separated top-level fields to return besides id.",
    }));
    parameters.push(limit());
    parameters.push(cursor());
    parameters.push(
        json!({"name": "Prefer", "in": "header", "required": false, "schema": {"type": "string"},
        "description": "count=exact adds total, the number of every match."}),
    );
    parameters.push(min_position());
    parameters
}

fn document_path(doc: &DocumentSchema, name: &str, ops: &DocumentOperations) -> Value {
    let tag = doc.collection();
    let mut read_responses = Map::new();
    read_responses.insert(
        "200".into(),
        document_response(name, "The document", json!({})),
    );
    read_responses.insert(
        "304".into(),
        json!({"description": "Not modified", "headers": {"ETag": {"required": true, "schema": {"type": "string"}}}}),
    );
    let mut update_responses = Map::new();
    update_responses.insert(
        "200".into(),
        document_response(name, "Updated", ops.links_from_document()),
    );
    update_responses.insert("202".into(), accepted());
    let mut archive_responses = Map::new();
    archive_responses.insert(
        "204".into(),
        json!({"description": "Archived", "headers": {"ETag": {"required": true, "schema": {"type": "string"}}},
            "links": ops.links_from_archive()}),
    );
    archive_responses.insert("202".into(), accepted());
    let patch = reference(&format!("{name}.patch"));
    json!({
        "parameters": [id_parameter()],
        "get": {"summary": format!("Read a {tag}"), "operationId": ops.get(), "tags": [tag],
            "parameters": [min_position(),
                header("If-None-Match", "Entity tags of versions the client has, or `*`; a match is 304. A value that is not a list of entity tags is 400.",
                    json!({"type": "string", "pattern": syntax::IF_NONE_MATCH_PATTERN})),
                json!({"name": "as_of", "in": "query", "required": false, "schema": syntax::as_of(),
                    "description": "The document as it was at this version (an integer from 1) or RFC 3339 time; needs the history right."})],
            "responses": with_common(read_responses, &[&[("400", "Invalid query or If-None-Match"), ("403", "No history right (with as_of)")]])},
        "patch": {"summary": format!("Update a {tag} (JSON Merge Patch)"), "operationId": ops.update(), "tags": [tag],
            "parameters": conditional_write_headers(),
            "requestBody": {"required": true, "content": {
                "application/merge-patch+json": {"schema": patch}, "application/json": {"schema": patch}}},
            "responses": with_common(update_responses, &[&BODY_ERRORS, &WRITE_ERRORS, &CONDITIONAL_ERRORS])},
        "delete": {"summary": format!("Archive a {tag}"), "operationId": ops.delete(), "tags": [tag],
            "parameters": conditional_write_headers(),
            "responses": with_common(archive_responses, &[&WRITE_ERRORS, &CONDITIONAL_ERRORS])},
    })
}

fn restore_path(doc: &DocumentSchema, name: &str, ops: &DocumentOperations) -> Value {
    let tag = doc.collection();
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        document_response(name, "Restored", ops.links_from_document()),
    );
    responses.insert("202".into(), accepted());
    json!({
        "parameters": [id_parameter()],
        "post": {"summary": format!("Restore an archived {tag}"), "operationId": ops.restore(), "tags": [tag],
            "parameters": conditional_write_headers(),
            "responses": with_common(responses, &[&WRITE_ERRORS, &CONDITIONAL_ERRORS])},
    })
}

/// A command the document declares: its params as the body (none at all is `{}`). On one
/// document it answers like `PATCH`; on the collection, like a create.
fn run_path(
    doc: &DocumentSchema,
    name: &str,
    command: &CommandDecl,
    ops: &DocumentOperations,
) -> Value {
    let tag = doc.collection();
    let mut responses = Map::new();
    let on_collection = command.on == On::Collection;
    if on_collection {
        let mut created = document_response(name, "Created", ops.links_from_document());
        created["headers"]["Location"] = json!({"required": true, "schema": {"type": "string"}});
        responses.insert("201".into(), created);
    } else {
        responses.insert(
            "200".into(),
            document_response(name, "Done", ops.links_from_document()),
        );
    }
    responses.insert("202".into(), accepted());
    let params = body_schema(&command.params, Body::Create);
    let summary = command
        .description
        .clone()
        .unwrap_or_else(|| format!("Run `{}` on a {tag}", command.name));
    let code = if command.rust {
        "the code's own".to_owned()
    } else {
        format!("`{}`", command.reject.code)
    };
    let refused = format!(
        "Refused by the command's rule (problem `code`: {code}), a `unique` value taken, or an \
         Idempotency-Key in flight"
    );
    let errors = [
        ("403", "Forbidden"),
        ("409", refused.as_str()),
        ("422", "Invalid params"),
    ];
    let events: Vec<String> = command
        .emits
        .iter()
        .map(|verb| format!("`{}`", tag.event_type(verb)))
        .collect();
    let events = match events.as_slice() {
        [one] => one.clone(),
        several => format!("events among {}", several.join(", ")),
    };
    let description = if on_collection {
        format!("Creates a {tag}: appends {events}, the first of which creates it.")
    } else {
        format!("Appends {events}.")
    };
    let mut post = json!({"summary": summary, "operationId": ops.run(&command.name), "tags": [tag],
        "description": description,
        "requestBody": {"required": false, "content": {"application/json": {"schema": params}}}});
    if on_collection {
        post["parameters"] = json!(write_headers());
        post["responses"] = with_common(responses, &[&errors, &BODY_ERRORS]);
        json!({"post": post})
    } else {
        post["parameters"] = json!(conditional_write_headers());
        post["responses"] = with_common(responses, &[&errors, &BODY_ERRORS, &CONDITIONAL_ERRORS]);
        json!({"parameters": [id_parameter()], "post": post})
    }
}

fn command_path() -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "The command's status", "content": {"application/json": {"schema": reference("CommandStatus")}}}),
    );
    json!({
        "parameters": [id_parameter()],
        "get": {"summary": "A command's status", "operationId": operations::GET_COMMAND, "tags": ["commands"],
            "responses": with_common(responses, &[])},
    })
}

/// An event path: a page of events as JSON, or Server-Sent Events with
/// `Accept: text/event-stream`. `(tag, id)`: its tag and `operationId`.
fn events_path(summary: &str, (tag, id): (&str, &str), types: &[String], one: bool) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "A page of events, or (with `Accept: text/event-stream`) a live stream whose `id:` is the position and `event:` the type",
            "content": {
                "application/json": {"schema": reference("EventPage")},
                "text/event-stream": {"schema": {"type": "string"}}}}),
    );
    let mut parameters = vec![
        json!({"name": "after", "in": "query", "required": false, "schema": syntax::position(),
            "description": "Resume after this position (an event's `position` or SSE `id:`)."}),
        json!({"name": "types", "in": "query", "required": false, "style": "form", "explode": false,
            "schema": {"type": "array", "items": {"enum": types}}}),
        limit(),
        header(
            "Last-Event-ID",
            "Resume after this position (sent by reconnecting EventSource clients).",
            syntax::position(),
        ),
    ];
    if one {
        parameters.insert(0, id_parameter());
    }
    json!({"get": {"summary": summary, "operationId": id, "tags": [tag], "parameters": parameters,
        "responses": with_common(responses, &[&[("400", "Invalid query")]])}})
}

/// The tenant's API keys: admins of the tenant create, list and revoke them.
fn api_key_paths() -> Map<String, Value> {
    let key = json!({"type": "object", "required": ["id", "name", "roles", "created_by", "created_at", "expires_at", "revoked_at"],
        "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}}, "created_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"}}});
    let mut created_key = key.clone();
    if let Some(required) = created_key["required"].as_array_mut() {
        required.push(json!("key"));
    }
    created_key["properties"]["key"] = json!({"type": "string", "description": "The key, `hk_<id>_<secret>`: shown this once, send it as a bearer token"});
    let body = json!({"type": "object", "additionalProperties": false, "required": ["name", "roles", "expires_in_days"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
            "roles": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 64},
                "description": "Roles the key holds: each one its creator holds (not `public` or `owner`)"},
            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 365}}});
    let admin: &[(&str, &str)] = &[("403", "Not an admin of the tenant")];
    let mut created = Map::new();
    created.insert(
        "201".into(),
        json!({"description": "The key, with its secret", "content": {"application/json": {"schema": created_key}}}),
    );
    let mut listed = Map::new();
    listed.insert(
        "200".into(),
        json!({"description": "The tenant's keys, newest first, without their secrets", "content": {"application/json": {"schema": {
            "type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": key}}}}}}),
    );
    let mut revoked = Map::new();
    revoked.insert(
        "204".into(),
        json!({"description": "Revoked: the key verifies nothing from now on"}),
    );
    let mut paths = Map::new();
    paths.insert(
        "/v1/api-keys".into(),
        json!({
            "post": {"summary": "Create an API key", "operationId": operations::CREATE_API_KEY, "tags": ["api keys"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": with_common(created, &[admin, &BODY_ERRORS, &[("422", "Invalid body, or a role the creator does not hold")]])},
            "get": {"summary": "The tenant's API keys", "operationId": operations::LIST_API_KEYS, "tags": ["api keys"],
                "responses": with_common(listed, &[admin])},
        }),
    );
    paths.insert(
        "/v1/api-keys/{id}".into(),
        json!({"parameters": [id_parameter()], "delete": {"summary": "Revoke an API key", "operationId": operations::REVOKE_API_KEY,
            "tags": ["api keys"], "responses": with_common(revoked, &[admin])}}),
    );
    paths
}

fn admin_paths() -> Map<String, Value> {
    let name = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"},
        "description": "A projection: the document's collection, e.g. `petstore.product`."});
    let admin_errors: &[(&str, &str)] = &[("403", "Not an operator")];
    let mut list = Map::new();
    list.insert(
        "200".into(),
        json!({"description": "Every live projection version", "content": {"application/json": {"schema": {
            "type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": reference("ProjectionVersion")}}}}}}),
    );
    let mut show = Map::new();
    show.insert(
        "200".into(),
        json!({"description": "The projection's live versions", "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "versions"], "properties": {"name": {"type": "string"},
                "versions": {"type": "array", "items": reference("ProjectionVersion")}}}}}}),
    );
    let mut rebuild = Map::new();
    rebuild.insert(
        "202".into(),
        json!({"description": "A new version is building; the current one serves reads until it is ready",
            "content": {"application/json": {"schema": {"type": "object"}}},
            "headers": {"Location": {"required": true, "schema": {"type": "string"}}}}),
    );
    let mut paths = Map::new();
    paths.insert(
        "/v1/admin/projections".into(),
        json!({"get": {"summary": "Projection versions, lag and rebuild progress", "operationId": operations::LIST_PROJECTIONS,
            "tags": ["admin"], "responses": with_common(list, &[admin_errors])}}),
    );
    paths.insert(
        "/v1/admin/projections/{name}".into(),
        json!({"parameters": [name.clone()], "get": {"summary": "One projection's versions",
            "operationId": operations::GET_PROJECTION, "tags": ["admin"],
            "responses": with_common(show, &[admin_errors])}}),
    );
    paths.insert(
        "/v1/admin/projections/{name}/rebuild".into(),
        json!({"parameters": [name], "post": {"summary": "Rebuild a projection (blue/green)",
            "operationId": operations::REBUILD_PROJECTION, "tags": ["admin"],
            "responses": with_common(rebuild, &[admin_errors])}}),
    );
    paths.insert(
        "/v1/admin/parked-events/replay".into(),
        replay_path(admin_errors),
    );
    let run = || json!({"content": {"application/json": {"schema": reference("TaskRun")}}});
    let mut show_run = Map::new();
    let mut shown = run();
    shown["description"] = json!("The run (admins of its tenant, operators)");
    show_run.insert("200".into(), shown);
    paths.insert(
        "/v1/tasks/{id}".into(),
        json!({"parameters": [id_parameter()], "get": {"summary": "A task run's state",
            "operationId": operations::GET_TASK, "tags": ["tasks"],
            "responses": with_common(show_run, &[])}}),
    );
    let mut dead = Map::new();
    dead.insert(
        "200".into(),
        json!({"description": "Dead runs, most recently ended first", "content": {"application/json": {"schema": {
            "type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {
                "data": {"type": "array", "items": reference("TaskRun")},
                "next_cursor": {"type": ["string", "null"]}, "has_more": {"type": "boolean"}}}}}}),
    );
    paths.insert(
        "/v1/admin/tasks/dead".into(),
        json!({"get": {"summary": "Dead task runs of every tenant", "operationId": operations::LIST_DEAD_TASKS,
            "tags": ["admin"], "parameters": [limit(), cursor()],
            "responses": with_common(dead, &[&[("400", "Invalid query")], admin_errors])}}),
    );
    let mut requeued = Map::new();
    let mut accepted = run();
    accepted["description"] =
        json!("Back in the queue with its attempts reset; Location is the run");
    accepted["headers"] = json!({"Location": {"required": true, "schema": {"type": "string"}}});
    requeued.insert("202".into(), accepted);
    paths.insert(
        "/v1/admin/tasks/dead/{id}/retry".into(),
        json!({"parameters": [id_parameter()], "post": {"summary": "Retry a dead task run",
            "operationId": operations::RETRY_DEAD_TASK, "tags": ["admin"],
            "responses": with_common(requeued, &[admin_errors, &[("409", "The run is not dead")]])}}),
    );
    paths
}

/// Asking view versions to apply their parked events again.
fn replay_path(admin_errors: &[(&str, &str)]) -> Value {
    let body = json!({"type": "object", "additionalProperties": false,
        "properties": {"reader": {"type": "string", "minLength": 1, "maxLength": 200,
            "description": "One view version, e.g. `petstore.product.v1`; every live version's when absent"}}});
    let mut responses = Map::new();
    responses.insert(
        "202".into(),
        json!({"description": "Marked for replay; each version's runner applies them again once idle",
            "content": {"application/json": {"schema": {"type": "object", "required": ["requested"],
                "properties": {"requested": {"type": "integer", "minimum": 0, "description": "Parked events marked"}}}}}}),
    );
    let errors = [
        (
            "404",
            "No live view version has this name (`relay` and `tasks` are not replayed)",
        ),
        ("422", "Invalid body"),
    ];
    json!({"post": {"summary": "Replay the parked events of view versions",
        "description": "The runner of each version refolds every parked event's document from its first event up to the version's checkpoint, as a rebuild would, and removes the parked rows that now apply; one that still fails stays, with its new error.",
        "operationId": operations::REPLAY_PARKED_EVENTS, "tags": ["admin"],
        "requestBody": {"required": false, "content": {"application/json": {"schema": body}}},
        "responses": with_common(responses, &[admin_errors, &BODY_ERRORS, &errors])}})
}

fn history_path(doc: &DocumentSchema, ops: &DocumentOperations) -> Value {
    let tag = doc.collection();
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "The document's events, oldest first", "content": {"application/json": {"schema": reference("HistoryPage")}}}),
    );
    json!({
        "parameters": [id_parameter()],
        "get": {"summary": format!("The history of a {tag}"), "operationId": ops.history(), "tags": [tag],
            "parameters": [limit(), cursor()],
            "responses": with_common(responses, &[&[("400", "Invalid query"), ("403", "No history right")]])},
    })
}
