use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::{ANSWERING, IDLE};
use super::{Cap, Closed, Connection, ConnectionStats, Limits, Table, admit, serve_one};

fn limits() -> Limits {
    Limits {
        head: Duration::from_secs(10),
        body: Duration::from_secs(30),
        idle: Duration::from_secs(60),
        write: Duration::from_secs(20),
        max_connections: 2,
        max_per_address: 2,
        trusted_proxies: Vec::new(),
    }
}

fn connection(clock: Instant) -> Arc<Connection> {
    let table = Mutex::new(Table::default());
    admit(
        &table,
        &limits(),
        &ConnectionStats::default(),
        client(1),
        clock,
    )
    .unwrap()
}

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/big", get(|| async { vec![b'x'; 1 << 20] }))
        .route("/echo", post(|body: bytes::Bytes| async move { body }))
}

/// Serves one connection over an in-memory pipe of `capacity` bytes; returns why it was
/// closed, how long it lived (in paused time) and the client's end.
async fn serve(client_writes: &[u8], capacity: usize) -> (Option<Closed>, Duration, DuplexStream) {
    serve_on(&connection(Instant::now()), client_writes, capacity).await
}

/// As [`serve`], on a connection the test has prepared.
async fn serve_on(
    connection: &Arc<Connection>,
    client_writes: &[u8],
    capacity: usize,
) -> (Option<Closed>, Duration, DuplexStream) {
    let (mut client, server) = tokio::io::duplex(capacity);
    client.write_all(client_writes).await.unwrap();
    let start = Instant::now();
    let remote = SocketAddr::from(([10, 0, 0, 1], 4000));
    let limits = limits();
    let served = serve_one(
        server,
        remote,
        router(),
        connection,
        &limits,
        CancellationToken::new(),
    );
    let closed = tokio::time::timeout(Duration::from_secs(600), served)
        .await
        .unwrap();
    (closed, start.elapsed(), client)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_is_closed_when_its_head_is_late() {
    let (closed, lived, _) = serve(b"", 64).await;
    assert_eq!(closed, Some(Closed::HeadTimeout));
    assert!(
        lived >= Duration::from_secs(10) && lived < Duration::from_secs(11),
        "{lived:?}"
    );
    let (closed, _, _) = serve(b"GET / HTTP/1.1\r\nhost: x\r\n", 64).await;
    assert_eq!(closed, Some(Closed::HeadTimeout), "half a head");
}

#[tokio::test(start_paused = true)]
async fn a_connection_idle_after_its_answer_is_closed_after_the_idle_timeout() {
    let (closed, lived, mut client) = serve(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 4096).await;
    assert_eq!(closed, Some(Closed::IdleTimeout));
    assert!(
        lived >= Duration::from_secs(60) && lived < Duration::from_secs(61),
        "{lived:?}"
    );
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_arrives_is_closed_after_the_body_timeout() {
    let head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789";
    let (closed, lived, _) = serve(head, 4096).await;
    assert_eq!(closed, Some(Closed::BodyTimeout));
    assert!(
        lived >= Duration::from_secs(30) && lived < Duration::from_secs(31),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_the_client_does_not_read_is_closed_after_the_write_timeout() {
    let (closed, lived, _) = serve(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n", 1024).await;
    assert_eq!(closed, Some(Closed::WriteTimeout));
    assert!(
        lived >= Duration::from_secs(20) && lived < Duration::from_secs(21),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_hangs_up_ends_its_connection_without_a_timeout() {
    let (closed, _, _) = serve(
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        4096,
    )
    .await;
    assert_eq!(closed, None);
}

#[tokio::test(start_paused = true)]
async fn a_request_arriving_on_an_evicted_connection_is_refused_before_it_runs() {
    let connection = connection(Instant::now());
    assert!(
        connection.evict(),
        "a connection waiting for its head may be evicted"
    );
    let request = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi";
    let (_, _, mut client) = serve_on(&connection, request, 4096).await;
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        !answer.contains("\r\n\r\nhi"),
        "the request did not run: {answer}"
    );
    connection.enter(ANSWERING);
    assert!(
        !connection.evict(),
        "a connection serving a request is never evicted"
    );
}

#[test]
fn at_a_cap_the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
    let (table, stats, clock) = (
        Mutex::new(Table::default()),
        ConnectionStats::default(),
        Instant::now(),
    );
    let limits = limits();
    let first = admit(&table, &limits, &stats, client(1), clock).unwrap();
    let second = admit(&table, &limits, &stats, client(1), clock).unwrap();
    let third = admit(&table, &limits, &stats, client(1), clock).unwrap();
    assert!(
        first.evict.is_cancelled(),
        "the oldest idle one from that address made room"
    );
    assert!(!second.evict.is_cancelled());
    assert_eq!(stats.evicted(Cap::PerAddress), 1);
    second.enter(ANSWERING);
    third.enter(ANSWERING);
    assert!(
        admit(&table, &limits, &stats, client(1), clock).is_none(),
        "both are busy"
    );
    assert_eq!(stats.refused(Cap::PerAddress), 1);
    assert!(
        admit(&table, &limits, &stats, client(2), clock).is_none(),
        "the total cap too"
    );
    assert_eq!(stats.refused(Cap::Total), 1);
    third.enter(IDLE);
    let other = admit(&table, &limits, &stats, client(2), clock);
    assert!(
        other.is_some() && third.evict.is_cancelled(),
        "an idle one makes room again"
    );
    assert_eq!(stats.evicted(Cap::Total), 1);
}
