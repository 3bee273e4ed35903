//! Blue/green rebuilds and what operators see: a rebuild under concurrent writes keeps serving
//! reads and ends equal to the fold of the log; projection status, metrics and readiness.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use herald_cli::server::Role;
use herald_tests::{Options, TestApp, eventually, header, json, send, view_matches_the_log};
use reqwest::Method;
use serde_json::{Value, json};

async fn active_version(app: &TestApp, admin: &str) -> Option<i64> {
    let status = json(
        app.get("/v1/admin/projections/petstore.product", admin)
            .await,
    )
    .await;
    status["versions"]
        .as_array()?
        .iter()
        .find(|v| v["state"] == "active")
        .and_then(|v| v["version"].as_i64())
}

#[tokio::test]
async fn a_rebuild_under_concurrent_writes_serves_reads_throughout_and_ends_equal_to_the_log() {
    let app = TestApp::spawn_with(Options {
        configure: |settings| settings.projector.rebuild_batch_size = 50,
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");
    let mut ids = Vec::new();
    for i in 0..150 {
        let p = app
            .create(
                "petstore/product",
                &staff,
                &json!({"name": format!("b{i}"), "price": i}),
            )
            .await;
        ids.push(p["id"].as_str().unwrap_or_default().to_owned());
    }
    eventually("the view to show every product", || async {
        let page = json(app.get("/v1/petstore/product?limit=200", &staff).await).await;
        (page["data"].as_array().map(Vec::len) == Some(150)).then_some(())
    })
    .await;
    let ids = Arc::new(ids);
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (base, http, staff, ids, running) = (
            app.base.clone(),
            app.http.clone(),
            staff.clone(),
            ids.clone(),
            running.clone(),
        );
        tokio::spawn(async move {
            let mut round = 0;
            let mut last = String::new();
            while running.load(Ordering::SeqCst) {
                round += 1;
                for id in ids.iter().take(20) {
                    let response = http
                        .patch(format!("{base}/v1/petstore/product/{id}"))
                        .bearer_auth(&staff)
                        .json(&json!({"stock": round}))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(response.status(), 200);
                    last = header(&response, "herald-position");
                }
            }
            last
        })
    };
    let failures = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (base, http, staff, ids, running, failures, reads) = (
            app.base.clone(),
            app.http.clone(),
            staff.clone(),
            ids.clone(),
            running.clone(),
            failures.clone(),
            reads.clone(),
        );
        tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                let list = http
                    .get(format!("{base}/v1/petstore/product?limit=200"))
                    .bearer_auth(&staff)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = list.status();
                let page: Value = list.json().await.unwrap_or_default();
                if status != 200 || page["data"].as_array().map(Vec::len) != Some(150) {
                    eprintln!("list read failed: {status} {page}");
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                let one = http
                    .get(format!("{base}/v1/petstore/product/{}", ids[149]))
                    .bearer_auth(&staff)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if one.status() != 200 {
                    eprintln!("read failed: {}", one.text().await.unwrap_or_default());
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                reads.fetch_add(2, Ordering::SeqCst);
            }
        })
    };
    assert_eq!(active_version(&app, &admin).await, Some(1));
    let started = send(app.request(
        Method::POST,
        "/v1/admin/projections/petstore.product/rebuild",
        Some(&admin),
    ))
    .await;
    assert_eq!(started.status(), 202);
    assert_eq!(
        header(&started, "location"),
        "/v1/admin/projections/petstore.product"
    );
    let started = json(started).await;
    assert_eq!(started["version"], 2);
    assert_eq!(started["state"], "building");
    eventually("the rebuilt version to serve reads", || async {
        (active_version(&app, &admin).await == Some(2)).then_some(())
    })
    .await;
    running.store(false, Ordering::SeqCst);
    let last = writer.await.unwrap_or_else(|e| panic!("{e}"));
    reader.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        reads.load(Ordering::SeqCst) > 10,
        "reads ran during the rebuild"
    );
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no read failed or came back short while the rebuild ran"
    );
    let caught_up = app
        .get(&format!("/v1/petstore/product?min_position={last}"), &staff)
        .await;
    assert_eq!(caught_up.status(), 200);
    assert!(
        view_matches_the_log(&app, "petstore.product").await,
        "the rebuilt view equals the fold of the log"
    );
    let old: Option<String> = app
        .db()
        .await
        .query_one(
            "SELECT to_regclass('herald_views.\"petstore.product.v1\"')::text",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(old, None, "the old version's table is dropped");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn projection_status_metrics_and_readiness_report_lag() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        configure: |settings| settings.projector.max_lag_secs = 1,
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");
    assert_eq!(app.get("/readyz", &staff).await.status(), 200);
    for i in 0..3 {
        app.post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": format!("l{i}"), "price": i}),
        )
        .await;
    }
    // No projector runs: the view falls behind, and the status shows by how much (once the
    // three commands are committed: on a busy machine some may still be answered 202).
    let product = eventually("the status to count three unapplied events", || async {
        let status = json(app.get("/v1/admin/projections", &admin).await).await;
        let product = status["data"]
            .as_array()
            .and_then(|d| d.iter().find(|p| p["name"] == "petstore.product").cloned())?;
        (product["lag"]["events"] == 3).then_some(product)
    })
    .await;
    assert_eq!(product["version"], 1);
    assert_eq!(product["state"], "active");
    let readiness = eventually("readiness to fail on the stuck view", || async {
        let response = app.get("/readyz", &staff).await;
        (response.status() == 503).then_some(response)
    })
    .await;
    let problem = json(readiness).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("petstore.product.v1")),
        "{problem}"
    );
    let metrics = app.get("/metrics", &admin).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap_or_default();
    assert!(
        text.contains(
            "herald_projection_lag_events{projection=\"petstore.product\",version=\"1\",state=\"active\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains("herald_relay_lag_events"), "{text}");
    assert!(text.contains("herald_group_commits_total"), "{text}");
    assert!(
        text.contains("herald_group_commit_fallbacks_total"),
        "{text}"
    );
    assert!(text.contains("herald_log_frontier_age_seconds"), "{text}");
    // Operators' routes act on every tenant: only admins of the operators' tenant reach them.
    let tenant_admin = app.token("ola", &["admin"], "globex");
    assert_eq!(app.get("/metrics", &tenant_admin).await.status(), 403);
    assert_eq!(
        app.get("/v1/admin/projections", &tenant_admin)
            .await
            .status(),
        403
    );
    let foreign_rebuild = send(app.request(
        Method::POST,
        "/v1/admin/projections/petstore.product/rebuild",
        Some(&tenant_admin),
    ))
    .await;
    assert_eq!(foreign_rebuild.status(), 403);
    assert_eq!(app.get("/metrics", &staff).await.status(), 403);
    assert_eq!(
        send(app.request(Method::GET, "/metrics", None))
            .await
            .status(),
        401
    );
    assert_eq!(app.get("/v1/admin/projections", &staff).await.status(), 403);
    let rebuild = send(app.request(
        Method::POST,
        "/v1/admin/projections/petstore.product/rebuild",
        Some(&staff),
    ))
    .await;
    assert_eq!(rebuild.status(), 403);
    assert_eq!(
        app.get("/v1/admin/projections/petstore.nothing", &admin)
            .await
            .status(),
        404
    );
    app.stop_and_clean().await;
}
