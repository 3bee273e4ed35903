//! Hostile clients: from one address, idle keep-alive connections, clients sending a request
//! head or body a little at a time, and event-stream subscribers that never read, all held at
//! once while a normal client on another address creates products. Its p99 must stay within
//! twice its unloaded value, and the api's memory bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use herald_bench::hostile::{Stall, hold};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::Scenario;
use crate::run::{Ctx, ONE_PROCESS, finish, rss};
use crate::table::Row;
use crate::writes::Writers;

/// The hostile connections of each kind.
const HOSTILE: [(Stall, usize); 4] = [
    (Stall::KeepAlive, 2_000),
    (Stall::Head, 100),
    (Stall::Body, 100),
    (Stall::Unread, 100),
];
/// The address the hostile connections come from.
const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The normal clients.
const CLIENTS: usize = 2;
/// The most memory each hostile connection may cost the api.
const MEMORY_PER_CONNECTION: u64 = 64 * 1024;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let window = ctx.pick(Duration::from_secs(8), Duration::from_secs(30));
    let world = ctx.world("hostile", ONE_PROCESS, &[]).await?;
    let addr = *world.api_addrs().first().context("no api")?;
    let pid = world.pids().first().copied();
    let token = world.token()?;

    let unloaded = Writers::start(vec![addr], token.clone(), CLIENTS, None)?;
    tokio::time::sleep(window).await;
    let unloaded = unloaded.stop().await?;
    let idle_rss = rss(pid);

    let opening = Arc::new(Semaphore::new(256));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut hostile = JoinSet::new();
    let total: usize = HOSTILE.iter().map(|(_, n)| n).sum();
    for (stall, count) in HOSTILE {
        for _ in 0..count {
            let (opening, connected, token) = (opening.clone(), connected.clone(), token.clone());
            hostile.spawn(
                async move { hold(addr, SOURCE, stall, &token, &opening, &connected).await },
            );
        }
    }
    let all_opened = Instant::now() + Duration::from_secs(30);
    while connected.load(Ordering::Relaxed) < total && Instant::now() < all_opened {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = connected.load(Ordering::Relaxed);

    let writers = Writers::start(vec![addr], token, CLIENTS, None)?;
    let started = Instant::now();
    let (_, samples) = herald_bench::rss::with_rss(
        pid.unwrap_or(0),
        Duration::from_millis(250),
        tokio::time::sleep(window),
    )
    .await?;
    let still_held = hostile.len();
    hostile.abort_all();
    let (mut row, during) = finish(
        &world,
        writers,
        started,
        Row::new("H", Scenario::Hostile.title()),
    )
    .await?;
    let (before_p99, during_p99) = (unloaded.p99_ms(), during.p99_ms());
    row.expect(
        opened == total,
        format!("{opened} hostile connections held ({still_held} still open at the end)"),
    );
    row.expect(
        during_p99 <= 2.0 * before_p99,
        format!("normal p99 {before_p99:.1} ms unloaded, {during_p99:.1} ms during"),
    );
    let peak = samples.into_iter().max().unwrap_or(0);
    let growth = peak.saturating_sub(idle_rss);
    row.expect(
        growth <= MEMORY_PER_CONNECTION * total as u64,
        format!(
            "api memory {} → {} MiB ({:.1} KiB per hostile connection)",
            idle_rss >> 20,
            peak >> 20,
            growth as f64 / 1024.0 / total as f64
        ),
    );
    row.expect(
        during.failed_fast + during.failed_otherwise == 0,
        format!(
            "normal client failures during: {}",
            during.failed_fast + during.failed_otherwise
        ),
    );
    world.tear_down(!row.passed()).await?;
    Ok(row)
}
