//! What browsers rely on, over HTTP: CORS preflights answered before authentication, allowed
//! origins only, Herald's headers exposed; the security headers of every answer; `/docs` and
//! `/console` served with their code from the binary under a strict policy. `scripts/browser`
//! checks the same in headless Chromium.

use herald_bus::settings::Settings;
use herald_tests::{Options, TestApp, header, send};
use reqwest::Method;

const ALLOWED: &str = "https://app.example.com";

fn one_origin(settings: &mut Settings) {
    settings.http.cors.allowed_origins = vec![ALLOWED.to_owned()];
    settings.http.hsts_max_age_secs = 31_536_000;
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    send(
        app.request(Method::OPTIONS, "/v1/petstore/product", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            ),
    )
    .await
}

#[tokio::test]
async fn an_allowed_origin_passes_its_preflight_without_a_token_and_reads_heralds_headers() {
    let app = TestApp::spawn_with(Options {
        configure: one_origin,
        ..herald_tests::petstore()
    })
    .await;

    let allowed = preflight(&app, ALLOWED).await;
    assert_eq!(allowed.status(), 204, "answered before authentication");
    assert_eq!(header(&allowed, "access-control-allow-origin"), ALLOWED);
    assert!(header(&allowed, "access-control-allow-methods").contains("POST"));
    let headers = header(&allowed, "access-control-allow-headers");
    assert!(
        headers.contains("authorization") && headers.contains("idempotency-key"),
        "{headers}"
    );
    assert_eq!(header(&allowed, "access-control-max-age"), "600");

    let other = preflight(&app, "https://evil.example.net").await;
    assert_eq!(other.status(), 204);
    assert_eq!(
        header(&other, "access-control-allow-origin"),
        "",
        "no CORS headers for an origin not allowed: the browser blocks the call"
    );

    let listed = send(
        app.as_staff("sam")
            .request(Method::GET, "/v1/petstore/product")
            .header("origin", ALLOWED),
    )
    .await;
    assert_eq!(listed.status(), 200);
    assert_eq!(header(&listed, "access-control-allow-origin"), ALLOWED);
    let exposed = header(&listed, "access-control-expose-headers");
    for name in [
        "etag",
        "location",
        "herald-position",
        "x-request-id",
        "retry-after",
    ] {
        assert!(exposed.contains(name), "{name} is exposed: {exposed}");
    }
    let refused = send(
        app.request(Method::GET, "/v1/petstore/product", None)
            .header("origin", ALLOWED),
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        ALLOWED,
        "a page can read why it was refused"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn by_default_no_origin_is_allowed() {
    let app = herald_tests::spawn_petstore().await;
    let preflight = preflight(&app, ALLOWED).await;
    assert_eq!(header(&preflight, "access-control-allow-origin"), "");
    let read = send(
        app.as_staff("sam")
            .request(Method::GET, "/v1/petstore/product")
            .header("origin", ALLOWED),
    )
    .await;
    assert_eq!(header(&read, "access-control-allow-origin"), "");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn_with(Options {
        configure: one_origin,
        ..herald_tests::petstore()
    })
    .await;
    let authenticated = app.as_staff("sam").get("/v1/petstore/product").await;
    let public = app.anonymous().get("/healthz").await;
    let missing = app.anonymous().get("/nowhere").await;
    for response in [&authenticated, &public, &missing] {
        assert_eq!(header(response, "x-content-type-options"), "nosniff");
        assert_eq!(header(response, "referrer-policy"), "no-referrer");
        assert_eq!(
            header(response, "strict-transport-security"),
            "max-age=31536000"
        );
    }
    assert_eq!(header(&authenticated, "cache-control"), "no-store");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn docs_serve_their_renderer_themselves_under_a_strict_policy() {
    let app = herald_tests::spawn_petstore().await;
    let docs = app.anonymous().get("/docs").await;
    assert_eq!(docs.status(), 200);
    let policy = header(&docs, "content-security-policy");
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self';"),
        "{policy}"
    );
    assert_eq!(
        header(&docs, "strict-transport-security"),
        "",
        "off by default"
    );
    let page = docs.text().await.unwrap_or_default();
    assert!(
        !page.contains("https://"),
        "nothing is loaded from elsewhere: {page}"
    );
    let script = page
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let renderer = app.anonymous().get(&script).await;
    assert_eq!(renderer.status(), 200, "{script}");
    assert!(header(&renderer, "content-type").starts_with("text/javascript"));
    assert!(header(&renderer, "cache-control").contains("immutable"));
    let body = renderer.bytes().await.unwrap_or_default();
    assert!(
        body.len() > 1_000_000,
        "the renderer's bundle: {} bytes",
        body.len()
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn the_console_serves_its_own_script_and_style_under_a_strict_policy() {
    let app = herald_tests::spawn_petstore().await;
    let console = app.anonymous().get("/console").await;
    assert_eq!(console.status(), 200);
    let policy = header(&console, "content-security-policy");
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"),
        "no inline code or style: {policy}"
    );
    assert!(policy.contains("connect-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let page = console.text().await.unwrap_or_default();
    assert!(
        !page.contains("https://"),
        "nothing is loaded from elsewhere: {page}"
    );
    assert!(!page.contains("<script>"), "no inline script: {page}");
    for (path, kind) in [
        ("/console/assets/console.js", "text/javascript"),
        ("/console/assets/console.css", "text/css"),
    ] {
        assert!(page.contains(path), "{page}");
        let asset = app.anonymous().get(path).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert!(header(&asset, "content-type").starts_with(kind));
        assert!(!asset.bytes().await.unwrap_or_default().is_empty());
    }
}
