//! One bad event never stops the system: an event row made unreadable by hand, and an event a
//! view cannot apply, are retried, then parked by the readers that must see every event (the
//! view, the relay, the task triggers), while later events still reach views, event streams,
//! the relay and tasks, and every role keeps running. Once repaired, a view applies its parked
//! event again on an operator's request, to the row a rebuild gives.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::time::Duration;

use herald_tests::sse::SseStream;
use herald_tests::{
    DEADLINE, Options, TestApp, eventually, header, json, petstore_with, relayed, send,
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Appends an event of the document `document_id` by hand, as a damaged or foreign writer
/// would: `data` is SQL.
async fn append_by_hand(
    app: &TestApp,
    document_id: Uuid,
    event_type: &str,
    version: i64,
    data_sql: &str,
) -> Uuid {
    let event_id = Uuid::now_v7();
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

/// Moves the stream of the document `document_id` to `version`, as the writer of a hand-made
/// event would have to for later commands to append after it.
async fn move_stream(app: &TestApp, document_id: Uuid, version: i64) {
    app.db()
        .await
        .execute(
            "UPDATE herald.streams
             SET version = $2, snapshot = jsonb_set(snapshot, '{version}', to_jsonb($2::bigint))
             WHERE tenant = 'acme' AND stream_id = $1",
            &[&format!("petstore.product.{document_id}"), &version],
        )
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
}

/// The view's parked row of `event_id`: its attempts, and whether a replay is requested.
async fn parked_in_view(app: &TestApp, event_id: Uuid) -> Option<(i32, bool)> {
    app.db()
        .await
        .query_opt(
            "SELECT attempts, replay_requested_at IS NOT NULL FROM herald.parked_events
             WHERE reader = 'petstore.product.v1' AND event_id = $1",
            &[&event_id],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|row| (row.get(0), row.get(1)))
}

/// Asks for a replay of parked events.
async fn replay(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.post("/v1/admin/parked-events/replay", token, body)
        .await
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
        Uuid::now_v7(),
        "petstore.product.updated",
        2,
        r#"'{"stock": 1e400}'::jsonb"#,
    )
    .await;
    // Readable, but there is no document for the view to update.
    let unappliable = append_by_hand(
        &app,
        Uuid::now_v7(),
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

#[tokio::test]
async fn a_repaired_parked_event_is_re_applied_on_request_as_a_rebuild_would() {
    let app = spawn().await;
    let operator = app.token("ada", &["admin"], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let product = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "kite", "price": 1, "stock": 9}),
        )
        .await;
    let id = product["id"].as_str().unwrap_or_default().to_owned();
    let document_id: Uuid = id.parse().unwrap_or_else(|e| panic!("{e}"));
    // Postgres keeps 1e400 as a numeric; no double holds it, so the row cannot be decoded.
    let bad = append_by_hand(
        &app,
        document_id,
        "petstore.product.updated",
        2,
        r#"'{"stock": 1e400}'::jsonb"#,
    )
    .await;
    move_stream(&app, document_id, 2).await;
    let patched = app
        .patch(
            &format!("/v1/petstore/product/{id}"),
            &staff,
            &json!({"name": "kite 2"}),
        )
        .await;
    let (status, position) = (patched.status(), header(&patched, "herald-position"));
    let patched = json(patched).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 3);

    // Every reader parks the bad event; the view goes on without it.
    eventually("the bad event to be parked by every reader", || async {
        (parked_by(&app, bad).await.len() == 3).then_some(())
    })
    .await;
    let before = json(
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
    assert_eq!(
        (&before["stock"], &before["version"]),
        (&json!(9), &json!(3))
    );
    assert_eq!(parked_in_view(&app, bad).await, Some((5, false)));

    // Only operators ask; the body names a live view version, or nothing.
    let tenant_admin = app.token("ola", &["admin"], "globex");
    assert_eq!(replay(&app, &tenant_admin, &json!({})).await.status(), 403);
    assert_eq!(replay(&app, &staff, &json!({})).await.status(), 403);
    let anonymous = app.request(Method::POST, "/v1/admin/parked-events/replay", None);
    assert_eq!(send(anonymous).await.status(), 401);
    for reader in ["petstore.nothing.v1", "relay", "tasks"] {
        let response = replay(&app, &operator, &json!({ "reader": reader })).await;
        assert_eq!(response.status(), 404, "{reader}");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
    }
    for body in [
        json!({"reader": 1}),
        json!({"reader": ""}),
        json!({"readers": "relay"}),
        json!([]),
    ] {
        let response = replay(&app, &operator, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(json(response).await["code"], "validation_failed");
    }
    let problem = json(replay(&app, &operator, &json!({"reader": 1})).await).await;
    assert_eq!(problem["errors"][0]["pointer"], "/reader", "{problem}");
    let malformed = app
        .request(
            Method::POST,
            "/v1/admin/parked-events/replay",
            Some(&operator),
        )
        .header("content-type", "application/json")
        .body(r#"{"reader":"#);
    assert_eq!(send(malformed).await.status(), 400);
    assert_eq!(parked_in_view(&app, bad).await, Some((5, false)));

    // Asked before the repair, the event still cannot be read: it stays parked, tried once more.
    let asked = replay(&app, &operator, &json!({"reader": "petstore.product.v1"})).await;
    assert_eq!(asked.status(), 202);
    assert_eq!(json(asked).await, json!({"requested": 1}));
    eventually("the failed replay to be recorded", || async {
        (parked_in_view(&app, bad).await == Some((6, false))).then_some(())
    })
    .await;

    // Repaired by hand, then asked for every view version: only the view's row is replayed.
    app.db()
        .await
        .execute(
            r#"UPDATE herald.events SET data = '{"stock": 5}' WHERE event_id = $1"#,
            &[&bad],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let asked = send(app.request(
        Method::POST,
        "/v1/admin/parked-events/replay",
        Some(&operator),
    ))
    .await;
    assert_eq!(asked.status(), 202);
    assert_eq!(json(asked).await, json!({"requested": 1}));
    eventually("the view to re-apply the repaired event", || async {
        parked_in_view(&app, bad).await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        parked_by(&app, bad).await,
        vec!["relay", "tasks"],
        "the relay's and the task triggers' rows stay as records"
    );
    let replayed = json(app.get(&format!("/v1/petstore/product/{id}"), &staff).await).await;
    assert_eq!(
        (&replayed["stock"], &replayed["name"], &replayed["version"]),
        (&json!(5), &json!("kite 2"), &json!(3)),
        "{replayed}"
    );
    let ready = json(app.get("/readyz", &staff).await).await;
    assert_eq!(
        ready["parked_events"],
        json!({"relay": 1, "tasks": 1}),
        "{ready}"
    );
    let metrics = send(app.request(Method::GET, "/metrics", Some(&operator))).await;
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(
        !metrics.contains(r#"herald_parked_events{reader="petstore.product.v1"}"#),
        "{metrics}"
    );

    // A rebuild of the view gives the same document.
    let rebuild = send(app.request(
        Method::POST,
        "/v1/admin/projections/petstore.product/rebuild",
        Some(&operator),
    ))
    .await;
    assert_eq!(rebuild.status(), 202);
    eventually("the rebuilt version to serve reads", || async {
        let status = json(
            app.get("/v1/admin/projections/petstore.product", &operator)
                .await,
        )
        .await;
        let versions = status["versions"].as_array()?.clone();
        versions
            .iter()
            .any(|v| v["version"] == 2 && v["state"] == "active")
            .then_some(())
    })
    .await;
    let rebuilt = json(app.get(&format!("/v1/petstore/product/{id}"), &staff).await).await;
    assert_eq!(
        rebuilt, replayed,
        "the re-applied document is the rebuilt one"
    );
    tokio::time::timeout(Duration::from_secs(30), app.stop_and_clean())
        .await
        .unwrap_or_else(|_| panic!("Herald did not stop"));
}
