//! The direct baseline against a real Postgres: it must do what the workloads ask of Herald
//! (insert and return, select, merge update, the list query), or its figures mean nothing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;

use herald_bench::baseline::Baseline;
use herald_bench::setup::BenchDatabase;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn admin_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_baseline_inserts_reads_merges_and_lists_documents() {
    let db = BenchDatabase::create(&admin_url()).await.unwrap();
    let baseline = Baseline::build(&db.url, 4, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!(
        "http://{}/direct/acme/product",
        baseline.local_addr().unwrap()
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn(baseline.run_until_stopped(stop.clone().cancelled_owned()));
    let http = reqwest::Client::new();

    let mut ids = Vec::new();
    for (name, price, status) in [
        ("a", 10.0, "published"),
        ("b", 90.5, "published"),
        ("c", 50.0, "draft"),
    ] {
        let response = http
            .post(&base)
            .json(&json!({"name": name, "price": price, "status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["name"], name);
        assert_eq!(created["version"], 1);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    let patched: Value = http
        .patch(format!("{base}/{}", ids[0]))
        .json(&json!({"price": 95.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["price"], 95.0);
    assert_eq!(
        patched["name"], "a",
        "a merge keeps the fields it does not name"
    );
    assert_eq!(patched["version"], 2);

    let read = get_json(&http, &format!("{base}/{}", ids[0])).await;
    assert_eq!(read, patched);

    let page = get_json(
        &http,
        &format!("{base}?status=published&price_lt=100&limit=50"),
    )
    .await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "published only, most expensive first");

    let other_tenant = base.replace("/acme/", "/globex/");
    let missing = http
        .get(format!("{other_tenant}/{}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "documents are scoped by tenant");

    stop.cancel();
    server.await.unwrap().unwrap();
    db.drop_database().await.unwrap();
}
