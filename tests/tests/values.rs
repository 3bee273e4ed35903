//! Accepted means readable, forever: every value the api accepts is stored, read back, listed,
//! found in history, paged and streamed as an event, relayed and rebuilt as exactly the JSON
//! value it answered with;
//! a value that cannot be kept exactly is refused with `422` at its field. Edge values by hand,
//! then random documents generated from the example's YAML.

use std::sync::Arc;

use herald_bus::position::LogPosition;
use herald_bus::schema::{DocumentSchema, Registry};
use herald_tests::sse::SseStream;
use herald_tests::{DEADLINE, TestApp, eventually, header, json, petstore_apps, relayed, send};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

/// The fields a client sends and reads back (the server adds `id`, `version` and stamps).
fn client_fields(document: &Value) -> Value {
    let mut fields = document.as_object().cloned().unwrap_or_default();
    for stamp in [
        "id",
        "version",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
    ] {
        fields.remove(stamp);
    }
    Value::Object(fields)
}

/// Whether `a` and `b` are the same JSON value, numbers compared by their value (`1.0` and `1`
/// are one number in JSON).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Creates `body` as a product and checks that every reader gives back the document the create
/// answered with, and that it holds what was sent. Returns the created document.
async fn create_and_read_back(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post("/v1/petstore/product", token, body).await;
    let status = response.status();
    let position = header(&response, "herald-position");
    let created = json(response).await;
    assert_eq!(status, 201, "{body} -> {created}");
    let sent = body.as_object().cloned().unwrap_or_default();
    for (name, value) in &sent {
        assert!(
            same(value, &created[name]),
            "{name}: sent {value}, answered {}",
            created[name]
        );
    }
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/petstore/product/{id}");
    let read = json(
        app.get(&format!("{path}?min_position={position}"), token)
            .await,
    )
    .await;
    assert_eq!(read, created, "read by id");
    let as_of = json(app.get(&format!("{path}?as_of=1"), token).await).await;
    assert_eq!(
        as_of, created,
        "the document as of version 1, folded from history"
    );
    let history = json(app.get(&format!("{path}/history"), token).await).await;
    let changes = &history["data"][0]["changes"];
    for (name, value) in client_fields(&created).as_object().into_iter().flatten() {
        assert_eq!(&changes[name]["after"], value, "history of {name}");
    }
    let page = json(app.get(&format!("{path}/events"), token).await).await;
    assert_eq!(
        page["data"][0]["data"],
        client_fields(&created),
        "the event page"
    );
    created
}

fn tokens(app: &TestApp) -> String {
    app.token("sam", &["staff", "admin"], "acme")
}

/// Rebuilds the product view and waits until the new version serves reads.
async fn rebuild(app: &TestApp, token: &str) {
    let started = send(app.request(
        Method::POST,
        "/v1/admin/projections/petstore.product/rebuild",
        Some(token),
    ))
    .await;
    assert_eq!(started.status(), 202);
    let version = json(started).await["version"].clone();
    eventually("the rebuilt view to serve reads", || async {
        let status = json(
            app.get("/v1/admin/projections/petstore.product", token)
                .await,
        )
        .await;
        let versions = status["versions"].as_array().cloned().unwrap_or_default();
        versions
            .iter()
            .any(|v| v["version"] == version && v["state"] == "active")
            .then_some(())
    })
    .await;
}

/// Every document reads back as created in a list, from an event stream replayed from the
/// start, after a rebuild, and as the relay carried it.
async fn survives_rebuild_and_relay(app: &TestApp, token: &str, created: &[Value]) {
    let listed = json(app.get("/v1/petstore/product?limit=100", token).await).await;
    let listed = listed["data"].as_array().cloned().unwrap_or_default();
    for document in created {
        assert!(listed.contains(document), "listed: {document}");
    }
    let stream = send(
        app.request(Method::GET, "/v1/petstore/product/events", Some(token))
            .header("accept", "text/event-stream")
            .header("last-event-id", LogPosition::START.token()),
    )
    .await;
    let mut stream = SseStream::new(stream);
    for document in created {
        let Some(event) = stream.next(DEADLINE).await else {
            panic!("the event stream ended before {}", document["id"]);
        };
        assert_eq!(event.data["document_id"], document["id"]);
        assert_eq!(event.data["data"], client_fields(document), "streamed");
    }
    rebuild(app, token).await;
    for document in created {
        let path = format!(
            "/v1/petstore/product/{}",
            document["id"].as_str().unwrap_or_default()
        );
        assert_eq!(
            &json(app.get(&path, token).await).await,
            document,
            "after a rebuild"
        );
    }
    let relayed = eventually("every create to be relayed", || async {
        let messages = relayed(app).await;
        (messages.len() >= created.len()).then_some(messages)
    })
    .await;
    for document in created {
        let payload = relayed
            .iter()
            .map(|(_, payload)| payload)
            .find(|p| p["document_id"] == document["id"])
            .unwrap_or_else(|| panic!("{} was not relayed", document["id"]));
        assert_eq!(payload["data"], client_fields(document), "relayed");
    }
}

#[tokio::test]
async fn edge_values_are_kept_exactly_by_every_reader() {
    let app = herald_tests::spawn_petstore().await;
    let token = tokens(&app);
    let planes: String = [
        '\u{1}',
        'A',
        'é',
        '\u{7ff}',
        '\u{800}',
        '中',
        '\u{fffd}',
        '\u{ffff}',
        '\u{10000}',
        '😀',
        '\u{2a6d6}',
        '\u{3134a}',
        '\u{e0041}',
        '\u{f0000}',
        '\u{10fffd}',
        '\u{10ffff}',
    ]
    .iter()
    .collect();
    let long: String = planes.chars().cycle().take(2000).collect();
    let doubles = [
        json!(1.797_693_134_862_315_7e308),
        json!(2.225_073_858_507_201_4e-308),
        json!(2.225_073_858_507_201e-308),
        json!(5e-324),
        json!(1e21),
        json!(1e22),
        json!(1e16),
        json!(0.1),
        json!(123_456.789_012_345_67),
        json!(9_007_199_254_740_993_u64),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1.8446744073709552e19),
        json!(-0.0),
    ];
    let mut created = Vec::new();
    for (n, price) in doubles.iter().enumerate() {
        let body = json!({
            "name": format!("edge {n} {}", planes.chars().take(8).collect::<String>()),
            "price": price,
            "cost": price,
            "dimensions": {"width": price, "height": 5e-324},
            "stock": i64::MAX - i64::try_from(n).unwrap_or_default(),
        });
        created.push(create_and_read_back(&app, &token, &body).await);
    }
    let body = json!({
        "name": planes,
        "description": long,
        "price": 9_007_199_254_740_993_u64,
        "stock": 9_007_199_254_740_993_u64,
        "tags": ["\u{10ffff}", "😀😀", "\u{e0041}"],
    });
    created.push(create_and_read_back(&app, &token, &body).await);

    // What cannot be kept exactly is refused at its field, and nothing is stored.
    for (body, pointer) in [
        (
            json!({"name": "too big", "price": 1, "stock": u64::MAX}),
            "/stock",
        ),
        (
            json!({"name": "not whole", "price": 1, "stock": 9.5}),
            "/stock",
        ),
        (json!({"name": "nul \u{0}", "price": 1}), "/name"),
        (json!({"name": "neg", "price": -5e-324}), "/price"),
    ] {
        let response = app.post("/v1/petstore/product", &token, &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem = json(response).await;
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    for text in [
        r#"{"name": "huge", "price": 1e400}"#.to_owned(),
        format!(
            r#"{{"name": "deep", "price": 1, "dimensions": {}1{}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        ),
    ] {
        let response = send(
            app.request(Method::POST, "/v1/petstore/product", Some(&token))
                .header("content-type", "application/json")
                .body(text.clone()),
        )
        .await;
        assert!(
            response.status().is_client_error(),
            "{text:.60}: {}",
            response.status()
        );
    }
    survives_rebuild_and_relay(&app, &token, &created).await;
    assert_eq!(
        json(app.get("/readyz", &token).await).await["status"],
        "ready",
        "every role still runs"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn random_documents_from_the_yaml_survive_every_reader_and_a_rebuild() {
    let registry = Registry::load(&petstore_apps()).unwrap_or_else(|e| panic!("{e}"));
    let schema: &Arc<DocumentSchema> = registry
        .get("petstore", "product")
        .unwrap_or_else(|| panic!("the example declares petstore.product"));
    let documents = herald_tests::generate::document(schema).unwrap_or_else(|e| panic!("{e}"));
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let app = herald_tests::spawn_petstore().await;
    let token = tokens(&app);
    let mut created = Vec::new();
    for case in 0..40 {
        let mut body = documents
            .new_tree(&mut runner)
            .unwrap_or_else(|e| panic!("{e}"))
            .current();
        // Names are unique per tenant: the case number keeps random ones apart.
        if let Some(name) = body["name"].as_str() {
            let name: String = format!("{case} {name}").chars().take(50).collect();
            body["name"] = Value::from(name);
        }
        created.push(create_and_read_back(&app, &token, &body).await);
    }
    survives_rebuild_and_relay(&app, &token, &created).await;
    app.stop_and_clean().await;
}
