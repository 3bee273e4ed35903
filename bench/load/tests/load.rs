//! Runs the generator against tiny in-process axum servers bound to 127.0.0.1:0.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use herald_load::{
    FixedGet, LoadConfig, LoadError, Mode, ModeReport, Report, Target, TemplatePost, run_load,
};
use hyper::http::HeaderMap;

/// Requests the server has received, to compare with what the generator reports.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicU64>);

impl Hits {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn ok(State(hits): State<Hits>) -> &'static str {
    hits.next();
    "ok"
}

async fn fail(State(hits): State<Hits>) -> StatusCode {
    hits.next();
    StatusCode::INTERNAL_SERVER_ERROR
}

/// Every tenth request takes 300 ms, as a server pausing for a flush or a GC would.
async fn stall(State(hits): State<Hits>) -> &'static str {
    if hits.next() % 10 == 0 {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    "ok"
}

async fn create(State(hits): State<Hits>, body: String) -> (StatusCode, String) {
    hits.next();
    (StatusCode::CREATED, body)
}

/// Starts the server; it lives as long as the test's runtime.
async fn spawn_server() -> (String, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route("/ok", get(ok))
        .route("/fail", get(fail))
        .route("/stall", get(stall))
        .route("/create", post(create))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn config(url: &str, mode: Mode, warmup_ms: u64, duration_ms: u64) -> LoadConfig {
    LoadConfig {
        target: Target::parse(url).unwrap(),
        mode,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
    }
}

async fn get_run(base: &str, path: &str, mode: Mode, warmup_ms: u64, duration_ms: u64) -> Report {
    let url = format!("{base}{path}");
    let source = Arc::new(FixedGet::new(path, HeaderMap::new()));
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        run_load(&config(&url, mode, warmup_ms, duration_ms), source),
    )
    .await
    .expect("the run is bounded by its duration")
    .unwrap();
    println!("{}", report.summary_line());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_every_answered_request() {
    let (base, hits) = spawn_server().await;
    let report = get_run(&base, "/ok", Mode::Closed { connections: 4 }, 0, 1000).await;

    let total = &report.total;
    assert!(total.count > 100, "only {} requests", total.count);
    assert_eq!(total.statuses.success, total.count);
    assert_eq!(total.success_latency.count, total.count);
    // Only the requests in flight when the window closed, one per connection at most,
    // reached the server without being counted.
    let served = hits.get();
    assert!(
        served >= total.count && served - total.count <= 4,
        "served {served}"
    );
    assert!((total.requests_per_sec - total.count as f64).abs() < 1.0);
    assert_eq!(report.kinds.len(), 1);
    assert_eq!(report.kinds[0].kind, "GET /ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate_and_excludes_the_warmup() {
    let (base, hits) = spawn_server().await;
    let mode = Mode::Open {
        rate: 200.0,
        max_connections: 16,
    };
    let report = get_run(&base, "/ok", mode, 500, 1000).await;

    let count = report.total.count;
    assert!((180..=220).contains(&count), "{count} requests");
    assert_eq!(report.total.statuses.success, count);
    let ModeReport::Open { scheduled, .. } = report.mode else {
        panic!("open loop expected");
    };
    assert_eq!(scheduled, 200);
    // The ~100 warm-up requests reached the server but no figure.
    assert!(hits.get() >= count + 90, "served {}", hits.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_counted_apart_from_successes() {
    let (base, _hits) = spawn_server().await;
    let report = get_run(&base, "/fail", Mode::Closed { connections: 2 }, 0, 300).await;

    let total = &report.total;
    assert!(total.count > 10);
    assert_eq!(total.statuses.server_error, total.count);
    assert_eq!(total.statuses.success, 0);
    assert_eq!(total.success_latency.count, 0);
    assert_eq!(total.non_success_latency.count, total.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_stalls_to_the_server() {
    let (base, _hits) = spawn_server().await;
    let mode = Mode::Open {
        rate: 200.0,
        max_connections: 64,
    };
    let report = get_run(&base, "/stall", mode, 0, 1000).await;

    let latency = report.total.success_latency;
    assert!(latency.p99_us >= 300_000, "p99 {} us", latency.p99_us);
    assert!(latency.p50_us < 300_000, "p50 {} us", latency.p50_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_requests_that_wait_for_a_connection_as_late() {
    let (base, _hits) = spawn_server().await;
    // One connection and a 300 ms stall every tenth request: later requests queue.
    let mode = Mode::Open {
        rate: 100.0,
        max_connections: 1,
    };
    let report = get_run(&base, "/stall", mode, 0, 500).await;

    let ModeReport::Open { late, .. } = report.mode else {
        panic!("open loop expected");
    };
    assert!(late > 0);
    assert!(report.total.success_latency.max_us >= 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_post_sends_numbered_bodies() {
    let (base, hits) = spawn_server().await;
    let source = Arc::new(
        TemplatePost::new("/create", HeaderMap::new(), r#"{"name":"p{n}","price":1}"#).unwrap(),
    );
    let config = config(
        &format!("{base}/create"),
        Mode::Closed { connections: 1 },
        0,
        200,
    );
    let report = run_load(&config, source).await.unwrap();

    assert!(report.total.count > 0);
    assert_eq!(report.total.statuses.success, report.total.count);
    assert!(hits.get() >= report.total.count);
}

#[test]
fn only_loopback_targets_are_accepted() {
    for url in [
        "http://127.0.0.1:8080/v1/petstore/product",
        "http://localhost:8080/",
        "http://[::1]:8080/x?limit=5",
    ] {
        assert!(Target::parse(url).is_ok(), "{url}");
    }
    for url in [
        "http://example.com/",
        "http://10.0.0.1:80/",
        "http://127.0.0.2/",
        "http://0.0.0.0:8080/",
    ] {
        assert!(
            matches!(Target::parse(url), Err(LoadError::NotLocal(_))),
            "{url}"
        );
    }
    assert!(matches!(
        Target::parse("https://127.0.0.1/"),
        Err(LoadError::UnsupportedScheme(_))
    ));
    let target = Target::parse("http://[::1]:8080/x?limit=5").unwrap();
    assert_eq!(target.authority(), "[::1]:8080");
    assert_eq!(target.path_and_query(), "/x?limit=5");
}
