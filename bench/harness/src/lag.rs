//! W5: how long a committed event takes to become visible in its view, measured while
//! Herald takes creates at a fixed rate.
//!
//! A view's rows and its checkpoint commit in one transaction, so an event is visible exactly
//! when the checkpoint has passed it. The sampler polls the checkpoint every
//! [`POLL_INTERVAL`]; each time it moved, every event it passed gets a lag of "now minus the
//! event's `recorded_at`", computed by Postgres on one clock. The poll interval bounds the
//! resolution: a lag is over-stated by at most one interval.

use std::time::Duration;

use anyhow::Context;
use herald_load::{LatencySummary, Mode, latency_histogram};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::{Bench, PROJECTION, Results, WRITE_TENANT, say};
use crate::measured::load;
use crate::sources::Create;
use crate::table::{Row, Verdict, percentiles, thousands};

/// How often the checkpoint is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

const POLL: &str = "
SELECT c.tx_id::text, c.position,
       coalesce(array_agg((extract(epoch FROM clock_timestamp() - e.recorded_at) * 1000000)::bigint)
                FILTER (WHERE e.position IS NOT NULL), '{}')
FROM herald.checkpoints c
LEFT JOIN herald.events e
       ON e.tenant = $2
      AND (e.tx_id, e.position) > ($3::text::xid8, $4)
      AND (e.tx_id, e.position) <= (c.tx_id, c.position)
WHERE c.name = $1
GROUP BY c.tx_id, c.position";

/// W5: creates at `rate` against Herald alone, sampling each one's lag meanwhile.
pub(crate) async fn measure_lag(
    bench: &Bench<'_>,
    rate: f64,
    results: &mut Results,
) -> anyhow::Result<()> {
    say("W5: commit to view lag at half the W1 rate");
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let (url, stop) = (bench.db.url.clone(), stop.clone());
        async move { sample_lag(&url, PROJECTION, WRITE_TENANT, stop).await }
    });
    let writes = load(
        bench.servers.herald_addr,
        Create::new(bench.herald_writes.clone(), "w5"),
        Mode::Open {
            rate,
            max_connections: bench.scale.connections,
        },
        bench.scale,
        true,
    )
    .await;
    stop.cancel();
    let lag = sampler.await.context("the lag sampler failed")??;
    let writes = writes?;
    results.push(Row {
        id: "W5",
        workload: format!(
            "commit → visible in the view, creates at {} req/s",
            thousands(rate)
        ),
        herald: format!(
            "{} ({} events)",
            percentiles(&lag),
            thousands(lag.count as f64)
        ),
        baseline: String::new(),
        ratio: None,
        target: "p99 ≤ 50 ms".into(),
        verdict: Verdict::of(lag.count > 0 && lag.p99_us <= 50_000),
    });
    results.record("w5", json!({"lag": lag, "load": writes}));
    Ok(())
}

/// Samples the lag of `tenant`'s events in the active view of `projection` until `stop`.
pub async fn sample_lag(
    database_url: &str,
    projection: &str,
    tenant: &str,
    stop: CancellationToken,
) -> anyhow::Result<LatencySummary> {
    let client = crate::setup::connect(database_url).await?;
    let checkpoint: String = client
        .query_one(
            "SELECT checkpoint FROM herald.projections WHERE name = $1 AND state = 'active'",
            &[&projection],
        )
        .await
        .context("the projection has no active version")?
        .try_get(0)?;
    let statement = client.prepare(POLL).await?;
    let mut histogram = latency_histogram()?;
    let (mut tx, mut position) = (String::from("0"), 0_i64);
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let row = client
            .query_one(&statement, &[&checkpoint, &tenant, &tx, &position])
            .await?;
        let lags: Vec<i64> = row.try_get(2)?;
        // The first poll only finds where the checkpoint is: what it passed came before.
        if !first {
            for lag in lags {
                histogram.saturating_record(u64::try_from(lag).unwrap_or(0).max(1));
            }
        }
        first = false;
        (tx, position) = (row.try_get(0)?, row.try_get(1)?);
    }
    Ok(LatencySummary::of(&histogram))
}
