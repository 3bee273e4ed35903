//! Faults: an unreachable database makes requests fail fast and the service recover by itself;
//! handlers in separate processes writing one stream lose no update.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use futures::future::join_all;
use herald_tests::{Options, TestApp, admin_execute, eventually, header, json, send};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn requests_fail_fast_while_the_database_is_unreachable_and_recover_after() {
    let app = TestApp::spawn_with(Options {
        configure: |settings| settings.database.connect_timeout_ms = 1_000,
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let product = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Before", "price": 1}),
        )
        .await;
    let path = format!(
        "/v1/petstore/product/{}",
        product["id"].as_str().unwrap_or_default()
    );

    // Cut the database off: refuse new connections and drop the existing ones.
    let db = &app.database;
    admin_execute(&format!(
        "ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
    ))
    .await;
    let started = std::time::Instant::now();
    let read = send(app.request(Method::GET, &path, Some(&staff))).await;
    let write = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "During", "price": 1}),
        )
        .await;
    let elapsed = started.elapsed();
    for (what, response) in [("read", read), ("write", write)] {
        assert_eq!(response.status(), 503, "{what} during the outage");
        assert!(
            response.headers().contains_key("retry-after"),
            "{what} says when to retry"
        );
        let problem = json(response).await;
        assert_eq!(problem["code"], "unavailable", "{what}: {problem}");
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("postgres"),
            "no driver text leaks"
        );
    }
    assert!(
        elapsed < std::time::Duration::from_secs(15),
        "no hang: both answered in {elapsed:?}"
    );
    assert_eq!(
        send(app.request(Method::GET, "/readyz", None))
            .await
            .status(),
        503
    );

    admin_execute(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")).await;
    let created = eventually("writes to work again", || async {
        let response = app
            .post(
                "/v1/petstore/product",
                &staff,
                &json!({"name": "After", "price": 2}),
            )
            .await;
        (response.status() == 201).then_some(header(&response, "herald-position"))
    })
    .await;
    let list = json(
        app.get(
            &format!("/v1/petstore/product?min_position={created}"),
            &staff,
        )
        .await,
    )
    .await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Before", "After"],
        "nothing from the outage was half-applied, and the view caught up"
    );
    assert_eq!(
        send(app.request(Method::GET, "/readyz", None))
            .await
            .status(),
        200
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn handlers_in_separate_processes_lose_no_update_on_one_stream() {
    let first = herald_tests::spawn_petstore().await;
    let second = TestApp::spawn_with(first.restart_options()).await;
    let staff = first.token("sam", &["staff"], "acme");
    let product = first
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Contended", "price": 1}),
        )
        .await;
    let path = format!(
        "/v1/petstore/product/{}",
        product["id"].as_str().unwrap_or_default()
    );
    let writers = 60;
    let statuses = join_all((0..writers).map(|i| {
        let (app, staff, path) = (if i % 2 == 0 { &first } else { &second }, &staff, &path);
        async move {
            app.patch(path, staff, &json!({"stock": i + 1}))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let stream = format!(
        "petstore.product.{}",
        product["id"].as_str().unwrap_or_default()
    );
    let versions: Vec<i64> = first
        .db()
        .await
        .query(
            "SELECT version FROM herald.events WHERE stream_id = $1 ORDER BY version",
            &[&stream],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    assert_eq!(
        versions,
        (1..=writers + 1).collect::<Vec<i64>>(),
        "every update applied once, gap-free"
    );
    second.stop().await.unwrap_or_else(|e| panic!("{e:#}"));
    first.stop_and_clean().await;
}
