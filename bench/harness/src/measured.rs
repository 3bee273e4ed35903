//! One load run against a server, with the CPU each component spent over its window, and
//! the row that compares Herald's run with the baseline's.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use herald_load::{LoadConfig, Mode, Report, RequestSource, Target, run_load};

use crate::context::{Bench, Scale, say};
use crate::cpu::Usage;
use crate::database::settle;
use crate::table::{self, Peer, Row, Verdict, throughput};

/// The processes that serve a request to Herald, and to the baseline.
const HERALD_PARTS: [&str; 3] = ["herald", "postgres", "nats"];
const BASELINE_PARTS: [&str; 2] = ["baseline", "postgres"];
const PEER_PARTS: [&str; 2] = ["fastapi", "postgres"];

/// A load run's report with the CPU each component spent on it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Measured {
    pub(crate) report: Report,
    pub(crate) cpu: Usage,
}

impl std::ops::Deref for Measured {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

/// One load run against `addr`; the warm-up is skipped where every request must count.
pub(crate) async fn load(
    addr: SocketAddr,
    source: impl RequestSource,
    mode: Mode,
    scale: &Scale,
    warm_up: bool,
) -> anyhow::Result<Measured> {
    settle(&scale.database_url).await?;
    let warmup = if warm_up {
        scale.warmup
    } else {
        Duration::ZERO
    };
    let config = LoadConfig {
        target: Target::parse(&format!("http://{addr}/"))?,
        mode,
        warmup,
        duration: scale.window,
    };
    // CPU is read over the measured window only, like every other figure.
    let components = scale.cpu.clone();
    let first = tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        components.read()
    });
    let report = run_load(&config, std::sync::Arc::new(source)).await?;
    let last = scale.cpu.read();
    let first = first.await.context("the CPU reader failed")?;
    let cpu = first.usage_until(&last, report.total.count);
    say(&format!("  {}", report.summary_line()));
    Ok(Measured { report, cpu })
}

/// Runs one workload on Herald, then the same on the baseline: closed loop, after a warm-up.
pub(crate) async fn load_both(
    bench: &Bench<'_>,
    herald: impl RequestSource,
    direct: impl RequestSource,
) -> anyhow::Result<(Measured, Measured)> {
    let servers = bench.servers;
    let herald = load(servers.herald_addr, herald, bench.closed, bench.scale, true).await?;
    let direct = load(
        servers.baseline_addr,
        direct,
        bench.closed,
        bench.scale,
        true,
    )
    .await?;
    Ok((herald, direct))
}

/// Runs a workload on the FastAPI peer too, when the run has it: closed loop, after a warm-up.
pub(crate) async fn load_peer(
    bench: &Bench<'_>,
    source: impl RequestSource,
) -> anyhow::Result<Option<Measured>> {
    match &bench.servers.peer {
        Some((_, addr)) => Ok(Some(
            load(*addr, source, bench.closed, bench.scale, true).await?,
        )),
        None => Ok(None),
    }
}

/// The peer's figures beside Herald's in one row: its throughput and CPU per request, and
/// Herald's throughput as a multiple of its.
pub(crate) fn peer_figures(herald: &Measured, peer: Option<&Measured>) -> Option<Peer> {
    let peer = peer?;
    Some(Peer {
        figures: format!(
            "{}; {:.2} ms CPU/req",
            throughput(peer),
            peer.cpu.ms_of(&PEER_PARTS)
        ),
        ratio: ratio(herald, peer),
    })
}

pub(crate) fn ratio(herald: &Report, direct: &Report) -> f64 {
    herald.total.requests_per_sec / direct.total.requests_per_sec.max(f64::MIN_POSITIVE)
}

/// A row comparing throughput with the baseline's: passes at `target` × the baseline with
/// no failed request. Each side shows the CPU one request cost its server, Postgres and NATS.
pub(crate) fn compare(
    id: &'static str,
    workload: &str,
    herald: &Measured,
    direct: &Measured,
    target: f64,
) -> Row {
    let ratio = ratio(herald, direct);
    Row {
        id,
        workload: workload.to_owned(),
        herald: format!(
            "{}; {:.2} ms CPU/req",
            throughput(herald),
            herald.cpu.ms_of(&HERALD_PARTS)
        ),
        baseline: format!(
            "{}; {:.2} ms CPU/req",
            throughput(direct),
            direct.cpu.ms_of(&BASELINE_PARTS)
        ),
        ratio: Some(ratio),
        target: format!("≥ {target:.2} × baseline"),
        verdict: Verdict::of(ratio >= target && table::failures(&herald.total) == 0),
    }
}
