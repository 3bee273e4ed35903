//! One benchmark run, start to end: set up, W6 (the first build of a seeded view), W8 idle,
//! W1, W5, W2, W3, W4, W7, the optional soak, then the table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use herald_load::Mode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cli::RunArgs;
use crate::context::{Bench, LIST_TENANT, Results, Scale, Servers, WRITE_TENANT, say};
use crate::cpu::Components;
use crate::database::copy_listing_to_baseline;
use crate::fanout::measure_fan_out;
use crate::lag::measure_lag;
use crate::memory::{Idle, measure_soak, report_memory};
use crate::reads::{measure_lists, measure_reads};
use crate::rebuild::measure_rebuild;
use crate::setup::{BenchDatabase, HeraldEnv, Process, delete_streams, free_addr, write_apps};
use crate::sources::Api;
use crate::table::{self, Peer, Row, thousands};
use crate::writes::{measure_creates, measure_updates};

/// Herald's pool size, and so the baseline's.
const POOL_SIZE: usize = 16;

/// Runs everything; the database and streams are removed afterwards unless `--keep`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut scale = Scale::of(&args);
    let started = Utc::now();
    let run_dir = args
        .out
        .join(started.format("%Y-%m-%dT%H-%M-%SZ").to_string());
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let bins = Binaries::beside_this_one()?;
    let db = BenchDatabase::create(&args.database_url).await?;
    let env = HeraldEnv::new(&db.url, &args.nats_url, POOL_SIZE)?;
    say(&format!(
        "database {}, NATS prefix {}, results in {}",
        db.name,
        env.prefix,
        run_dir.display()
    ));
    let outcome = measure(&args, &mut scale, &db, &env, &bins, &run_dir).await;
    if args.keep {
        say("kept the database and streams (--keep)");
    } else {
        if let Err(error) = db.drop_database().await {
            say(&format!("could not drop {}: {error:#}", db.name));
        }
        if let Err(error) = delete_streams(&args.nats_url, &env.prefix).await {
            say(&format!("could not delete the run's streams: {error:#}"));
        }
    }
    let (rows, peers, raw) = outcome?;
    let markdown = table::markdown(&rows, &peers);
    println!("\n{markdown}");
    let document = json!({
        "started_at": started,
        "finished_at": Utc::now(),
        "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "scale": scale,
        "rows": rows,
        "peers": peers,
        "raw": raw,
    });
    std::fs::write(run_dir.join("table.md"), &markdown)?;
    std::fs::write(
        run_dir.join("results.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    say(&format!("wrote {}", run_dir.join("results.json").display()));
    Ok(())
}

/// The release binaries, found beside `herald-bench` (`cargo build --release` puts them
/// together in `target/release`). Herald runs as the example's binary, which has the code of
/// the example's `kind: rust` command.
struct Binaries {
    herald: PathBuf,
    bench: PathBuf,
}

impl Binaries {
    fn beside_this_one() -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot find this executable")?;
        let dir = bench.parent().context("the executable has no folder")?;
        let herald = dir.join("herald-petstore");
        if !herald.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p herald-petstore -p herald-bench`",
                herald.display()
            );
        }
        Ok(Self { herald, bench })
    }
}

/// Sets the run up, then runs every workload in the table's order.
async fn measure(
    args: &RunArgs,
    scale: &mut Scale,
    db: &BenchDatabase,
    env: &HeraldEnv,
    bins: &Binaries,
    run_dir: &Path,
) -> anyhow::Result<(Vec<Row>, BTreeMap<usize, Peer>, Value)> {
    let mut results = Results::default();
    let apps = write_apps(run_dir)?;
    migrate_and_seed(db, env, bins, run_dir, scale.documents).await?;
    let mut servers = start_servers(db, env, bins, &apps, run_dir).await?;
    if let Some(python) = &args.peers {
        servers.peer = Some(start_peer(db, python, run_dir).await?);
    }
    measure_rebuild(db, &servers, env, scale.documents, &mut results).await?;
    copy_listing_to_baseline(db).await?;
    let (herald_pid, baseline_pid) = watch_servers(&servers, db, scale)?;
    let idle = Idle::read(herald_pid, baseline_pid);
    let bench = Bench {
        servers: &servers,
        scale,
        db,
        env,
        herald_pid,
        baseline_pid,
        herald_writes: Api::herald(&env.token(WRITE_TENANT)?)?,
        direct_writes: Api::direct(WRITE_TENANT),
        closed: Mode::Closed {
            connections: scale.connections,
        },
    };
    let creates = measure_creates(&bench, &mut results).await?;
    // W5's lag and the soak are measured at half W1's closed-loop rate, below saturation.
    let half_rate = (creates.herald_rate / 2.0).max(1.0);
    measure_lag(&bench, half_rate, &mut results).await?;
    let targets = measure_updates(&bench, &mut results).await?;
    measure_reads(&bench, targets, &mut results).await?;
    measure_lists(&bench, &mut results).await?;
    measure_fan_out(&bench, &mut results).await?;
    report_memory(&idle, &creates, &mut results);
    if let Some(length) = args.soak {
        measure_soak(&bench, half_rate, length, &mut results).await?;
    }
    servers.herald.stop().await;
    servers.baseline.stop().await;
    if let Some((peer, _)) = servers.peer {
        peer.stop().await;
    }
    Ok((results.rows, results.peers, Value::Object(results.raw)))
}

/// Migrates the run's database with `herald migrate`, then seeds the listing documents
/// straight into the event log.
async fn migrate_and_seed(
    db: &BenchDatabase,
    env: &HeraldEnv,
    bins: &Binaries,
    run_dir: &Path,
    documents: u64,
) -> anyhow::Result<()> {
    say("migrating");
    Process::spawn(
        "herald migrate",
        &bins.herald,
        &["migrate"],
        &env.vars,
        &run_dir.join("migrate.log"),
    )?
    .finish()
    .await?;
    say(&format!("seeding {} products", thousands(documents as f64)));
    let seeding = Instant::now();
    db.seed_products(LIST_TENANT, documents).await?;
    say(&format!(
        "seeded in {:.1}s",
        seeding.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Starts the baseline, then Herald, each as its own process and each waited on until its
/// health check answers.
async fn start_servers(
    db: &BenchDatabase,
    env: &HeraldEnv,
    bins: &Binaries,
    apps: &Path,
    run_dir: &Path,
) -> anyhow::Result<Servers> {
    let baseline_addr = free_addr()?;
    let mut baseline = Process::spawn(
        "the baseline",
        &bins.bench,
        &[
            "baseline",
            "--addr",
            &baseline_addr.to_string(),
            "--pool-size",
            &POOL_SIZE.to_string(),
        ],
        &[(
            "HERALD_BENCH_BASELINE_DATABASE_URL".to_owned(),
            db.url.clone(),
        )],
        &run_dir.join("baseline.log"),
    )?;
    baseline
        .wait_healthy(&format!(
            "http://{baseline_addr}/direct/{LIST_TENANT}/product?status=none&price_lt=0"
        ))
        .await?;
    let apps = apps.to_string_lossy();
    let mut herald = Process::spawn(
        "herald",
        &bins.herald,
        &["serve", "--apps", &apps],
        &env.vars,
        &run_dir.join("herald.log"),
    )?;
    herald
        .wait_healthy(&format!("http://{}/healthz", env.addr))
        .await?;
    Ok(Servers {
        herald,
        herald_addr: env.addr,
        baseline,
        baseline_addr,
        peer: None,
    })
}

/// Starts the FastAPI peer with uvicorn (2 workers, each with half the baseline's pool), on
/// the baseline's table, which the baseline has created.
async fn start_peer(
    db: &BenchDatabase,
    python: &Path,
    run_dir: &Path,
) -> anyhow::Result<(Process, SocketAddr)> {
    let addr = free_addr()?;
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers");
    let port = addr.port().to_string();
    let app_dir = peers.to_string_lossy();
    let mut peer = Process::spawn(
        "the FastAPI peer",
        python,
        &[
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--app-dir",
            &app_dir,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--workers",
            "2",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        &[
            ("HERALD_PEER_DATABASE_URL".to_owned(), db.url.clone()),
            (
                "HERALD_PEER_POOL_SIZE".to_owned(),
                (POOL_SIZE / 2).to_string(),
            ),
        ],
        &run_dir.join("fastapi.log"),
    )?;
    peer.wait_healthy(&format!("http://{addr}/healthz")).await?;
    say(&format!("the FastAPI peer serves at {addr}"));
    Ok((peer, addr))
}

/// Points each load run's CPU readings at the two servers and its settling at the run's
/// database; returns the servers' process ids.
fn watch_servers(
    servers: &Servers,
    db: &BenchDatabase,
    scale: &mut Scale,
) -> anyhow::Result<(u32, u32)> {
    let herald_pid = servers.herald.pid().context("Herald has exited")?;
    let baseline_pid = servers.baseline.pid().context("the baseline has exited")?;
    let mut processes = vec![("herald", herald_pid), ("baseline", baseline_pid)];
    if let Some((peer, _)) = &servers.peer {
        processes.push((
            "fastapi",
            peer.pid().context("the FastAPI peer has exited")?,
        ));
    }
    scale.cpu = Components { processes };
    scale.database_url.clone_from(&db.url);
    Ok((herald_pid, baseline_pid))
}
