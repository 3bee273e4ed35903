//! `GET /console`: the admin console, a page and its script and style, served from the binary
//! (built from `console/src` by `scripts/assets`). The page holds no data: it calls the API with
//! the caller's token like any client, so it sees and does only what the token allows.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
}

const SCRIPT: &[u8] = include_bytes!("../../assets/console/console.js");
const STYLE: &[u8] = include_bytes!("../../assets/console/console.css");

/// The console runs only its own script and style, talks only to this origin, and may not be
/// framed: no inline code, nothing from elsewhere.
const CONSOLE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Assets change with the binary: a browser checks again on each load.
const ASSET_CACHE: &str = "no-cache";

async fn page() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, CONSOLE_POLICY)],
        Html(
            r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Herald console</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/console/assets/console.css">
  </head>
  <body>
    <div id="console"></div>
    <script type="module" src="/console/assets/console.js"></script>
  </body>
</html>
"#,
        ),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        STYLE,
    )
}
