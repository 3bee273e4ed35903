//! API versions (an app's `versions.yaml`, see [`herald_bus::schema::versions`]): a request to
//! `/{version}/{app}/{doc}/…` is served by the `/v1` routes over the same documents and
//! events, with the version's field and command names turned into the declared ones on the
//! way in and back on the way out ([`rename`]). A deprecated version's answers carry
//! `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and a `successor-version` link; after its
//! sunset it answers `410 Gone` and changes nothing.
//!
//! Apps without `versions.yaml` are served as `v1` only, untouched: when no app declares
//! versions this layer only looks at the path.

pub mod rename;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use herald_bus::schema::versions::{ApiVersion, FIRST_VERSION, is_version_name};
use herald_bus::schema::{ErrorCode, FieldError, Registry};
use serde_json::Value;

use crate::error::ApiError;
use rename::Names;

/// The query parameters of a list that are not filters (see `crate::list`).
const LIST_PARAMETERS: [&str; 6] = ["limit", "cursor", "order", "select", "q", "min_position"];

/// What the versioning layer needs: the declarations, each version's description, and the
/// calls counted per app and version.
pub struct VersionRouting {
    registry: Arc<Registry>,
    /// The OpenAPI description of each version but `v1` (served by its own route).
    descriptions: BTreeMap<String, bytes::Bytes>,
    calls: BTreeMap<(String, String), AtomicU64>,
    /// Each versioned document's names, by app, version and document, made once at start.
    names: BTreeMap<String, BTreeMap<String, BTreeMap<String, Names>>>,
    /// The names of a document a version shows as declared.
    declared_names: Names,
    body_limit: usize,
}

impl VersionRouting {
    /// The versions of `registry`'s apps; `describe` gives a version's OpenAPI description.
    ///
    /// # Errors
    /// A description cannot be serialized (never for generated JSON).
    pub fn new(
        registry: Arc<Registry>,
        body_limit: usize,
        describe: impl Fn(&Registry, &str) -> Value,
    ) -> Result<Self, serde_json::Error> {
        let mut calls = BTreeMap::new();
        let mut descriptions = BTreeMap::new();
        let mut names: BTreeMap<String, BTreeMap<String, BTreeMap<String, Names>>> =
            BTreeMap::new();
        for doc in registry.documents() {
            let Some(versions) = registry.versions(&doc.app) else {
                continue;
            };
            for version in &versions.0 {
                calls
                    .entry((doc.app.clone(), version.name.clone()))
                    .or_insert_with(AtomicU64::default);
                if let Some(changes) = version.document(&doc.name) {
                    names
                        .entry(doc.app.clone())
                        .or_default()
                        .entry(version.name.clone())
                        .or_default()
                        .insert(doc.name.clone(), Names::of(changes));
                }
                if version.name != FIRST_VERSION && !descriptions.contains_key(&version.name) {
                    let description =
                        describe(&registry.version_view(&version.name), &version.name);
                    descriptions.insert(
                        version.name.clone(),
                        serde_json::to_vec(&description)?.into(),
                    );
                }
            }
        }
        Ok(Self {
            registry,
            descriptions,
            calls,
            names,
            declared_names: Names::default(),
            body_limit,
        })
    }

    /// Calls so far, by app and version, for the apps that declare versions.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.calls.iter().map(|((app, version), count)| {
            (
                app.as_str(),
                version.as_str(),
                count.load(Ordering::Relaxed),
            )
        })
    }

    /// The OpenAPI description of `version` (not `v1`), when an app declares it.
    pub fn description(&self, version: &str) -> Option<&bytes::Bytes> {
        self.descriptions.get(version)
    }

    /// The names `doc` of `app` uses in `version`.
    fn names(&self, app: &str, version: &str, doc: &str) -> &Names {
        self.names
            .get(app)
            .and_then(|versions| versions.get(version))
            .and_then(|docs| docs.get(doc))
            .unwrap_or(&self.declared_names)
    }

    fn count(&self, app: &str, version: &str) {
        if let Some(count) = self.calls.get(&(app.to_owned(), version.to_owned())) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a versioned request names.
struct Target<'a> {
    version: &'a ApiVersion,
    app: String,
    doc: String,
    /// The path after `/{version}/{app}/{doc}`.
    rest: Vec<String>,
    names: &'a Names,
}

/// What the answer holds, so its names can be turned into the version's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Document,
    List,
    History,
    Events,
}

/// Serves `/{version}/…` with the `/v1` routes; everything else passes untouched.
pub async fn serve(
    State(routing): State<Arc<VersionRouting>>,
    request: Request,
    next: Next,
) -> Response {
    if !routing.registry.is_versioned() {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let mut segments = path.trim_start_matches('/').split('/');
    let (Some(version), Some(app)) = (segments.next(), segments.next()) else {
        return next.run(request).await;
    };
    if !is_version_name(version) {
        return next.run(request).await;
    }
    if app == "openapi.json" && version != FIRST_VERSION && segments.next().is_none() {
        return match routing.description(version) {
            Some(description) => description_response(description.clone()),
            None => ApiError::NotFound.into_response(),
        };
    }
    let Some(versions) = routing.registry.versions(app) else {
        // An app without versions, or one of Herald's own routes: `v1` only.
        return if version == FIRST_VERSION {
            next.run(request).await
        } else {
            ApiError::NotFound.into_response()
        };
    };
    let Some(declared) = versions.get(version) else {
        return ApiError::NotFound.into_response();
    };
    routing.count(app, version);
    let doc = segments.next().unwrap_or_default().to_owned();
    let names = routing.names(app, version, &doc);
    let target = Target {
        version: declared,
        app: app.to_owned(),
        doc,
        rest: segments.map(str::to_owned).collect(),
        names,
    };
    let mut response = match sunset_passed(declared) {
        Some(sunset) => gone(&target, sunset),
        None => match versioned(&routing, &target, request, next).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        },
    };
    deprecation_headers(&target, response.headers_mut());
    response
}

fn description_response(description: bytes::Bytes) -> Response {
    let mut response = Response::new(Body::from(description));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The sunset date, once it has come.
fn sunset_passed(version: &ApiVersion) -> Option<NaiveDate> {
    version
        .sunset
        .filter(|sunset| Utc::now().date_naive() >= *sunset)
}

fn gone(target: &Target<'_>, sunset: NaiveDate) -> Response {
    let successor = target
        .version
        .successor
        .as_deref()
        .map(|name| format!("; use {name}"))
        .unwrap_or_default();
    ApiError::Gone(format!(
        "version {} of `{}` was retired on {sunset}{successor}",
        target.version.name, target.app
    ))
    .into_response()
}

/// `Deprecation`, `Sunset` and the successor's link, on every answer of a retiring version.
fn deprecation_headers(target: &Target<'_>, headers: &mut HeaderMap) {
    let version = target.version;
    if let Some(deprecated) = version.deprecated {
        let seconds = deprecated
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp());
        if let Ok(value) = HeaderValue::from_str(&format!("@{seconds}")) {
            headers.insert("deprecation", value);
        }
    }
    if let Some(sunset) = version.sunset.and_then(|date| date.and_hms_opt(0, 0, 0)) {
        let date = sunset
            .and_utc()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if let Ok(value) = HeaderValue::from_str(&date) {
            headers.insert("sunset", value);
        }
    }
    if let Some(successor) = version
        .successor
        .as_deref()
        .filter(|_| version.deprecated.is_some() || version.sunset.is_some())
    {
        let mut path = format!("/{successor}/{}", target.app);
        for segment in std::iter::once(&target.doc)
            .chain(&target.rest)
            .filter(|s| !s.is_empty())
        {
            path.push('/');
            path.push_str(segment);
        }
        if let Ok(value) = HeaderValue::from_str(&format!("<{path}>; rel=\"successor-version\"")) {
            headers.append(LINK, value);
        }
    }
}

/// Runs the request in declared names and turns the answer into the version's.
async fn versioned(
    routing: &VersionRouting,
    target: &Target<'_>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let method = parts.method.clone();
    let (path, shape) = declared_path(target, &method)?;
    let query = match parts.uri.query() {
        Some(query) if shape == Some(Shape::List) && !target.names.is_identity() => {
            Some(list_query_to_declared(target.names, query)?)
        }
        other => other.map(str::to_owned),
    };
    parts.uri = uri(&path, query.as_deref())?;
    let writes_fields = (method == Method::POST && target.rest.is_empty())
        || (method == Method::PATCH && target.rest.len() == 1);
    let body = if writes_fields && !target.names.is_identity() && is_json(&parts.headers) {
        let bytes = to_bytes(body, routing.body_limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(routing.body_limit))?;
        parts.headers.remove(CONTENT_LENGTH);
        Body::from(body_to_declared(target.names, bytes)?)
    } else {
        body
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    answer_to_version(target, shape, response).await
}

/// The `/v1` path of a versioned one, and what its answer holds.
fn declared_path(
    target: &Target<'_>,
    method: &Method,
) -> Result<(String, Option<Shape>), ApiError> {
    let names = target.names;
    let mut rest = target.rest.clone();
    let shape = match (method, rest.as_mut_slice()) {
        (_, []) if target.doc.is_empty() => None,
        (&Method::GET, []) => Some(Shape::List),
        (_, []) => Some(Shape::Document),
        (&Method::GET, [segment]) if segment.as_str() == "events" => Some(Shape::Events),
        (&Method::POST, [command]) => {
            // A command on the collection.
            *command = names
                .declared_command(command)
                .ok_or(ApiError::NotFound)?
                .to_owned();
            Some(Shape::Document)
        }
        (_, [_]) => Some(Shape::Document),
        (&Method::GET, [_, segment]) if segment.as_str() == "history" => Some(Shape::History),
        (&Method::GET, [_, segment]) if segment.as_str() == "events" => Some(Shape::Events),
        (&Method::POST, [_, segment]) if segment.as_str() == "restore" => Some(Shape::Document),
        (&Method::POST, [_, command]) => {
            *command = names
                .declared_command(command)
                .ok_or(ApiError::NotFound)?
                .to_owned();
            Some(Shape::Document)
        }
        _ => None,
    };
    let mut path = format!("/{FIRST_VERSION}/{}", target.app);
    for segment in std::iter::once(&target.doc)
        .chain(&rest)
        .filter(|s| !s.is_empty())
    {
        path.push('/');
        path.push_str(segment);
    }
    Ok((path, shape))
}

fn uri(path: &str, query: Option<&str>) -> Result<Uri, ApiError> {
    let text = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    text.parse()
        .map_err(|_| ApiError::invalid_query("query", "is not a valid query string"))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"))
}

/// A create or patch body in declared names. A body that is not a JSON object is passed on as
/// it is, for the route to refuse with its usual problem.
fn body_to_declared(names: &Names, bytes: bytes::Bytes) -> Result<bytes::Bytes, ApiError> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(bytes);
    };
    let declared = names
        .body_to_declared(body)
        .map_err(|name| ApiError::Validation {
            detail: "the request body is not valid for this document".into(),
            errors: vec![FieldError {
                pointer: format!("/{name}"),
                code: ErrorCode::UnknownField,
                detail: "is not a field of this document in this version".into(),
            }],
        })?;
    serde_json::to_vec(&declared)
        .map(bytes::Bytes::from)
        .map_err(ApiError::internal)
}

/// A list's query string in declared names: filter names, and the fields of `order` and
/// `select`.
fn list_query_to_declared(names: &Names, query: &str) -> Result<String, ApiError> {
    let unknown = |name: &str| {
        ApiError::invalid_query(
            name,
            format!("`{name}` is not a field of this document in this version"),
        )
    };
    let mut declared = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "order" | "select" => {
                let items: Result<Vec<String>, ApiError> = value
                    .split(',')
                    .map(|item| {
                        names
                            .path_to_declared(item.trim())
                            .ok_or_else(|| unknown(&name))
                    })
                    .collect();
                declared.append_pair(&name, &items?.join(","));
            }
            reserved if LIST_PARAMETERS.contains(&reserved) => {
                declared.append_pair(&name, &value);
            }
            filter => {
                let field = names
                    .path_to_declared(filter)
                    .ok_or_else(|| unknown(filter))?;
                declared.append_pair(&field, &value);
            }
        }
    }
    Ok(declared.finish())
}

/// A list's query string (of a `Link`) from declared names into the version's.
fn list_query_to_version(names: &Names, query: &str) -> String {
    let mut shown = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "order" | "select" => {
                let items: Vec<String> = value
                    .split(',')
                    .map(|item| names.path_to_version(item))
                    .collect();
                shown.append_pair(&name, &items.join(","));
            }
            reserved if LIST_PARAMETERS.contains(&reserved) => {
                shown.append_pair(&name, &value);
            }
            filter => {
                shown.append_pair(&names.path_to_version(filter), &value);
            }
        }
    }
    shown.finish()
}

/// The answer in the version's names: its body, and the paths in `Location` and `Link`.
async fn answer_to_version(
    target: &Target<'_>,
    shape: Option<Shape>,
    response: Response,
) -> Result<Response, ApiError> {
    let (mut parts, body) = response.into_parts();
    rewrite_paths(target, &mut parts.headers);
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(shape) = shape.filter(|_| !target.names.is_identity()) else {
        return Ok(Response::from_parts(parts, body));
    };
    if content_type.starts_with("text/event-stream") {
        let body = stream::events_to_version(body, target.names.clone());
        return Ok(Response::from_parts(parts, body));
    }
    let problem = content_type.starts_with("application/problem+json");
    if !problem && !content_type.starts_with("application/json") {
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    if problem {
        problem_to_version(target.names, &mut value);
    } else {
        body_to_version(target.names, shape, &mut value);
    }
    parts.headers.remove(CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&value).map_err(ApiError::internal)?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn body_to_version(names: &Names, shape: Shape, value: &mut Value) {
    let each = |value: &mut Value, key: Option<&str>, names: &Names| {
        for item in value
            .get_mut("data")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let fields = match key {
                Some(key) => item.get_mut(key),
                None => Some(item),
            };
            if let Some(Value::Object(fields)) = fields {
                names.fields_to_version(fields);
            }
        }
    };
    match shape {
        Shape::Document => {
            if let Value::Object(fields) = value {
                names.fields_to_version(fields);
            }
        }
        Shape::List => each(value, None, names),
        Shape::History => each(value, Some("changes"), names),
        Shape::Events => each(value, Some("data"), names),
    }
}

/// Field pointers and query parameters named in a problem, in the version's names.
fn problem_to_version(names: &Names, problem: &mut Value) {
    for error in problem
        .get_mut("errors")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(error) = error.as_object_mut() else {
            continue;
        };
        if let Some(Value::String(pointer)) = error.get_mut("pointer") {
            *pointer = names.pointer_to_version(pointer);
        }
        if let Some(Value::String(parameter)) = error.get_mut("parameter")
            && !LIST_PARAMETERS.contains(&parameter.as_str())
        {
            *parameter = names.path_to_version(parameter);
        }
    }
}

/// `Location` and `Link` name `/v1` paths; the client of a version gets its own.
fn rewrite_paths(target: &Target<'_>, headers: &mut HeaderMap) {
    let declared = format!("/{FIRST_VERSION}/{}/", target.app);
    let shown = format!("/{}/{}/", target.version.name, target.app);
    if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok())
        && let Some(rest) = location.strip_prefix(&declared)
        && let Ok(value) = HeaderValue::from_str(&format!("{shown}{rest}"))
    {
        headers.insert(LOCATION, value);
    }
    let links: Vec<HeaderValue> = headers
        .get_all(LINK)
        .iter()
        .map(|value| {
            let Some(text) = value.to_str().ok() else {
                return value.clone();
            };
            let rewritten = link_to_version(text, &declared, &shown, target.names);
            HeaderValue::from_str(&rewritten).unwrap_or_else(|_| value.clone())
        })
        .collect();
    headers.remove(LINK);
    for link in links {
        headers.append(LINK, link);
    }
}

fn link_to_version(link: &str, declared: &str, shown: &str, names: &Names) -> String {
    let Some((url, params)) = link.strip_prefix('<').and_then(|l| l.split_once('>')) else {
        return link.to_owned();
    };
    let Some(rest) = url.strip_prefix(declared) else {
        return link.to_owned();
    };
    let url = match rest.split_once('?') {
        Some((path, query)) => format!("{shown}{path}?{}", list_query_to_version(names, query)),
        None => format!("{shown}{rest}"),
    };
    format!("<{url}>{params}")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use herald_bus::schema::versions::DocumentVersion;

    use super::{Names, link_to_version, list_query_to_declared, list_query_to_version};

    fn names() -> Names {
        Names::of(&DocumentVersion {
            rename: BTreeMap::from([("name".into(), "title".into())]),
            drop: BTreeSet::from(["cost".into()]),
            ..DocumentVersion::default()
        })
    }

    #[test]
    fn list_queries_name_the_declared_fields() {
        let names = names();
        assert_eq!(
            list_query_to_declared(
                &names,
                "title=eq.Kite&order=title.desc,price&limit=5&select=title,dimensions.width"
            )
            .unwrap_or_else(|e| panic!("{e}")),
            "name=eq.Kite&order=name.desc%2Cprice&limit=5&select=name%2Cdimensions.width"
        );
        assert!(list_query_to_declared(&names, "cost=gt.1").is_err());
        assert!(list_query_to_declared(&names, "name=eq.Kite").is_err());
        assert!(list_query_to_declared(&names, "order=name").is_err());
        assert_eq!(
            list_query_to_version(&names, "name=eq.Kite&order=name.desc&cursor=abc"),
            "title=eq.Kite&order=title.desc&cursor=abc"
        );
    }

    #[test]
    fn a_next_page_link_names_the_version() {
        let link = "</v1/petstore/product?name=eq.Kite&cursor=abc>; rel=\"next\"";
        assert_eq!(
            link_to_version(link, "/v1/petstore/", "/v2/petstore/", &names()),
            "</v2/petstore/product?title=eq.Kite&cursor=abc>; rel=\"next\""
        );
    }
}
