//! What browsers need from the api: CORS for pages on other origins, denied unless an origin is
//! listed (tower-http's layer, answering preflights before authentication), and the security
//! headers every answer carries.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use herald_bus::settings::{CorsSettings, HttpSettings};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The response headers a page may read: versions, where things are, positions, the request
/// id, and when to retry.
const EXPOSED: [&str; 7] = [
    "etag",
    "location",
    "herald-position",
    "x-request-id",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
];

/// The CORS layer `settings` describe. Names that are not methods or header names were refused
/// when the settings loaded; any left are skipped.
pub fn cors(settings: &CorsSettings) -> CorsLayer {
    let origins = settings
        .allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok());
    let methods = settings
        .allowed_methods
        .iter()
        .filter_map(|method| Method::from_bytes(method.as_bytes()).ok());
    let headers = settings
        .allowed_headers
        .iter()
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(methods.collect::<Vec<_>>())
        .allow_headers(headers.collect::<Vec<_>>())
        .expose_headers(EXPOSED.map(HeaderName::from_static))
        .max_age(Duration::from_secs(settings.max_age_secs))
}

/// A preflight has nothing to say beyond its headers: `204`.
pub async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// The security headers of every answer.
#[derive(Clone)]
pub struct SecurityHeaders {
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    pub fn from_settings(settings: &HttpSettings) -> Self {
        Self {
            hsts: (settings.hsts_max_age_secs > 0).then(|| {
                HeaderValue::from_str(&format!("max-age={}", settings.hsts_max_age_secs))
                    .unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
            }),
        }
    }
}

/// `nosniff` and no referrer on every answer, `no-store` on answers to a request with
/// credentials (unless the route chose its own caching), and HSTS when configured.
pub async fn security_headers(
    State(security): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let credentials = request.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if credentials && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(hsts) = &security.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}
