//! `GET /v1/openapi.json` (the generated OpenAPI 3.1 description) and `GET /docs` (an
//! interactive page that renders it, with the renderer served from the binary), and
//! `GET /docs/{version}` for another API version's description (`/{version}/openapi.json`,
//! served by [`crate::versions`]). All are public: they describe, they hold no data.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use herald_bus::schema::versions::FIRST_VERSION;

use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/docs", get(|| async { page(FIRST_VERSION) }))
        .route("/docs/{version}", get(version_docs))
        .route(SCALAR_PATH, get(scalar))
}

/// The renderer's version is in its path, so a browser may keep it for good.
const SCALAR_PATH: &str = "/docs/assets/scalar-1.72.1.js";

/// `@scalar/api-reference`'s browser bundle, from its pinned npm release (`scripts/assets`
/// rebuilds it; its licence is beside it).
const SCALAR: &[u8] = include_bytes!("../../assets/scalar/standalone.js");

/// What `/docs` may load: its own renderer and the description, nothing from elsewhere. The
/// renderer sets styles inline.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.clone(),
    )
}

/// The page renders the description with the renderer Herald serves itself: it works offline
/// and behind networks that block public CDNs, and its policy lets nothing else run.
fn page(version: &str) -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, DOCS_POLICY)],
        Html(format!(
            r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Herald API {version}</title>
    <link rel="icon" href="data:,">
  </head>
  <body>
    <script id="api-reference" data-url="/{version}/openapi.json" data-configuration='{{"withDefaultFonts": false}}'></script>
    <script src="{SCALAR_PATH}"></script>
  </body>
</html>
"#
        )),
    )
        .into_response()
}

/// The page of a version some app declares; `v1` is `/docs`.
async fn version_docs(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    if state.versions.description(&version).is_some() {
        Ok(page(&version))
    } else {
        Err(ApiError::NotFound)
    }
}

async fn scalar() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        SCALAR,
    )
}
