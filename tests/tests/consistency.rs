//! The guarantees under concurrency and failure: no lost update, a gap-free ordered log that
//! every reader sees once and in order, exactly-once appends across redelivery and restarts,
//! and views that equal the fold of their events.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::HeaderMap;
use futures::future::join_all;
use herald_bus::command::{Action, CommandEnvelope, Outcome};
use herald_bus::document::{Change, DocumentState, Stamp, apply};
use herald_bus::ids::CommandId;
use herald_bus::nats::Bus;
use herald_bus::position::LogPosition;
use herald_bus::schema::Registry;
use herald_bus::store::EventStore;
use herald_bus::store::reader::{LogFilter, read_batch};
use herald_cli::server::Role;
use herald_handler::Handler;
use herald_projector::catalog::{self, VersionState};
use herald_projector::{ROW_COLUMNS, Stop, read_relation};
use herald_tests::{Options, TestApp, eventually, header, json, send};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

async fn stream_versions(app: &TestApp, id: &str) -> Vec<i64> {
    let stream = format!("petstore.product.{id}");
    app.db()
        .await
        .query(
            "SELECT version FROM herald.events WHERE stream_id = $1 ORDER BY position",
            &[&stream],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn concurrent_writers_on_one_stream_lose_no_update() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let product = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Hot", "price": 1}),
        )
        .await;
    let id = product["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/petstore/product/{id}");
    let writers = 40;
    let responses = join_all((0..writers).map(|i| {
        let (app, staff, path) = (&app, &staff, &path);
        async move {
            app.patch(path, staff, &json!({"description": format!("writer {i}")}))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert!(
        responses.iter().all(|s| *s == 200),
        "every writer succeeded: {responses:?}"
    );
    let versions = stream_versions(&app, &id).await;
    assert_eq!(
        versions,
        (1..=writers + 1).collect::<Vec<i64>>(),
        "one event per writer, gap-free"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn the_ordered_reader_sees_every_event_once_in_order_under_concurrent_writers() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let store = app.store();
    let writing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (pool, writing) = (store.pool().clone(), writing.clone());
        tokio::spawn(async move {
            let mut client = pool.get().await.unwrap_or_else(|e| panic!("{e}"));
            let mut after = LogPosition::START;
            let mut seen: Vec<(LogPosition, Uuid)> = Vec::new();
            loop {
                let done = !writing.load(Ordering::SeqCst);
                let batch = read_batch(&mut client, after, &LogFilter::default(), 7)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                seen.extend(batch.events.iter().map(|e| (e.position, e.event_id)));
                let caught_up = batch.events.len() < 7 && !batch.held_back;
                after = batch.checkpoint;
                if done && caught_up {
                    return seen;
                }
            }
        })
    };
    // Many streams at once, and several writers on a few of them (each write changes something).
    let creates = join_all((0..60).map(|i| {
        let (app, staff) = (&app, &staff);
        async move {
            app.create(
                "petstore/product",
                staff,
                &json!({"name": format!("p{i}"), "price": i}),
            )
            .await
        }
    }))
    .await;
    let updates = join_all(
        creates
            .iter()
            .take(5)
            .flat_map(|p| {
                let path = format!(
                    "/v1/petstore/product/{}",
                    p["id"].as_str().unwrap_or_default()
                );
                (0..8).map(move |i| (path.clone(), i))
            })
            .map(|(path, i)| {
                let (app, staff) = (&app, &staff);
                async move {
                    app.patch(&path, staff, &json!({"stock": i + 1}))
                        .await
                        .status()
                        .as_u16()
                }
            }),
    )
    .await;
    assert!(updates.iter().all(|s| *s == 200));
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.unwrap_or_else(|e| panic!("{e}"));

    let log: Vec<(LogPosition, Uuid)> = app
        .db()
        .await
        .query(
            "SELECT tx_id::text, position, event_id FROM herald.events ORDER BY tx_id, position",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let tx: &str = r.get(0);
                    (
                        LogPosition {
                            tx_id: tx.parse().unwrap_or_default(),
                            position: r.get(1),
                        },
                        r.get(2),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(log.len(), 60 + 40);
    assert_eq!(seen.len(), log.len(), "every event once");
    assert_eq!(seen, log, "in commit order, none skipped");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "strictly increasing"
    );
    app.stop_and_clean().await;
}

fn envelope(action: Action, document_id: Uuid) -> CommandEnvelope {
    let principal = herald_bus::access::Principal {
        sub: Some("sam".into()),
        tenant: herald_bus::ids::TenantId::parse("acme").unwrap_or_else(|| unreachable!()),
        roles: vec!["staff".into()],
    };
    let id = CommandId::generate();
    CommandEnvelope {
        id,
        app: "petstore".into(),
        doc: "product".into(),
        document_id,
        action,
        expected_version: None,
        principal,
        idempotency_key: None,
        request_hash: "test".into(),
        correlation_id: id.0,
        causation_id: None,
        traceparent: None,
        submitted_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_redelivered_command_appends_nothing_and_answers_the_same() {
    let app = herald_tests::spawn_petstore().await;
    let registry =
        Arc::new(Registry::load(&app.settings.apps.dir).unwrap_or_else(|e| panic!("{e}")));
    let handler = Handler::new(app.store(), registry, 5);
    let fields = json!({"name": "Twice", "price": 2})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let command = envelope(Action::Create { fields }, Uuid::now_v7());

    let first = handler
        .handle(&command)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The handler died after committing, before acking: JetStream delivers it again.
    let second = handler
        .handle(&command)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(first, Outcome::Succeeded(_)));
    assert_eq!(first, second);
    assert_eq!(app.count("herald.events").await, 1);

    // Delivered again through NATS (a publish the dedupe window did not catch): still one event.
    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let payload = serde_json::to_vec(&command).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "another-id");
    let subject = bus.command_subject(&command.principal.tenant, "petstore", "product");
    let ack = bus
        .jetstream
        .publish_with_headers(subject, headers, payload.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ack.await.unwrap_or_else(|e| panic!("{e}"));
    let stream = bus.commands_stream();
    eventually("the redelivered command to be acked", || async {
        let mut info = bus.jetstream.get_stream(&stream).await.ok()?;
        (info.info().await.ok()?.state.messages == 0).then_some(())
    })
    .await;
    assert_eq!(app.count("herald.events").await, 1);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_command_committed_by_a_handler_that_died_before_its_ack_is_not_applied_twice() {
    // Commands are accepted but no handler runs: they wait in JetStream.
    let api_only = TestApp::spawn_with(Options {
        roles: vec![Role::Api],
        ..herald_tests::petstore()
    })
    .await;
    let staff = api_only.token("sam", &["staff"], "acme");
    let accepted = send(
        api_only
            .request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("prefer", "respond-async")
            .json(&json!({"name": "Orphan", "price": 1})),
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let status_url = header(&accepted, "location");
    // A handler takes the message, commits, and dies before acking.
    let bus = Bus::connect(&api_only.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let consumer = bus
        .commands_consumer(std::time::Duration::from_millis(500), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let message = futures::StreamExt::next(&mut batch)
        .await
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no message"));
    let command: CommandEnvelope =
        serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{e}"));
    let registry =
        Arc::new(Registry::load(&api_only.settings.apps.dir).unwrap_or_else(|e| panic!("{e}")));
    Handler::new(api_only.store(), registry, 5)
        .handle(&command)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(message);

    let options = api_only.restart_options();
    api_only.stop().await.unwrap_or_else(|e| panic!("{e:#}"));
    let app = TestApp::spawn_with(options).await;
    eventually("the redelivered message to be acked", || async {
        let mut stream = bus.jetstream.get_stream(bus.commands_stream()).await.ok()?;
        (stream.info().await.ok()?.state.messages == 0).then_some(())
    })
    .await;
    assert_eq!(app.count("herald.events").await, 1);
    assert_eq!(
        json(app.get(&status_url, &staff).await).await["status"],
        "succeeded"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_graceful_shutdown_loses_no_accepted_command() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let accepted = join_all((0..40).map(|i| {
        let (app, staff) = (&app, &staff);
        async move {
            let response = send(
                app.request(Method::POST, "/v1/petstore/product", Some(staff))
                    .header("prefer", "respond-async")
                    .json(&json!({"name": format!("s{i}"), "price": i})),
            )
            .await;
            assert_eq!(response.status(), 202);
            header(&response, "location")
        }
    }))
    .await;
    let options = app.restart_options();
    app.stop().await.unwrap_or_else(|e| panic!("{e:#}"));

    let app = TestApp::spawn_with(options).await;
    for url in &accepted {
        eventually("every accepted command to succeed", || async {
            (json(app.get(url, &staff).await).await["status"] == "succeeded").then_some(())
        })
        .await;
    }
    assert_eq!(app.count("herald.events").await, 40, "each exactly once");
    app.stop_and_clean().await;
}

/// Folds the whole log into the documents it describes, independently of the projector.
async fn fold_log(app: &TestApp) -> BTreeMap<Uuid, DocumentState> {
    let rows = app
        .db()
        .await
        .query("SELECT document_id, type, data, version, recorded_at, metadata FROM herald.events WHERE collection = 'petstore.product' ORDER BY tx_id, position", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut docs = BTreeMap::new();
    for row in rows {
        let id: Uuid = row.get(0);
        let metadata: Value = row.get(5);
        let sets = metadata.get("sets").and_then(Value::as_object);
        let change = Change::from_stored(row.get(1), &row.get::<_, Value>(2), sets)
            .unwrap_or_else(|| panic!("unknown event"));
        let stamp = Stamp {
            version: row.get(3),
            at: row.get(4),
            by: metadata["actor"]["sub"].as_str().unwrap_or_default(),
        };
        let next = apply(docs.remove(&id), id, &change, stamp).unwrap_or_else(|e| panic!("{e}"));
        docs.insert(id, next);
    }
    docs
}

/// The rows reads see: the active version of the product view.
async fn view_rows(app: &TestApp) -> BTreeMap<Uuid, DocumentState> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM {} ORDER BY id",
        read_relation("petstore.product")
    );
    let rows = app
        .db()
        .await
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rows.iter()
        .map(|r| herald_projector::apply::row_state(r, 0).unwrap_or_else(|e| panic!("{e}")))
        .map(|s| (s.id, s))
        .collect()
}

/// Builds a new version of the product view to the end and makes it the active one.
async fn rebuild_products(app: &TestApp, runners: usize) -> Vec<Stop> {
    let registry = Registry::load(&app.settings.apps.dir).unwrap_or_else(|e| panic!("{e}"));
    let schema = registry
        .get("petstore", "product")
        .cloned()
        .unwrap_or_else(|| panic!("no product"));
    let store = app.store();
    let mut client = store.pool().get().await.unwrap_or_else(|e| panic!("{e}"));
    let version = catalog::request_rebuild(&mut client, &schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version.state, VersionState::Building);
    let runtime = herald_projector::Runtime {
        database: app.settings.database.clone(),
        settings: app.settings.projector.clone(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    join_all((0..runners).map(|_| {
        let wake = tokio::sync::watch::Sender::new(0u64).subscribe();
        herald_projector::contend(runtime.clone(), version.table.clone(), wake, true)
    }))
    .await
}

#[tokio::test]
async fn a_view_equals_the_fold_of_its_events_and_a_rebuild_reproduces_it() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");
    let mut last = String::new();
    for i in 0..12 {
        let p = app.create("petstore/product", &staff, &json!({"name": format!("v{i}"), "price": i, "tags": ["a"], "dimensions": {"width": i}})).await;
        let path = format!(
            "/v1/petstore/product/{}",
            p["id"].as_str().unwrap_or_default()
        );
        let r = app
            .patch(
                &path,
                &staff,
                &json!({"stock": i * 2, "tags": null, "dimensions": {"height": 1}}),
            )
            .await;
        last = header(&r, "herald-position");
        if i % 3 == 0 {
            last = header(&app.delete(&path, &admin).await, "herald-position");
        }
        if i % 6 == 0 {
            last = header(
                &send(app.request(Method::POST, &format!("{path}/restore"), Some(&admin))).await,
                "herald-position",
            );
        }
    }
    assert_eq!(
        app.get(&format!("/v1/petstore/product?min_position={last}"), &staff)
            .await
            .status(),
        200
    );
    let folded = fold_log(&app).await;
    assert_eq!(folded.len(), 12);
    assert_eq!(
        view_rows(&app).await,
        folded,
        "the live view equals the fold of the log"
    );

    assert_eq!(rebuild_products(&app, 1).await, vec![Stop::Activated]);
    assert_eq!(
        view_rows(&app).await,
        folded,
        "a rebuild from scratch yields identical rows"
    );
    let db = app.db().await;
    let versions: Vec<(i32, String, i64)> = db
        .query(
            "SELECT version, state, events_done FROM herald.projections WHERE name = 'petstore.product'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        versions,
        vec![(2, "active".to_owned(), 12 * 2 + 4 + 2)],
        "created + updated + archived + restored, applied once; the old version is gone"
    );
    let old_table: Option<String> = db
        .query_one(
            "SELECT to_regclass('herald_views.\"petstore.product.v1\"')::text",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(old_table, None, "the replaced version's table is dropped");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn store_outcomes_are_stored_once_per_command() {
    let app = herald_tests::spawn_petstore().await;
    let store = app.store();
    let fields = json!({"name": "Stored", "price": 1})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let command = envelope(Action::Create { fields }, Uuid::now_v7());
    let registry =
        Arc::new(Registry::load(&app.settings.apps.dir).unwrap_or_else(|e| panic!("{e}")));
    let handler = Arc::new(Handler::new(store.clone(), registry, 5));
    // The same command handled by several handlers at once: one wins, all answer the same.
    let outcomes = join_all((0..6).map(|_| {
        let (handler, command) = (handler.clone(), command.clone());
        async move {
            handler
                .handle(&command)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }))
    .await;
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
    let stored = store
        .load_command(command.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored.and_then(|s| s.outcome), Some(outcomes[0].clone()));
    assert_eq!(app.count("herald.events").await, 1);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn two_runners_of_one_version_share_its_lease_and_apply_each_event_once() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    for i in 0..30 {
        let p = app
            .create(
                "petstore/product",
                &staff,
                &json!({"name": format!("r{i}"), "price": i}),
            )
            .await;
        let path = format!(
            "/v1/petstore/product/{}",
            p["id"].as_str().unwrap_or_default()
        );
        assert_eq!(
            app.patch(&path, &staff, &json!({"stock": i + 1}))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        rebuild_products(&app, 2).await,
        vec![Stop::Activated, Stop::Activated]
    );
    let done: i64 = app
        .db()
        .await
        .query_one(
            "SELECT events_done FROM herald.projections WHERE name = 'petstore.product' AND state = 'active'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(done, 60, "each event applied once");
    assert_eq!(
        view_rows(&app).await,
        fold_log(&app).await,
        "the view equals the fold"
    );
    app.stop_and_clean().await;
}

/// Commands that arrive together are committed in one group; a group with a taken unique
/// value, a value wanted twice, or a repeated idempotency key falls back to committing each
/// alone. Whatever the grouping, every outcome is the one a lone commit gives.
#[tokio::test]
async fn commands_committed_together_get_the_outcomes_they_would_get_alone() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let taken = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Taken", "price": 1}),
        )
        .await;
    // 30 distinct names, 10 names wanted twice at once, 5 creates of the taken name, and 5
    // requests sharing one idempotency key.
    let mut names: Vec<String> = (0..30).map(|i| format!("Distinct {i}")).collect();
    names.extend((0..10).flat_map(|i| [format!("Twice {i}"), format!("Twice {i}")]));
    names.extend((0..5).map(|_| "Taken".to_owned()));
    let creates = join_all(names.iter().map(|name| {
        let (app, staff) = (&app, &staff);
        async move {
            let response = app
                .post(
                    "/v1/petstore/product",
                    staff,
                    &json!({"name": name, "price": 2}),
                )
                .await;
            (name.clone(), response.status().as_u16())
        }
    }));
    let keyed = join_all((0..5).map(|_| {
        let (app, staff) = (&app, &staff);
        async move {
            let response = send(
                app.request(Method::POST, "/v1/petstore/product", Some(staff))
                    .header("idempotency-key", "together")
                    .json(&json!({"name": "Keyed", "price": 3})),
            )
            .await;
            let status = response.status().as_u16();
            (status, json(response).await)
        }
    }));
    // Pairs of documents that try to swap names: alone, each rename finds its new name
    // taken by the other, whatever the order.
    let mut pairs = Vec::new();
    for i in 0..5 {
        let left = app
            .create(
                "petstore/product",
                &staff,
                &json!({"name": format!("Left {i}"), "price": 4}),
            )
            .await;
        let right = app
            .create(
                "petstore/product",
                &staff,
                &json!({"name": format!("Right {i}"), "price": 4}),
            )
            .await;
        pairs.push((
            i,
            left["id"].as_str().unwrap_or_default().to_owned(),
            right["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let swaps = join_all(pairs.iter().flat_map(|(i, left, right)| {
        let (app, staff) = (&app, &staff);
        [
            (format!("/v1/petstore/product/{left}"), format!("Right {i}")),
            (format!("/v1/petstore/product/{right}"), format!("Left {i}")),
        ]
        .into_iter()
        .map(move |(path, name)| async move {
            app.patch(&path, staff, &json!({"name": name}))
                .await
                .status()
                .as_u16()
        })
    }));
    let (creates, keyed, swaps) = tokio::join!(creates, keyed, swaps);
    assert!(
        swaps.iter().all(|status| *status == 409),
        "no swap of unique values goes through: {swaps:?}"
    );
    let mut by_name: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (name, status) in creates {
        by_name.entry(name).or_default().push(status);
    }
    for (name, mut statuses) in by_name {
        statuses.sort_unstable();
        let expected: Vec<u16> = match name.as_str() {
            "Taken" => vec![409; 5],
            n if n.starts_with("Twice") => vec![201, 409],
            _ => vec![201],
        };
        assert_eq!(statuses, expected, "outcomes of `{name}`");
    }
    // One request created it; the others replayed its outcome or were told it is in flight.
    let created: Vec<&Value> = keyed
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert!(!created.is_empty(), "the keyed create succeeded: {keyed:?}");
    assert!(
        created.iter().all(|body| body["id"] == created[0]["id"]),
        "every replay names the same document"
    );
    assert!(
        keyed.iter().all(|(status, _)| [201, 409].contains(status)),
        "a repeated key is replayed or in flight: {keyed:?}"
    );
    let db = app.db().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            db.query_one(sql, &[])
                .await
                .map(|row| row.get::<_, i64>(0))
                .unwrap_or(-1)
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM herald.events WHERE data->>'name' = 'Keyed'").await,
        1,
        "one event for the keyed create"
    );
    assert_eq!(
        count("SELECT count(*) FROM herald.events WHERE data->>'name' = 'Taken'").await,
        1,
        "the taken name kept its one document"
    );
    assert_eq!(
        count("SELECT count(*) FROM herald.events").await,
        1 + 10 + 30 + 10 + 1,
        "one event per successful create, none for a refused one or a refused swap"
    );
    assert_eq!(
        count("SELECT count(*) FROM herald.commands WHERE status = 'accepted'").await,
        0,
        "every command has its outcome"
    );
    assert!(taken["id"].is_string());
    eventually("the view equals the log", || async {
        herald_tests::view_matches_the_log(&app, "petstore.product")
            .await
            .then_some(())
    })
    .await;
    app.stop_and_clean().await;
}
