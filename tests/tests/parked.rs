//! One bad event never stops the system: an event row made unreadable by hand, and an event a
//! view cannot apply, are retried, then parked by the readers that must see every event (the
//! view, the relay, the task triggers), while later events still reach views, event streams,
//! the relay and tasks, and every role keeps running.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::time::Duration;

use herald_tests::sse::SseStream;
use herald_tests::{
    DEADLINE, Options, TestApp, eventually, header, json, petstore_with, relayed, send,
};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// Appends an event by hand, as a damaged or foreign writer would: `data` is SQL.
async fn append_by_hand(app: &TestApp, event_type: &str, version: i64, data_sql: &str) -> Uuid {
    let (event_id, document_id) = (Uuid::now_v7(), Uuid::now_v7());
    let sql = format!(
        "INSERT INTO herald.events
             (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata)
         VALUES ('acme', $1, 'petstore.product', $2, $3, $4, $5,
                 {data_sql}, '{{\"actor\": {{\"sub\": \"intruder\", \"roles\": []}}}}')"
    );
    let stream_id = format!("petstore.product.{document_id}");
    app.db()
        .await
        .execute(
            &sql,
            &[&stream_id, &document_id, &version, &event_id, &event_type],
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    event_id
}

/// The readers that parked `event_id`.
async fn parked_by(app: &TestApp, event_id: Uuid) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT reader FROM herald.parked_events WHERE event_id = $1 ORDER BY reader",
            &[&event_id],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A task that retires a product once its stock drops below 5.
const TASKS: &str = "retire_low:
  on: petstore.product.updated
  when: {stock: {lt: 5}}
  kind: command
  command:
    target: petstore.product
    action: update
    id: $event.document_id
    body: {status: retired}
";

async fn spawn() -> TestApp {
    TestApp::spawn_with(Options {
        apps: petstore_with(&[("petstore", "tasks", TASKS)]),
        ..herald_tests::petstore()
    })
    .await
}

#[tokio::test]
async fn bad_events_are_parked_and_the_rest_of_the_log_flows_on() {
    let app = spawn().await;
    let staff = app.token("sam", &["staff", "admin"], "acme");
    let before = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "before", "price": 1}),
        )
        .await;
    assert_eq!(before.status(), 201);
    let resume = header(&before, "herald-position");
    let events = send(
        app.request(Method::GET, "/v1/petstore/product/events", Some(&staff))
            .header("accept", "text/event-stream")
            .header("last-event-id", &resume),
    )
    .await;
    assert_eq!(events.status(), 200);
    let mut events = SseStream::new(events);

    // Postgres keeps 1e400 as a numeric; no double holds it, so the row cannot be decoded.
    let unreadable = append_by_hand(
        &app,
        "petstore.product.updated",
        2,
        r#"'{"stock": 1e400}'::jsonb"#,
    )
    .await;
    // Readable, but there is no document for the view to update.
    let unappliable = append_by_hand(
        &app,
        "petstore.product.updated",
        2,
        r#"'{"stock": 7}'::jsonb"#,
    )
    .await;

    let after = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "after", "price": 2, "stock": 9}),
        )
        .await;
    assert_eq!(after.status(), 201);
    let position = header(&after, "herald-position");
    let after = json(after).await;
    let id = after["id"].as_str().unwrap_or_default().to_owned();
    let patched = app
        .patch(
            &format!("/v1/petstore/product/{id}"),
            &staff,
            &json!({"stock": 3}),
        )
        .await;
    assert_eq!(patched.status(), 200);

    // The view parks both after their retries and serves the later document.
    let read = json(
        send(
            app.request(
                Method::GET,
                &format!("/v1/petstore/product/{id}?min_position={position}"),
                Some(&staff),
            )
            .header("prefer", "wait=30"),
        )
        .await,
    )
    .await;
    assert_eq!(read["name"], "after", "{read}");
    assert_eq!(
        parked_by(&app, unappliable).await,
        vec!["petstore.product.v1"]
    );
    let view_and_others = eventually(
        "the unreadable event to be parked by every reader",
        || async {
            let readers = parked_by(&app, unreadable).await;
            (readers.len() == 3).then_some(readers)
        },
    )
    .await;
    assert_eq!(
        view_and_others,
        vec!["petstore.product.v1", "relay", "tasks"]
    );

    // The event stream passes over the unreadable event and delivers the rest in order.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let Some(event) = events.next(DEADLINE).await else {
            panic!("the event stream ended early; saw {seen:?}");
        };
        seen.push(event.data["type"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        seen,
        [
            "petstore.product.updated",
            "petstore.product.created",
            "petstore.product.updated",
            "petstore.product.updated"
        ],
        "the unappliable event, then the later ones (the task's update last)"
    );

    // The relay carried the later events; the task trigger fired for the low stock.
    eventually("the later events to be relayed", || async {
        relayed(&app)
            .await
            .iter()
            .any(|(_, m)| m["document_id"] == id.as_str() && m["version"] == 2)
            .then_some(())
    })
    .await;
    eventually(
        "the low-stock task to retire the later document",
        || async {
            let read = json(app.get(&format!("/v1/petstore/product/{id}"), &staff).await).await;
            (read["status"] == "retired").then_some(())
        },
    )
    .await;

    // Operators see them; /metrics counts them; /readyz says degraded, every role running.
    let listed = json(app.get("/v1/admin/parked-events", &staff).await).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(4), "{listed}");
    let metrics = send(app.request(Method::GET, "/metrics", Some(&staff))).await;
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(
        metrics.contains(r#"herald_parked_events{reader="relay"} 1"#),
        "{metrics}"
    );
    let ready = json(app.get("/readyz", &staff).await).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["parked_events"]["petstore.product.v1"], 2);
    assert!(
        ready["roles"]
            .as_object()
            .is_some_and(|roles| roles.values().all(|r| r["state"] == "running")),
        "{ready}"
    );
    tokio::time::timeout(Duration::from_secs(30), app.stop_and_clean())
        .await
        .unwrap_or_else(|_| panic!("Herald did not stop"));
}
