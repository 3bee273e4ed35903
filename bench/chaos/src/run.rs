//! A run: the servers, then each chosen scenario on its own database and NATS prefix, then the
//! table. A scenario that cannot run to the end is a failed row; the others still run.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::check::{Verdict, check};
use crate::cli::{RunArgs, Scenario};
use crate::services::{Binaries, Nats, Postgres};
use crate::table::{Row, markdown};
use crate::world::{Role, World};
use crate::writes::{Record, Writers};

/// What every scenario shares: the binaries, the servers and how long to run.
pub struct Ctx {
    pub herald: PathBuf,
    pub binaries: Binaries,
    /// Where the run's processes write their logs.
    pub dir: PathBuf,
    /// Where the run's servers keep their data.
    pub data: PathBuf,
    pub short: bool,
    pub pg: Postgres,
    pub nats: Nats,
}

impl Ctx {
    /// `short` in CI, `full` otherwise.
    pub fn pick(&self, short: Duration, full: Duration) -> Duration {
        if self.short { short } else { full }
    }

    /// A Herald on this run's Postgres and NATS, one process per entry of `layout`.
    pub async fn world(
        &self,
        name: &str,
        layout: &[&[Role]],
        extra: &[(&str, &str)],
    ) -> anyhow::Result<World> {
        World::start(
            &self.herald,
            &self.pg.admin_url(),
            &self.nats.url(),
            &self.dir.join(name),
            layout,
            extra,
        )
        .await
    }
}

/// Every role in one process.
pub const ONE_PROCESS: &[&[Role]] = &[&Role::ALL];

/// Clients writing against `world` as its scenario goes on.
pub const CLIENTS: usize = 16;

/// Stops `writers`, checks the world, and fills `row`.
pub async fn finish(
    world: &World,
    writers: Writers,
    started: Instant,
    row: Row,
) -> anyhow::Result<(Row, Record)> {
    let seconds = started.elapsed().as_secs_f64();
    let record = writers.stop().await?;
    let verdict: Verdict = check(world, &record).await?;
    Ok((row.with(seconds, &record, verdict), record))
}

/// Runs the chosen scenarios; `true` when every one passed.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    drop(rlimit::increase_nofile_limit(u64::MAX));
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = std::path::absolute(args.out.join(stamp.to_string()))?;
    std::fs::create_dir_all(&dir)?;
    // The servers' data lives where the user Postgres runs as can reach it.
    let data = std::env::temp_dir().join(format!("herald-chaos-{stamp}"));
    std::fs::create_dir_all(&data)?;
    let binaries = Binaries::new(args.pg_bin.clone(), args.nats_server.clone())?;
    say(&format!(
        "logs of this run in {}, servers' data in {}",
        dir.display(),
        data.display()
    ));
    let mut pg = Postgres::init(&binaries, &data.join("postgres")).await?;
    pg.start().await?;
    let nats = Nats::start(&binaries.nats_server, &data.join("nats"), 1).await?;
    let mut ctx = Ctx {
        herald: args.herald.clone(),
        binaries,
        dir: dir.clone(),
        data: data.clone(),
        short: args.short,
        pg,
        nats,
    };
    let mut rows = Vec::new();
    for scenario in args.scenarios() {
        say(&format!("{scenario:?}: {}", scenario.title()));
        let started = Instant::now();
        let row = match scenario.run(&mut ctx).await {
            Ok(row) => row,
            Err(error) => {
                let mut row = Row::new(scenario.id(), scenario.title());
                row.error = Some(format!("{error:#}"));
                row
            }
        };
        say(&format!(
            "{scenario:?}: {} in {:.0} s",
            if row.passed() { "pass" } else { "FAIL" },
            started.elapsed().as_secs_f64()
        ));
        rows.push(row);
    }
    let table = markdown(&rows);
    println!("\n{table}");
    std::fs::write(dir.join("table.md"), &table)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    ctx.pg.crash().await?;
    for node in &mut ctx.nats.nodes {
        node.stop().await?;
    }
    let passed = rows.iter().all(Row::passed);
    if passed && !args.keep {
        drop(std::fs::remove_dir_all(&data));
    }
    say(&format!("table and logs in {}", dir.display()));
    Ok(passed)
}

impl Scenario {
    async fn run(self, ctx: &mut Ctx) -> anyhow::Result<Row> {
        match self {
            Scenario::F1 => crate::kills::run(ctx).await,
            Scenario::F2 => crate::outages::restarts(ctx).await,
            Scenario::F2b => crate::outages::cluster(ctx).await,
            Scenario::F5 => crate::parked::run(ctx).await,
            Scenario::Hostile => crate::hostile::run(ctx).await,
            Scenario::Soak => crate::soak::run(ctx).await,
            Scenario::Scale => crate::scale::run(ctx).await,
        }
    }
}

pub fn say(what: &str) {
    eprintln!("chaos: {what}");
}

/// Reads the process's memory now, in bytes.
pub fn rss(process: Option<u32>) -> u64 {
    process
        .and_then(herald_bench::setup::rss_bytes)
        .unwrap_or(0)
}
