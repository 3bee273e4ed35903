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

mod connection;
mod serve;
mod stats;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use herald_bus::settings::HttpSettings;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use connection::{Connection, WAITING};
use serve::serve_one;
pub use stats::{Cap, Closed, ConnectionStats};

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
