//! `herald-bench hostile`: one address holds many connections that stall — sending nothing,
//! half a request head, or a head and a few bytes of a promised body — while a normal client
//! on another address lists documents. It reports the normal client's latency before and during
//! the attack, and how long the server took to close each hostile connection.
//!
//! It runs against a Herald that is already serving (for example `scripts/dev`), from loopback
//! addresses: the hostile connections come from `--source` (127.0.0.2 by default), the normal
//! client from 127.0.0.1.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// What each hostile connection sends before it stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stall {
    /// Nothing at all.
    Idle,
    /// Half a request head.
    Head,
    /// A whole head (with the token) announcing 100 000 bytes of body, then a few of them.
    Body,
    /// One whole request, its answer read, then nothing: an idle keep-alive connection.
    KeepAlive,
    /// An event stream subscription (with the token) whose events are never read.
    Unread,
}

#[derive(Debug, Args)]
pub struct HostileArgs {
    /// The Herald to attack, e.g. `http://127.0.0.1:8080`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A bearer token for the normal client's list requests.
    #[arg(long, env = "TOKEN", hide_env_values = true)]
    pub token: String,
    /// The token the `body` stall authenticates with: another caller's, so the normal
    /// client's rate limit is its own (the normal client's token when not given).
    #[arg(long, env = "HOSTILE_TOKEN", hide_env_values = true)]
    pub hostile_token: Option<String>,
    /// The list the normal client requests.
    #[arg(long, default_value = "/v1/petstore/product?limit=10")]
    pub path: String,
    #[arg(long, value_enum, default_value_t = Stall::Idle)]
    pub stall: Stall,
    /// Hostile connections to open (at most what this process's open-files limit allows).
    #[arg(long, default_value_t = 5_000)]
    pub connections: usize,
    /// The address they come from.
    #[arg(long, default_value = "127.0.0.2")]
    pub source: IpAddr,
    /// Normal requests measured before and during the attack.
    #[arg(long, default_value_t = 60)]
    pub requests: usize,
    /// How long to wait for the server to close every hostile connection.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub wait: Duration,
}

/// A normal request's answer must come within this, or it counts as unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Runs the attack and prints one table.
///
/// # Errors
/// The target is not a loopback `http://host:port`, or the normal client fails before the
/// attack.
pub async fn run(args: HostileArgs) -> anyhow::Result<()> {
    let target = target_addr(&args.url)?;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let wanted = args.connections;
    let usable = usize::try_from(limit.saturating_sub(256)).unwrap_or(usize::MAX);
    let connections = wanted.min(usable);
    if connections < wanted {
        println!(
            "open-files limit {limit}: opening {connections} hostile connections, not {wanted}"
        );
    }
    // A new connection per request: the normal client must get through accept as well.
    let client = reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .pool_max_idle_per_host(0)
        .build()?;
    let probe = format!("{}{}", args.url.trim_end_matches('/'), args.path);
    let before = measure(&client, &probe, &args.token, args.requests).await;
    anyhow::ensure!(
        before.unanswered + before.refused == 0,
        "the normal client is not served before the attack"
    );

    let started = Instant::now();
    let opening = Arc::new(Semaphore::new(256));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut hostile = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (opening, connected) = (Arc::clone(&opening), Arc::clone(&connected));
        let token = args
            .hostile_token
            .clone()
            .unwrap_or_else(|| args.token.clone());
        let (source, stall) = (args.source, args.stall);
        hostile
            .spawn(async move { hold(target, source, stall, &token, &opening, &connected).await });
    }
    // Measure once every hostile connection has been opened (or tried for 30 s).
    let all_opened = Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    while connected.load(Ordering::Relaxed) < connections && Instant::now() < all_opened {
        poll.tick().await;
    }
    let during = measure(&client, &probe, &args.token, args.requests).await;

    let mut opened = 0usize;
    let mut lifetimes = Histogram::<u64>::new(3)?;
    let mut still_open = 0usize;
    let deadline = Instant::now() + args.wait;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, hostile.join_next()).await {
        if let Ok(Some(lived)) = joined {
            opened += 1;
            lifetimes.record(u64::try_from(lived.as_millis()).unwrap_or(u64::MAX))?;
        }
    }
    still_open += hostile.len();
    opened += hostile.len();
    hostile.abort_all();

    println!(
        "| stall | hostile connections opened | closed by the server | longest open | normal p50 / p99 before | normal p50 / p99 during | unanswered / refused during |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:?} | {opened} | {} (still open after {:?}: {still_open}) | {:.1} s | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {} / {} of {} |",
        args.stall,
        lifetimes.len(),
        args.wait,
        lifetimes.max() as f64 / 1000.0,
        before.p50_ms,
        before.p99_ms,
        during.p50_ms,
        during.p99_ms,
        during.unanswered,
        during.refused,
        args.requests
    );
    println!(
        "attack took {:.1} s from the first connection",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn target_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = url::Url::parse(url).context("--url")?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .context("--url must name a loopback IP address and port")?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "only loopback targets are attacked"
    );
    Ok(addr)
}

/// Opens one connection from `source`, sends what `stall` says and waits for the server to
/// close it (an [`Stall::Unread`] one waits until its task is aborted, reading nothing).
/// Returns how long it stayed open (`None` when it could not connect).
pub async fn hold(
    target: SocketAddr,
    source: IpAddr,
    stall: Stall,
    token: &str,
    opening: &Semaphore,
    connected: &AtomicUsize,
) -> Option<Duration> {
    let mut stream = {
        let _permit = opening.acquire().await.ok()?;
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4().ok()?,
            IpAddr::V6(_) => TcpSocket::new_v6().ok()?,
        };
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        if stall == Stall::Unread {
            // A small window, so the server's writes back up at once.
            socket.set_recv_buffer_size(4096).ok()?;
        }
        socket.connect(target).await.ok()?
    };
    let opened = Instant::now();
    let sent = match stall {
        Stall::Idle => String::new(),
        Stall::Head => "GET /v1/petstore/product HTTP/1.1\r\nhost: herald\r\n".to_owned(),
        // Authenticated, so the server reads the body rather than refusing the request first.
        Stall::Body => format!(
            "POST /v1/petstore/product HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"na"
        ),
        Stall::KeepAlive => "GET /healthz HTTP/1.1\r\nhost: herald\r\n\r\n".to_owned(),
        Stall::Unread => format!(
            "GET /v1/petstore/product/events HTTP/1.1\r\nhost: herald\r\n\
             authorization: Bearer {token}\r\naccept: text/event-stream\r\n\r\n"
        ),
    };
    let written = stream.write_all(sent.as_bytes()).await;
    connected.fetch_add(1, Ordering::Relaxed);
    if written.is_err() {
        return Some(opened.elapsed());
    }
    if stall == Stall::Unread {
        std::future::pending::<()>().await;
    }
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return Some(opened.elapsed()),
            Ok(_) => {}
        }
    }
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    /// No answer within [`ANSWER_WITHIN`].
    unanswered: usize,
    /// Answered, but not with a success.
    refused: usize,
}

/// `requests` list requests one after another; those without an answer within
/// [`ANSWER_WITHIN`] count as unanswered (and at that time).
async fn measure(client: &reqwest::Client, url: &str, token: &str, requests: usize) -> Latency {
    let mut histogram = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 digits"));
    let (mut unanswered, mut refused) = (0, 0);
    for _ in 0..requests {
        let start = Instant::now();
        match client.get(url).bearer_auth(token).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(_) => refused += 1,
            Err(_) => unanswered += 1,
        }
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(micros.max(1));
    }
    Latency {
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        unanswered,
        refused,
    }
}
