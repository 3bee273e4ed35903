//! F2: under writes, NATS is restarted, then Postgres crashes and restarts. Requests during each
//! outage must fail fast (`503` with `Retry-After`), Herald must come back by itself, and
//! nothing acknowledged may be lost.
//!
//! F2b: Herald runs on a 3-node NATS cluster with its streams at three replicas; one node is
//! killed under writes and brought back. Writes go on while it is away, and nothing
//! acknowledged is lost.

use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use tokio::time::Instant;

use crate::cli::Scenario;
use crate::run::{CLIENTS, Ctx, ONE_PROCESS, finish, say};
use crate::services::Nats;
use crate::table::Row;
use crate::world::World;
use crate::writes::{FAIL_FAST, Writers};

/// How long each service stays down.
const OUTAGE: Duration = Duration::from_secs(5);

pub async fn restarts(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let calm = ctx.pick(Duration::from_secs(4), Duration::from_secs(15));
    let world = ctx.world("f2", ONE_PROCESS, &[]).await?;
    let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS, None)?;
    let started = Instant::now();
    tokio::time::sleep(calm).await;

    say("F2: stopping NATS");
    let node = ctx.nats.nodes.first_mut().context("no NATS")?;
    node.stop().await?;
    tokio::time::sleep(OUTAGE).await;
    node.start().await?;
    let nats_back = back_after(&writers).await;

    tokio::time::sleep(calm).await;
    say("F2: crashing Postgres");
    ctx.pg.crash().await?;
    tokio::time::sleep(OUTAGE).await;
    ctx.pg.start().await?;
    let pg_back = back_after(&writers).await;
    tokio::time::sleep(calm).await;

    let (mut row, record) = finish(
        &world,
        writers,
        started,
        Row::new("F2", Scenario::F2.title()),
    )
    .await?;
    row.recovery = format!("NATS {}, Postgres {}", seconds(nats_back), seconds(pg_back));
    row.expect(
        record.failed_otherwise == 0 && record.slowest_failure_ms <= millis(FAIL_FAST),
        format!(
            "every failed request a 503 with Retry-After; slowest {} ms (bound {} ms)",
            record.slowest_failure_ms,
            millis(FAIL_FAST)
        ),
    );
    row.expect(
        nats_back.is_some() && pg_back.is_some(),
        "writes acknowledged again after each restart".to_owned(),
    );
    world.tear_down(!row.passed()).await?;
    Ok(row)
}

pub async fn cluster(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let calm = ctx.pick(Duration::from_secs(5), Duration::from_secs(20));
    let mut nats = Nats::start(&ctx.binaries.nats_server, &ctx.data.join("cluster"), 3).await?;
    let world = World::start(
        &ctx.herald,
        &ctx.pg.admin_url(),
        &nats.url(),
        &ctx.dir.join("f2b"),
        ONE_PROCESS,
        &[("HERALD_NATS__REPLICAS", "3")],
    )
    .await?;
    let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS, None)?;
    let started = Instant::now();
    tokio::time::sleep(calm).await;

    let victim = rand::rng().random_range(0..nats.nodes.len());
    let node = nats.nodes.get_mut(victim).context("no such node")?;
    say(&format!("F2b: killing NATS node {}", node.name));
    let acked_before = writers.acknowledged();
    node.kill().await?;
    tokio::time::sleep(calm).await;
    let acked_without = writers.acknowledged() - acked_before;
    let name = node.name.clone();
    node.start().await?;
    nats.wait_for_jetstream().await?;
    tokio::time::sleep(calm).await;

    let (mut row, _) = finish(
        &world,
        writers,
        started,
        Row::new("F2b", Scenario::F2b.title()),
    )
    .await?;
    row.recovery = "no outage: the cluster kept serving".to_owned();
    row.expect(
        acked_without > 0,
        format!("{acked_without} creates acknowledged while node {name} was down"),
    );
    let replicas = stream_replicas(&world).await?;
    row.expect(
        replicas.iter().all(|(_, r)| *r == 3),
        format!(
            "replicas: {}",
            replicas
                .iter()
                .map(|(s, r)| format!("{s} R{r}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    world.tear_down(!row.passed()).await?;
    for node in &mut nats.nodes {
        node.stop().await?;
    }
    Ok(row)
}

/// The replicas of each stream of the world's prefix.
async fn stream_replicas(world: &World) -> anyhow::Result<Vec<(String, usize)>> {
    use futures::TryStreamExt;
    let client = async_nats::connect(world.nats_servers()).await?;
    let jetstream = async_nats::jetstream::new(client);
    let prefix = world.env.prefix.to_uppercase();
    let names: Vec<String> = jetstream.stream_names().try_collect().await?;
    let mut replicas = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with(&prefix)) {
        let mut stream = jetstream.get_stream(&name).await?;
        replicas.push((name, stream.info().await?.config.num_replicas));
    }
    replicas.sort();
    Ok(replicas)
}

/// Waits (up to a minute) for the first acknowledgement from now on; how long it took.
async fn back_after(writers: &Writers) -> Option<Duration> {
    let since = Instant::now();
    writers.mark();
    let deadline = since + Duration::from_secs(60);
    while Instant::now() < deadline {
        let first = writers
            .record
            .lock()
            .ok()
            .and_then(|record| record.first_ack_after_mark);
        if let Some(first) = first {
            return Some(first - since);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "**never**".to_owned(),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
