//! W8: each server's resident memory, idle and at its peak under W1, and Herald's growth
//! over the optional soak; readings are taken beside the work, from `/proc`.

use std::time::Duration;

use anyhow::Context;
use herald_load::{LoadConfig, Mode, Target, run_load};
use serde_json::{Value, json};

use crate::context::{Bench, Results, say};
use crate::rss::with_rss;
use crate::setup::rss_bytes;
use crate::sources::Create;
use crate::table::{Row, Verdict, megabytes, thousands, throughput};
use crate::writes::Creates;

/// Each server's memory before the first workload, when it could be read.
pub(crate) struct Idle {
    herald: Option<u64>,
    baseline: Option<u64>,
}

impl Idle {
    pub(crate) fn read(herald_pid: u32, baseline_pid: u32) -> Self {
        Self {
            herald: rss_bytes(herald_pid),
            baseline: rss_bytes(baseline_pid),
        }
    }
}

/// W8's row: idle and peak memory of both servers; Herald passes within 150 MB under load.
pub(crate) fn report_memory(idle: &Idle, creates: &Creates, results: &mut Results) {
    let idle_text = |rss: Option<u64>| rss.map_or_else(|| "?".to_owned(), megabytes);
    let (herald_peak, baseline_peak) = (creates.herald_peak, creates.baseline_peak);
    results.push(Row {
        id: "W8",
        workload: "memory (RSS): idle / peak under W1".into(),
        herald: format!("{} / {}", idle_text(idle.herald), megabytes(herald_peak)),
        baseline: format!(
            "{} / {}",
            idle_text(idle.baseline),
            megabytes(baseline_peak)
        ),
        ratio: None,
        target: "≤ 150 MB under load".into(),
        verdict: Verdict::of(herald_peak > 0 && herald_peak <= 150 * 1_048_576),
    });
    results.record(
        "w8",
        json!({"herald": {"idle": idle.herald, "peak_w1": herald_peak}, "direct": {"idle": idle.baseline, "peak_w1": baseline_peak}}),
    );
}

/// W8's soak, when asked for: creates at `rate` for `length`.
pub(crate) async fn measure_soak(
    bench: &Bench<'_>,
    rate: f64,
    length: Duration,
    results: &mut Results,
) -> anyhow::Result<()> {
    say(&format!(
        "W8: soak for {}",
        humantime::format_duration(length)
    ));
    let (row, raw) = soak_run(bench, rate, length).await?;
    results.push(row);
    results.record("w8_soak", raw);
    Ok(())
}

/// Creates at `rate` for `length`, reading Herald's memory every second; growth is measured
/// from the end of the first tenth (allocator and caches warmed) to the end.
async fn soak_run(bench: &Bench<'_>, rate: f64, length: Duration) -> anyhow::Result<(Row, Value)> {
    let servers = bench.servers;
    let pid = servers.herald.pid().context("Herald has exited")?;
    let config = LoadConfig {
        target: Target::parse(&format!("http://{}/", servers.herald_addr))?,
        mode: Mode::Open {
            rate,
            max_connections: bench.scale.connections,
        },
        warmup: Duration::ZERO,
        duration: length,
    };
    let source = Create::new(bench.herald_writes.clone(), "soak");
    let (report, samples) = with_rss(
        pid,
        Duration::from_secs(1),
        run_load(&config, std::sync::Arc::new(source)),
    )
    .await?;
    let report = report?;
    let settled = samples.get(samples.len() / 10).copied().unwrap_or(0);
    let end = samples.last().copied().unwrap_or(0);
    let growth = if settled == 0 {
        f64::INFINITY
    } else {
        (end as f64 - settled as f64) / settled as f64 * 100.0
    };
    let row = Row {
        id: "W8",
        workload: format!(
            "memory (RSS) over a {} soak at {} req/s",
            humantime::format_duration(length),
            thousands(rate)
        ),
        herald: format!(
            "{} → {} ({growth:+.1} %); {}",
            megabytes(settled),
            megabytes(end),
            throughput(&report)
        ),
        baseline: String::new(),
        ratio: None,
        target: "growth < 5 %".into(),
        verdict: Verdict::of(growth < 5.0 && end <= 150 * 1_048_576),
    };
    Ok((row, json!({"samples": samples, "load": report})))
}
