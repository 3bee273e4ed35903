//! Scale-out: the same creates, flat out, against layouts with more api and handler processes,
//! on one Postgres and NATS. Not a fault scenario: a measurement, run on its own
//! (`--only scale`) with release builds, whose figures go in docs/performance.md.

use std::time::Duration;

use tokio::time::Instant;

use crate::check::Verdict;
use crate::cli::Scenario;
use crate::run::{Ctx, say};
use crate::table::Row;
use crate::world::Role;
use crate::writes::Writers;

/// Clients writing flat out.
const CLIENTS: usize = 64;
/// The roles that are not scaled, in one process of their own.
const REST: &[Role] = &[Role::Projector, Role::Relay, Role::Worker];

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let window = ctx.pick(Duration::from_secs(5), Duration::from_secs(20));
    let mut row = Row::new("scale", Scenario::Scale.title());
    for (apis, handlers) in [(1, 1), (2, 1), (2, 2), (2, 4)] {
        let mut layout: Vec<&[Role]> = vec![REST];
        layout.extend(std::iter::repeat_n(&[Role::Api][..], apis));
        layout.extend(std::iter::repeat_n(&[Role::Handler][..], handlers));
        let name = format!("scale-{apis}-{handlers}");
        let world = ctx.world(&name, &layout, &[]).await?;
        let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS, None)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        writers.mark();
        let started = Instant::now();
        let acked_before = writers.acknowledged();
        tokio::time::sleep(window).await;
        let rate = (writers.acknowledged() - acked_before) as f64 / started.elapsed().as_secs_f64();
        let record = writers.stop().await?;
        say(&format!(
            "{apis} api + {handlers} handler processes: {rate:.0} creates/s"
        ));
        row.notes.push(format!(
            "{apis} api + {handlers} handler: {rate:.0} creates/s, p99 {:.1} ms",
            record.p99_ms()
        ));
        world.tear_down(false).await?;
    }
    // A measurement: its writes are not checked, so its verdict is not one either.
    row.verdict = Verdict {
        settled: true,
        view_equals_rebuild: true,
        ..Verdict::default()
    };
    Ok(row)
}
