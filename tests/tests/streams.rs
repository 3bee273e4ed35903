//! Event streams: exact resume, per-event access checks, reauth on expiry, and event pages.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_tests::sse::{SseEvent, SseStream};
use herald_tests::{DEADLINE, Options, TestApp, eventually, json, send, write_apps};
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};

fn subscribe_request(
    app: &TestApp,
    path: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = app
        .request(Method::GET, path, Some(token))
        .header("accept", "text/event-stream");
    match last_event_id {
        Some(id) => request.header("last-event-id", id),
        None => request,
    }
}

async fn subscribe(app: &TestApp, path: &str, token: &str, last: Option<&str>) -> SseStream {
    let response = send(subscribe_request(app, path, token, last)).await;
    assert_eq!(response.status(), 200, "subscribing to {path}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    SseStream::new(response)
}

/// The event ids of a tenant's log, in log order.
async fn log_of(app: &TestApp, tenant: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT event_id::text FROM herald.events WHERE tenant = $1 ORDER BY tx_id, position",
            &[&tenant],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn event_id(event: &SseEvent) -> String {
    event.data["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn resuming_at_random_points_receives_the_whole_log_once_and_in_order() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let start = herald_bus::position::LogPosition::START.token();
    // Writers keep appending while the subscriber disconnects and resumes.
    let writers = {
        let (base, http, staff) = (app.base.clone(), app.http.clone(), staff.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                let created: Value = http
                    .post(format!("{base}/v1/petstore/product"))
                    .bearer_auth(&staff)
                    .json(&json!({"name": format!("r{i}"), "price": i}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let id = created["id"].as_str().unwrap_or_default();
                let patched = http
                    .patch(format!("{base}/v1/petstore/product/{id}"))
                    .bearer_auth(&staff)
                    .json(&json!({"stock": i + 1}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = patched.status();
                assert_eq!(status, 200, "{}", patched.text().await.unwrap_or_default());
            }
        })
    };
    let mut received: Vec<String> = Vec::new();
    let mut last = start;
    let mut resumes = 0;
    loop {
        let written = writers.is_finished();
        let total = log_of(&app, "acme").await.len();
        if written && received.len() == total {
            break;
        }
        let mut stream = subscribe(&app, "/v1/events", &staff, Some(&last)).await;
        let take = rand::rng()
            .random_range(1..=9)
            .min(total - received.len())
            .max(1);
        for _ in 0..take {
            let Some(event) = stream.next(DEADLINE).await else {
                break;
            };
            assert_eq!(event.event, event.data["type"].as_str().unwrap_or_default());
            last = event.id.clone().unwrap_or_default();
            received.push(event_id(&event));
        }
        resumes += 1;
    }
    writers.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received.len(), 80);
    assert!(resumes > 5, "the subscriber resumed {resumes} times");
    assert_eq!(
        received,
        log_of(&app, "acme").await,
        "the union of what was received is the log, in order, without duplicates"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_live_subscription_starts_at_the_end_and_a_document_stream_has_only_its_events() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let before = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Before", "price": 1}),
        )
        .await;
    let id = before["id"].as_str().unwrap_or_default().to_owned();
    let mut all = subscribe(&app, "/v1/petstore/product/events", &staff, None).await;
    let mut one = subscribe(
        &app,
        &format!("/v1/petstore/product/{id}/events?types=petstore.product.updated"),
        &staff,
        None,
    )
    .await;
    let other = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Other", "price": 2}),
        )
        .await;
    let patched = app
        .patch(
            &format!("/v1/petstore/product/{id}"),
            &staff,
            &json!({"price": 3}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let first = all.next(DEADLINE).await.unwrap_or_else(|| panic!("closed"));
    assert_eq!(first.event, "petstore.product.created");
    assert_eq!(
        first.data["document_id"], other["id"],
        "live: nothing older"
    );
    let second = all.next(DEADLINE).await.unwrap_or_else(|| panic!("closed"));
    assert_eq!(second.event, "petstore.product.updated");
    assert_eq!(second.data["data"], json!({"price": 3}));
    let only = one.next(DEADLINE).await.unwrap_or_else(|| panic!("closed"));
    assert_eq!(only.event, "petstore.product.updated");
    assert_eq!(only.data["stream"], format!("petstore.product.{id}"));
    assert_eq!(only.data["version"], 2);
    assert_eq!(
        only.id, second.id,
        "one position token per event, on every stream"
    );
    app.stop_and_clean().await;
}

const SHOP_ORDER: &str = "fields:
  item: {type: string, required: true}
  margin: {type: number, acl: {read: staff, write: user}}
acl: {create: user, read: [staff, owner], update: [staff, owner]}
";
const SHOP_LEDGER: &str = "fields:
  amount: {type: number, required: true}
acl: {create: staff, read: staff}
";

#[tokio::test]
async fn each_event_is_checked_with_the_subscribers_tenant_document_and_field_rights() {
    let apps = write_apps(&[
        ("shop", "order", SHOP_ORDER),
        ("shop", "ledger", SHOP_LEDGER),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::spawn_with(Options {
        apps,
        ..herald_tests::petstore()
    })
    .await;
    let uma = app.token("uma", &[], "acme");
    let ulf = app.token("ulf", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let stranger = app.token("uma", &["staff"], "globex");
    let mut uma_all = subscribe(&app, "/v1/events", &uma, None).await;
    let mut staff_orders = subscribe(&app, "/v1/shop/order/events", &staff, None).await;
    let mut stranger_all = subscribe(&app, "/v1/events", &stranger, None).await;

    app.create("shop/ledger", &staff, &json!({"amount": 5}))
        .await;
    app.create("shop/order", &ulf, &json!({"item": "ulf's", "margin": 1}))
        .await;
    let mine = app
        .create("shop/order", &uma, &json!({"item": "uma's", "margin": 2}))
        .await;

    let seen = uma_all
        .next(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("closed"));
    assert_eq!(
        seen.data["document_id"], mine["id"],
        "no ledger event (read: staff), no order of another owner"
    );
    assert_eq!(
        seen.data["data"],
        json!({"item": "uma's"}),
        "the staff-only field is removed"
    );
    let ledger = staff_orders.next(DEADLINE).await;
    assert_eq!(
        ledger.map(|e| e.event),
        Some("shop.order.created".to_owned()),
        "a collection's stream has only its own events"
    );
    for expected in ["uma's"] {
        let event = staff_orders
            .next(DEADLINE)
            .await
            .unwrap_or_else(|| panic!("closed"));
        assert_eq!(event.data["data"]["item"], expected);
        assert!(
            event.data["data"]["margin"].is_number(),
            "staff reads margin"
        );
    }
    let theirs = app
        .create(
            "shop/order",
            &app.token("gus", &[], "globex"),
            &json!({"item": "globex's"}),
        )
        .await;
    let foreign = stranger_all
        .next(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("closed"));
    assert_eq!(
        foreign.data["document_id"], theirs["id"],
        "another tenant sees none of acme's events"
    );
    // A collection the caller cannot read does not exist for it.
    let hidden = send(subscribe_request(
        &app,
        "/v1/shop/ledger/events",
        &uma,
        None,
    ))
    .await;
    assert_eq!(hidden.status(), 404);
    let anonymous = send(
        app.request(Method::GET, "/v1/events", None)
            .header("accept", "text/event-stream"),
    )
    .await;
    assert_eq!(anonymous.status(), 401);
    // Pages apply the same checks.
    let page = json(app.get("/v1/events", &uma).await).await;
    let items: Vec<&str> = page["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|e| e["data"]["item"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(items, vec!["uma's"]);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    app.stop_and_clean().await;
}

#[tokio::test]
async fn an_expired_token_gets_reauth_and_a_fresh_token_resumes_without_loss() {
    let app = TestApp::spawn_with(Options {
        configure: |settings| settings.auth.leeway_secs = 0,
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let short = app.token_ttl("sam", &["staff"], "acme", 2);
    let mut stream = subscribe(&app, "/v1/petstore/product/events", &short, None).await;
    app.create(
        "petstore/product",
        &staff,
        &json!({"name": "One", "price": 1}),
    )
    .await;
    let first = stream
        .next(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("closed"));
    let last = first.id.clone().unwrap_or_default();
    let reauth = stream
        .next(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("closed"));
    assert_eq!(reauth.event, "reauth");
    assert_eq!(
        reauth.id, None,
        "a control event does not move the resume position"
    );
    assert!(
        stream.next(DEADLINE).await.is_none(),
        "the server closes the stream after reauth"
    );
    // Written while the subscriber had no valid token.
    let missed = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Two", "price": 2}),
        )
        .await;
    let expired = send(subscribe_request(
        &app,
        "/v1/petstore/product/events",
        &short,
        Some(&last),
    ))
    .await;
    assert_eq!(expired.status(), 401);
    let mut resumed = subscribe(&app, "/v1/petstore/product/events", &staff, Some(&last)).await;
    let next = resumed
        .next(DEADLINE)
        .await
        .unwrap_or_else(|| panic!("closed"));
    assert_eq!(next.data["document_id"], missed["id"]);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn event_pages_walk_the_log_and_bad_parameters_are_named() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    for i in 0..5 {
        app.create(
            "petstore/product",
            &staff,
            &json!({"name": format!("p{i}"), "price": i}),
        )
        .await;
    }
    let log = log_of(&app, "acme").await;
    // A walk ends where the readable log ends at that moment: a transaction still open below a
    // committed event holds it back, so the whole log is awaited with a deadline.
    eventually("the pages to walk the whole log", || async {
        let mut walked = Vec::new();
        let mut path = "/v1/petstore/product/events?limit=2".to_owned();
        loop {
            let page = json(app.get(&path, &staff).await).await;
            for event in page["data"].as_array().cloned().unwrap_or_default() {
                walked.push(event["id"].as_str().unwrap_or_default().to_owned());
            }
            match page["next_after"].as_str() {
                Some(after) => {
                    path = format!("/v1/petstore/product/events?limit=2&after={after}");
                }
                None => break,
            }
        }
        assert!(
            log.starts_with(&walked),
            "pages follow the log's order: {walked:?}"
        );
        (walked == log).then_some(())
    })
    .await;

    let future = herald_bus::position::LogPosition {
        tx_id: u64::MAX / 2,
        position: 1,
    }
    .token();
    for (path, parameter) in [
        ("/v1/events?after=nope".to_owned(), "after"),
        (format!("/v1/events?after={future}"), "after"),
        (
            "/v1/events?types=petstore.product.eaten".to_owned(),
            "types",
        ),
        (
            "/v1/petstore/product/events?types=petstore.supplier.created".to_owned(),
            "types",
        ),
        ("/v1/events?limit=0".to_owned(), "limit"),
        ("/v1/events?limit=201".to_owned(), "limit"),
        ("/v1/events?colour=red".to_owned(), "colour"),
    ] {
        let response = app.get(&path, &staff).await;
        assert_eq!(response.status(), 400, "{path}");
        let problem = json(response).await;
        assert_eq!(problem["code"], "invalid_query", "{path}");
        assert_eq!(problem["errors"][0]["parameter"], parameter, "{path}");
    }
    let bad_resume = send(subscribe_request(&app, "/v1/events", &staff, Some("%%%"))).await;
    assert_eq!(bad_resume.status(), 400);
    assert_eq!(
        json(bad_resume).await["errors"][0]["parameter"],
        "Last-Event-ID"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_so_the_api_drains() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut stream = subscribe(&app, "/v1/events", &staff, None).await;
    let stopping = tokio::spawn(async move { app.stop_and_clean().await });
    assert!(
        stream.next(DEADLINE).await.is_none(),
        "the stream ends when the api stops"
    );
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .unwrap_or_else(|_| panic!("the api did not drain"))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The `herald_event_streams_open` gauge of this api process.
async fn open_streams(app: &TestApp, admin: &str) -> Option<i64> {
    let text = app.get("/metrics", admin).await.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("herald_event_streams_open "))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn a_subscriber_that_leaves_frees_its_place_without_waiting_for_an_event() {
    let app = herald_tests::spawn_petstore().await;
    let admin = app.token("ada", &["admin"], "acme");
    let stream = subscribe(&app, "/v1/events", &admin, None).await;
    assert_eq!(open_streams(&app, &admin).await, Some(1));
    drop(stream);
    herald_tests::eventually("the stream's place to be freed", || async {
        (open_streams(&app, &admin).await == Some(0)).then_some(())
    })
    .await;
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_subscriber_slower_than_the_live_tail_is_dropped_with_lagged_and_others_are_not_held() {
    use herald_api::tail::{Ending, EventTail, Selection, follow};
    use herald_bus::access::Principal;
    use herald_bus::ids::TenantId;
    use herald_bus::schema::Registry;
    use tokio::sync::Semaphore;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let store = app.store();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // A buffer of four events per subscriber.
    let tail = EventTail::start(
        store.pool().clone(),
        app.settings.database.clone(),
        4,
        &tracker,
        shutdown.clone(),
        herald_bus::supervise::RoleHealth::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let registry = Registry::load(&app.settings.apps.dir).unwrap_or_else(|e| panic!("{e}"));
    let selection = Selection {
        principal: Principal {
            sub: Some("sam".into()),
            tenant: TenantId::parse("acme").unwrap_or_else(|| unreachable!()),
            roles: vec!["staff".into()],
        },
        collection: None,
        stream_id: None,
        types: None,
    };
    // The slow subscriber takes its first event, then stalls until the gate opens.
    let gate = Arc::new(Semaphore::new(0));
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow = {
        let (pool, tail, selection, shutdown) = (
            store.pool().clone(),
            tail.clone(),
            selection.clone(),
            shutdown.clone(),
        );
        let (gate, delivered, registry) = (gate.clone(), delivered.clone(), registry.clone());
        tokio::spawn(async move {
            follow(&pool, &registry, &tail, &selection, None, &shutdown, |_| {
                let (gate, delivered) = (gate.clone(), delivered.clone());
                async move {
                    if delivered.fetch_add(1, Ordering::SeqCst) > 0 {
                        drop(gate.acquire().await);
                    }
                    true
                }
            })
            .await
        })
    };
    let mut fast = subscribe(&app, "/v1/events", &staff, None).await;
    app.create(
        "petstore/product",
        &staff,
        &json!({"name": "s0", "price": 0}),
    )
    .await;
    herald_tests::eventually("the slow subscriber's first event", || async {
        (delivered.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    for i in 1..=12 {
        app.create(
            "petstore/product",
            &staff,
            &json!({"name": format!("s{i}"), "price": i}),
        )
        .await;
    }
    for _ in 0..13 {
        assert!(
            fast.next(DEADLINE).await.is_some(),
            "a fast subscriber is not held up by a slow one"
        );
    }
    gate.add_permits(100);
    let ending = tokio::time::timeout(DEADLINE, slow)
        .await
        .unwrap_or_else(|_| panic!("the slow subscriber was never ended"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ending, Some(Ending::Lagged));
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    app.stop_and_clean().await;
}
