//! Hostile connections on a real server: clients that send nothing, half a head or half a body
//! are closed by the matching timeout; at a connection cap the oldest idle connection makes room,
//! and a client over a cap whose connections are all busy gets `503` and a closed connection;
//! the listen backlog follows its setting. Other clients are served throughout.

use std::net::{Ipv4Addr, SocketAddr};

use herald_bus::settings::Settings;
use herald_tests::{DEADLINE, Options, TestApp, eventually, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(app: &TestApp) -> SocketAddr {
    app.addr
        .unwrap_or_else(|| panic!("the test app serves HTTP"))
}

/// A connection to the app from `source` (a loopback address of the test's choosing).
async fn connect_from(app: &TestApp, source: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket
        .bind(SocketAddr::from((source, 0)))
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    socket
        .connect(addr(app))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn connect(app: &TestApp) -> TcpStream {
    connect_from(app, Ipv4Addr::LOCALHOST).await
}

/// Reads until the server closes the connection (or resets it) and returns what it sent;
/// fails the test when it stays open past the deadline.
async fn closed_by_server(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

/// A counter of `/metrics` (`name` with its labels, e.g. `http_connections_closed_total{reason="head_timeout"}`).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .as_admin("ada")
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap_or_default();
    let line = format!("herald_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
}

async fn metric_reaches(app: &TestApp, name: &str, expected: f64) {
    eventually(&format!("{name} to reach {expected}"), || async {
        (metric(app, name).await == expected).then_some(())
    })
    .await;
}

/// A normal client is served.
async fn served(app: &TestApp) {
    let health = app.anonymous().get("/healthz").await;
    assert_eq!(health.status(), 200);
}

fn short_timeouts(settings: &mut Settings) {
    settings.http.head_timeout_ms = 400;
    settings.http.body_timeout_ms = 400;
    settings.http.idle_timeout_ms = 800;
}

#[tokio::test]
async fn clients_that_stall_are_closed_by_the_matching_timeout() {
    let app = TestApp::spawn_with(Options {
        configure: short_timeouts,
        ..herald_tests::petstore()
    })
    .await;
    let token = app.as_staff("sam").token().unwrap_or_default().to_owned();

    let mut silent = connect(&app).await;
    let mut half_head = connect(&app).await;
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: herald\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: herald\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut half_body = connect(&app).await;
    let head = format!(
        "POST /v1/petstore/product HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\": \"Ki"
    );
    half_body
        .write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(closed_by_server(&mut silent).await, "");
    assert_eq!(closed_by_server(&mut half_head).await, "");
    let answered = closed_by_server(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(
        closed_by_server(&mut half_body).await,
        "",
        "nothing is answered to half a body"
    );
    metric_reaches(
        &app,
        r#"http_connections_closed_total{reason="head_timeout"}"#,
        2.0,
    )
    .await;
    metric_reaches(
        &app,
        r#"http_connections_closed_total{reason="idle_timeout"}"#,
        1.0,
    )
    .await;
    metric_reaches(
        &app,
        r#"http_connections_closed_total{reason="body_timeout"}"#,
        1.0,
    )
    .await;
    let products = json(app.as_staff("sam").get("/v1/petstore/product").await).await;
    assert_eq!(
        products["data"].as_array().map(Vec::len),
        Some(0),
        "half a body created nothing"
    );
    served(&app).await;
    app.stop_and_clean().await;
}

fn short_writes(settings: &mut Settings) {
    settings.http.write_timeout_ms = 500;
}

#[tokio::test]
async fn an_answer_the_client_does_not_read_is_closed_after_the_write_timeout() {
    let app = TestApp::spawn_with(Options {
        configure: short_writes,
        ..herald_tests::petstore()
    })
    .await;
    // Requests sent back to back whose answers are never read: once the socket buffers on both
    // sides are full (a few MB on loopback), the server's writes wait on the client.
    let mut stream = connect(&app).await;
    let requests = "GET /v1/openapi.json HTTP/1.1\r\nhost: herald\r\n\r\n".repeat(300);
    stream
        .write_all(requests.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    metric_reaches(
        &app,
        r#"http_connections_closed_total{reason="write_timeout"}"#,
        1.0,
    )
    .await;
    let received = closed_by_server(&mut stream).await;
    let start: String = received.chars().take(200).collect();
    assert!(received.starts_with("HTTP/1.1 200"), "{start}");
    served(&app).await;
    app.stop_and_clean().await;
}

fn small_caps(settings: &mut Settings) {
    settings.http.max_connections = 6;
    settings.http.max_connections_per_address = 3;
}

#[tokio::test]
async fn at_a_cap_the_oldest_idle_connection_makes_room() {
    let app = TestApp::spawn_with(Options {
        configure: small_caps,
        ..herald_tests::petstore()
    })
    .await;
    let (two, three) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let mut from_two = Vec::new();
    for _ in 0..3 {
        from_two.push(connect_from(&app, two).await);
    }
    let _fourth = connect_from(&app, two).await;
    assert_eq!(
        closed_by_server(&mut from_two[0]).await,
        "",
        "the oldest idle connection of that address made room"
    );
    metric_reaches(
        &app,
        r#"http_connections_evicted_total{cap="per_address"}"#,
        1.0,
    )
    .await;

    let mut from_three = Vec::new();
    for _ in 0..3 {
        from_three.push(connect_from(&app, three).await);
    }
    served(&app).await;
    assert_eq!(
        closed_by_server(&mut from_two[1]).await,
        "",
        "at the total cap, the oldest idle connection of all made room"
    );
    assert!(metric(&app, r#"http_connections_evicted_total{cap="total"}"#).await >= 1.0);
    app.stop_and_clean().await;
}

fn two_per_address(settings: &mut Settings) {
    settings.http.max_connections_per_address = 2;
}

#[tokio::test]
async fn a_client_whose_connections_are_all_busy_is_told_to_retry() {
    let app = TestApp::spawn_with(Options {
        configure: two_per_address,
        ..herald_tests::petstore()
    })
    .await;
    let token = app.as_staff("sam").token().unwrap_or_default().to_owned();
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let subscribe = format!(
        "GET /v1/events HTTP/1.1\r\nhost: herald\r\naccept: text/event-stream\r\n\
         authorization: Bearer {token}\r\n\r\n"
    );
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from(&app, two).await;
        stream
            .write_all(subscribe.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&head, b"HTTP/1.1 200");
        streams.push(stream);
    }

    let mut refused = connect_from(&app, two).await;
    let answer = closed_by_server(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    metric_reaches(
        &app,
        r#"http_connections_refused_total{cap="per_address"}"#,
        1.0,
    )
    .await;
    served(&app).await;
    drop(streams);
    app.stop_and_clean().await;
}

/// The backlog `ss` reports for the app's listening socket.
fn listen_backlog(app: &TestApp) -> u32 {
    let port = addr(app).port();
    let output = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .unwrap_or_else(|e| panic!("ss (iproute2) reads the backlog: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|column| column.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port}: {text}"))
}

fn backlog_of_100(settings: &mut Settings) {
    settings.http.backlog = 100;
}

#[tokio::test]
async fn the_listen_backlog_is_the_system_maximum_unless_set() {
    let system: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096);
    let by_default = herald_tests::spawn_petstore().await;
    assert_eq!(listen_backlog(&by_default), system);
    by_default.stop_and_clean().await;
    let set = TestApp::spawn_with(Options {
        configure: backlog_of_100,
        ..herald_tests::petstore()
    })
    .await;
    assert_eq!(listen_backlog(&set), 100);
    set.stop_and_clean().await;
}
