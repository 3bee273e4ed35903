//! Soak: every role in one process, clients creating at half the rate they reach flat out, for
//! ten minutes (a minute and a half in CI). Memory may not grow more than 5 % once warmed up, and no request
//! may fail.

use std::time::Duration;

use tokio::time::Instant;

use crate::cli::Scenario;
use crate::run::{CLIENTS, Ctx, ONE_PROCESS, finish, say};
use crate::table::Row;
use crate::writes::Writers;

/// The most memory may grow from the end of the warm-up to the end.
const MOST_GROWTH: f64 = 0.05;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let length = ctx.pick(Duration::from_secs(90), Duration::from_secs(600));
    let world = ctx.world("soak", ONE_PROCESS, &[]).await?;
    let pid = world.pids().first().copied().unwrap_or(0);

    // Flat out first, to find the rate.
    let probe = Writers::start(world.api_addrs(), world.token()?, CLIENTS * 2, None)?;
    let probing = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let flat_out = probe.stop().await?.acknowledged() as f64 / probing.elapsed().as_secs_f64();
    let rate = flat_out / 2.0;
    say(&format!(
        "soak: {flat_out:.0} creates/s flat out; {rate:.0}/s for {length:?}"
    ));

    let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS, Some(rate))?;
    let started = Instant::now();
    let (_, samples) =
        herald_bench::rss::with_rss(pid, Duration::from_secs(1), tokio::time::sleep(length))
            .await?;
    let (mut row, record) = finish(
        &world,
        writers,
        started,
        Row::new("S", Scenario::Soak.title()),
    )
    .await?;
    // Warmed up after three tenths of the run; compare the mean of the following tenth with
    // the last.
    let tenth = (samples.len() / 10).max(1);
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64;
    let warm = mean(samples.get(3 * tenth..4 * tenth).unwrap_or_default());
    let end = mean(
        samples
            .get(samples.len().saturating_sub(tenth)..)
            .unwrap_or_default(),
    );
    let growth = if warm > 0.0 {
        end / warm - 1.0
    } else {
        f64::INFINITY
    };
    row.expect(
        growth < MOST_GROWTH,
        format!(
            "{:.0} creates/s for {:.0} s; memory {:.1} → {:.1} MiB ({:+.1} %)",
            record.acknowledged() as f64 / row.seconds,
            row.seconds,
            warm / 1048576.0,
            end / 1048576.0,
            growth * 100.0
        ),
    );
    let tenths: Vec<String> = samples
        .chunks(tenth)
        .map(|chunk| format!("{:.0}", mean(chunk) / 1048576.0))
        .collect();
    row.notes.push(format!(
        "memory by tenth of the run (MiB): {}",
        tenths.join(", ")
    ));
    row.expect(
        record.failed_fast + record.failed_otherwise + record.refused == 0,
        format!(
            "failed requests: {}",
            record.failed_fast + record.failed_otherwise + record.refused
        ),
    );
    world.tear_down(!row.passed()).await?;
    Ok(row)
}
