//! The HTTP listener: it accepts connections under two caps and closes the ones that stall, so
//! no client can hold Herald's sockets or open files away from the others.
//!
//! - **Timeouts.** A connection has a phase, kept in atomics by its socket reads, its request
//!   and response bodies: waiting for a request head (from its opening, or from the first
//!   byte after an idle spell), idle between requests, receiving a body, answering. Each phase
//!   but answering has a deadline (`head_timeout_ms`, `idle_timeout_ms`, `body_timeout_ms`); a
//!   write the client does not read for `write_timeout_ms` also ends it. The connection's task
//!   re-reads its deadline whenever it is woken, so no timer is reset per byte.
//! - **Caps.** `max_connections` in all and `max_connections_per_address` per client address
//!   (addresses in `trusted_proxies` carry many clients and are not capped). At a cap the
//!   oldest connection that is not serving a request is closed to make room; when every one is
//!   busy the new client gets `503` with `Retry-After` and a closed connection.
//! - **The backlog** of the listening socket comes from `backlog` (the system's maximum by
//!   default).
//!
//! Connections speak HTTP/1.1. What each cap and timeout did is counted for `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use herald_bus::settings::HttpSettings;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Open files kept for Postgres, NATS and files when the cap is derived from the limit.
const HEADROOM: u64 = 256;

/// The timeouts and caps, from `http` settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub head: Duration,
    pub body: Duration,
    pub idle: Duration,
    pub write: Duration,
    pub max_connections: usize,
    pub max_per_address: usize,
    pub trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    /// The limits `settings` give; a `max_connections` of 0 is the open-files limit less
    /// headroom for everything else the process opens.
    pub fn from_settings(settings: &HttpSettings, open_files: u64) -> Self {
        let derived = open_files
            .saturating_sub(HEADROOM.max(open_files / 10))
            .max(16);
        Self {
            head: Duration::from_millis(settings.head_timeout_ms),
            body: Duration::from_millis(settings.body_timeout_ms),
            idle: Duration::from_millis(settings.idle_timeout_ms),
            write: Duration::from_millis(settings.write_timeout_ms),
            max_connections: match settings.max_connections {
                0 => usize::try_from(derived).unwrap_or(usize::MAX),
                cap => cap,
            },
            max_per_address: match settings.max_connections_per_address {
                0 => usize::MAX,
                cap => cap,
            },
            trusted_proxies: settings.trusted_proxies.clone(),
        }
    }
}

/// The soft open-files limit of this process (the limit the caps are derived from).
pub fn open_files_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Binds `addr` with a listen backlog of `backlog`, or the system's maximum when 0.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = match backlog {
        0 => system_backlog(),
        chosen => chosen,
    };
    tracing::debug!(backlog, "listen backlog");
    socket.listen(backlog)
}

/// The kernel's cap on listen backlogs (`net.core.somaxconn`), 4096 where it cannot be read.
fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096)
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    HeadTimeout,
    BodyTimeout,
    IdleTimeout,
    WriteTimeout,
}

/// Which cap turned a connection away or made room for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Total,
    PerAddress,
}

/// What the listener did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    closed: [AtomicU64; 4],
    evicted: [AtomicU64; 2],
    refused: [AtomicU64; 2],
}

impl ConnectionStats {
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn closed(&self, reason: Closed) -> u64 {
        self.closed[reason as usize].load(Ordering::Relaxed)
    }

    pub fn evicted(&self, cap: Cap) -> u64 {
        self.evicted[cap as usize].load(Ordering::Relaxed)
    }

    pub fn refused(&self, cap: Cap) -> u64 {
        self.refused[cap as usize].load(Ordering::Relaxed)
    }
}

impl Closed {
    pub const ALL: [Closed; 4] = [
        Closed::HeadTimeout,
        Closed::BodyTimeout,
        Closed::IdleTimeout,
        Closed::WriteTimeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Closed::HeadTimeout => "head_timeout",
            Closed::BodyTimeout => "body_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
        }
    }
}

impl Cap {
    pub const ALL: [Cap; 2] = [Cap::Total, Cap::PerAddress];

    pub fn label(self) -> &'static str {
        match self {
            Cap::Total => "total",
            Cap::PerAddress => "per_address",
        }
    }
}

/// Where a connection is in its life; the deadline that applies follows from it.
const WAITING: u8 = 0; // for a request head: nothing read yet, or part of one
const IDLE: u8 = 1; // between requests
const RECEIVING: u8 = 2; // a request whose body has not all arrived
const ANSWERING: u8 = 3; // the request is read; its answer is being made or sent
const EVICTED: u8 = 4; // closed to make room: it takes no further request

/// One open connection, as its task and the listener see it.
struct Connection {
    id: u64,
    address: IpAddr,
    /// When its deadline started: opened, idle since, head started, body started (in
    /// milliseconds since the listener started).
    since: AtomicU64,
    phase: AtomicU8,
    /// Since when a write has waited on the client (0: no write is waiting).
    write_blocked: AtomicU64,
    /// Cancelled when the listener closes it to make room.
    evict: CancellationToken,
    clock: Instant,
}

impl Connection {
    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves from `from` (any phase but evicted when `None`) to `to`, and starts its deadline;
    /// false when it was not in `from`.
    fn advance(&self, from: Option<u8>, to: u8) -> bool {
        let moved = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |phase| {
                let left = from.map_or(phase != EVICTED, |from| phase == from);
                left.then_some(to)
            })
            .is_ok();
        if moved {
            self.since.store(self.now(), Ordering::Relaxed);
        }
        moved
    }

    fn enter(&self, phase: u8) {
        self.advance(None, phase);
    }

    /// A request starts, unless the connection was evicted meanwhile.
    fn enter_request(&self, phase: u8) -> bool {
        self.advance(Some(WAITING), phase) || self.advance(Some(IDLE), phase)
    }

    /// Bytes arrived: between requests, they start the next head and its deadline.
    fn read_some(&self) {
        self.advance(Some(IDLE), WAITING);
    }

    /// Takes it out of service if it serves no request and owes its client no bytes: a request
    /// that starts later finds it evicted and is refused before anything runs.
    fn evict(&self) -> bool {
        if self.write_blocked.load(Ordering::Acquire) != 0 {
            return false;
        }
        self.advance(Some(WAITING), EVICTED) || self.advance(Some(IDLE), EVICTED)
    }

    /// The earliest moment it may be closed, and why (in listener milliseconds).
    fn deadline(&self, limits: &Limits) -> Option<(u64, Closed)> {
        let since = self.since.load(Ordering::Relaxed);
        let after = |timeout: Duration| {
            since.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
        };
        let phase = match self.phase.load(Ordering::Relaxed) {
            WAITING => Some((after(limits.head), Closed::HeadTimeout)),
            IDLE => Some((after(limits.idle), Closed::IdleTimeout)),
            RECEIVING => Some((after(limits.body), Closed::BodyTimeout)),
            _ => None,
        };
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        let write = (blocked > 0).then(|| {
            let write = u64::try_from(limits.write.as_millis()).unwrap_or(u64::MAX);
            (blocked.saturating_add(write), Closed::WriteTimeout)
        });
        match (phase, write) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// Every open connection, oldest first, with the counts the caps check.
#[derive(Default)]
struct Table {
    next_id: u64,
    all: BTreeMap<u64, Arc<Connection>>,
    per_address: HashMap<IpAddr, usize>,
}

/// Accepts connections and serves each with `router` until `shutdown`; returns once every
/// connection has ended (requests in flight finish first).
pub struct Listener {
    pub listener: TcpListener,
    pub limits: Limits,
    pub stats: Arc<ConnectionStats>,
}

impl Listener {
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        let clock = Instant::now();
        let table = Arc::new(Mutex::new(Table::default()));
        let tasks = TaskTracker::new();
        let limits = Arc::new(self.limits);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or the like: the caps keep this rare; wait a
                    // moment rather than spin on an accept that fails again at once.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let address = remote.ip();
            let admitted = admit(&table, &limits, &self.stats, address, clock);
            let Some(connection) = admitted else {
                refuse(&stream);
                continue;
            };
            drop(stream.set_nodelay(true));
            let (router, limits, stats, table) = (
                router.clone(),
                Arc::clone(&limits),
                Arc::clone(&self.stats),
                Arc::clone(&table),
            );
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                stats.open.fetch_add(1, Ordering::Relaxed);
                let closed =
                    serve_one(stream, remote, router, &connection, &limits, shutdown).await;
                if let Some(reason) = closed {
                    stats.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
                }
                stats.open.fetch_sub(1, Ordering::Relaxed);
                release(&table, &connection);
            });
        }
        tasks.close();
        tasks.wait().await;
    }
}

/// Finds room for a connection from `address`: under both caps, or by evicting the oldest
/// idle connection that holds the cap reached. `None` when every such connection is busy.
fn admit(
    table: &Mutex<Table>,
    limits: &Limits,
    stats: &ConnectionStats,
    address: IpAddr,
    clock: Instant,
) -> Option<Arc<Connection>> {
    let mut table = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let capped = !limits.trusted_proxies.contains(&address);
    let from_address = table.per_address.get(&address).copied().unwrap_or(0);
    let full = if capped && from_address >= limits.max_per_address {
        Some(Cap::PerAddress)
    } else if table.all.len() >= limits.max_connections {
        Some(Cap::Total)
    } else {
        None
    };
    if let Some(cap) = full {
        let oldest_idle = table
            .all
            .values()
            .find(|c| (cap == Cap::Total || c.address == address) && c.evict())
            .cloned();
        let Some(oldest) = oldest_idle else {
            stats.refused[cap as usize].fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // It leaves the table now, so the room is this connection's; its task closes it.
        forget(&mut table, &oldest);
        oldest.evict.cancel();
        stats.evicted[cap as usize].fetch_add(1, Ordering::Relaxed);
    }
    table.next_id += 1;
    let connection = Arc::new(Connection {
        id: table.next_id,
        address,
        since: AtomicU64::new(0),
        phase: AtomicU8::new(WAITING),
        write_blocked: AtomicU64::new(0),
        evict: CancellationToken::new(),
        clock,
    });
    connection.enter(WAITING);
    table.all.insert(connection.id, Arc::clone(&connection));
    *table.per_address.entry(address).or_default() += 1;
    Some(connection)
}

fn forget(table: &mut Table, connection: &Connection) {
    if table.all.remove(&connection.id).is_some()
        && let Some(count) = table.per_address.get_mut(&connection.address)
    {
        *count -= 1;
        if *count == 0 {
            table.per_address.remove(&connection.address);
        }
    }
}

fn release(table: &Mutex<Table>, connection: &Connection) {
    let mut table = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    forget(&mut table, connection);
}

/// Tells a client over a cap to come back, if its socket takes the answer at once, and closes.
fn refuse(stream: &TcpStream) {
    const BODY: &str = r#"{"code":"unavailable","detail":"too many connections; retry shortly","status":503,"title":"Service unavailable","type":"https://herald.dev/problems/unavailable"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    drop(stream.try_write(answer.as_bytes()));
}

/// The answer to a request that arrives on a connection evicted a moment before: nothing of
/// it ran, so the client may send it again.
fn evicted() -> hyper::Response<ResponseBody> {
    let mut response =
        axum::response::IntoResponse::into_response(crate::error::ApiError::Unavailable(
            "the connection was closed to make room; retry on a new one".into(),
        ));
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response.map(|body| ResponseBody {
        inner: body,
        connection: None,
        done: true,
    })
}

/// Serves one connection until it ends, is evicted, or a deadline passes (then the reason).
async fn serve_one<S>(
    stream: S,
    remote: SocketAddr,
    router: Router,
    connection: &Arc<Connection>,
    limits: &Limits,
    shutdown: CancellationToken,
) -> Option<Closed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        inner: stream,
        connection: Arc::clone(connection),
    });
    let for_requests = Arc::clone(connection);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let connection = Arc::clone(&for_requests);
        let router = router.clone();
        async move {
            let (parts, incoming) = request.into_parts();
            let receiving = !incoming.is_end_stream();
            if !connection.enter_request(if receiving { RECEIVING } else { ANSWERING }) {
                return Ok(evicted());
            }
            let mut request = hyper::Request::from_parts(
                parts,
                Body::new(RequestBody {
                    incoming: Some(incoming),
                    connection: Arc::clone(&connection),
                }),
            );
            request.extensions_mut().insert(ConnectInfo(remote));
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| ResponseBody {
                inner: body,
                connection: Some(connection),
                done: false,
            }))
        }
    });
    // The deadlines are this module's, so hyper keeps no timer of its own.
    let serving = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service);
    Policed {
        serving: Box::pin(serving),
        connection: Arc::clone(connection),
        limits: limits.clone(),
        sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        armed: None,
        evicted: Box::pin(connection.evict.clone().cancelled_owned()),
        shutdown: Box::pin(shutdown.cancelled_owned()),
        draining: false,
    }
    .await
}

/// A connection's serving future with its deadlines and eviction.
struct Policed<S> {
    serving: Pin<Box<S>>,
    connection: Arc<Connection>,
    limits: Limits,
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set to.
    armed: Option<u64>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    draining: bool,
}

type Serving<I, S> = hyper::server::conn::http1::Connection<I, S>;

impl<I, S, B> Future for Policed<Serving<I, S>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: HttpBody + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Option<Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Closed>> {
        let this = &mut *self;
        if this.serving.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if this.evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if !this.draining && this.shutdown.as_mut().poll(cx).is_ready() {
            this.draining = true;
            this.serving.as_mut().graceful_shutdown();
            if this.serving.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        // Serving moved the phase along; the deadline follows from where it is now.
        let Some((deadline, reason)) = this.connection.deadline(&this.limits) else {
            this.armed = None;
            return Poll::Pending;
        };
        if this.connection.now() >= deadline {
            return Poll::Ready(Some(reason));
        }
        if this.armed != Some(deadline) {
            let at = this.connection.clock + Duration::from_millis(deadline);
            this.sleep.as_mut().reset(at);
            this.armed = Some(deadline);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            // Woken at the deadline: check again, as serving may have moved on since.
            this.armed = None;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// The socket, noting when bytes arrive and when a write waits on the client.
struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.read_some();
        }
        polled
    }
}

impl<S> Watched<S> {
    fn note_write<T>(&self, polled: &Poll<T>) {
        let blocked = &self.connection.write_blocked;
        match polled {
            Poll::Pending if blocked.load(Ordering::Relaxed) == 0 => {
                blocked.store(self.connection.now().max(1), Ordering::Relaxed);
            }
            Poll::Ready(_) => blocked.store(0, Ordering::Relaxed),
            Poll::Pending => {}
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that moves its connection to answering once it has all arrived (or the
/// handler let it go).
struct RequestBody {
    incoming: Option<Incoming>,
    connection: Arc<Connection>,
}

impl RequestBody {
    fn received(&mut self) {
        if self.incoming.take().is_some() {
            self.connection.advance(Some(RECEIVING), ANSWERING);
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(incoming).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.incoming.as_ref().is_some_and(HttpBody::is_end_stream),
            Poll::Pending => false,
        };
        if ended {
            self.received();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.received();
    }
}

/// A response body that makes its connection idle once it has been sent (or dropped).
struct ResponseBody {
    inner: Body,
    connection: Option<Arc<Connection>>,
    done: bool,
}

impl ResponseBody {
    fn finished(&mut self) {
        if !self.done {
            self.done = true;
            if let Some(connection) = &self.connection {
                connection.enter(IDLE);
            }
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finished();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::{Cap, Closed, Connection, ConnectionStats, IDLE, Limits, Table, admit, serve_one};

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
    async fn serve(
        client_writes: &[u8],
        capacity: usize,
    ) -> (Option<Closed>, Duration, DuplexStream) {
        let (mut client, server) = tokio::io::duplex(capacity);
        client.write_all(client_writes).await.unwrap();
        let start = Instant::now();
        let connection = connection(start);
        let remote = SocketAddr::from(([10, 0, 0, 1], 4000));
        let limits = limits();
        let served = serve_one(
            server,
            remote,
            router(),
            &connection,
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
        let (mut client, server) = tokio::io::duplex(4096);
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let connection = connection(Instant::now());
        let remote = SocketAddr::from(([10, 0, 0, 1], 4000));
        let limits = limits();
        let closed = serve_one(
            server,
            remote,
            router(),
            &connection,
            &limits,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(closed, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_arriving_on_an_evicted_connection_is_refused_before_it_runs() {
        let (mut client, server) = tokio::io::duplex(4096);
        client
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let connection = connection(Instant::now());
        assert!(
            connection.evict(),
            "a connection waiting for its head may be evicted"
        );
        let remote = SocketAddr::from(([10, 0, 0, 1], 4000));
        let limits = limits();
        let served = serve_one(
            server,
            remote,
            router(),
            &connection,
            &limits,
            CancellationToken::new(),
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), served).await;
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(
            !answer.contains("\r\n\r\nhi"),
            "the request did not run: {answer}"
        );
        connection.enter(super::ANSWERING);
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
        second.enter(super::ANSWERING);
        third.enter(super::ANSWERING);
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
}
