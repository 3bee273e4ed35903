//! One benchmark run, start to end: set up, W6 (the first build of a seeded view), W8 idle,
//! W1, W5, W2, W3, W4, W7, the optional soak, then the table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use herald_load::{LoadConfig, Mode, Report, RequestSource, Target, run_load};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::RunArgs;
use crate::cpu::{Components, Usage};
use crate::fanout::Subscribers;
use crate::lag::sample_lag;
use crate::setup::{
    BenchDatabase, HeraldEnv, OPERATOR_TENANT, Process, delete_streams, free_addr, random_lower,
    rss_bytes, write_apps,
};
use crate::sources::{Api, Create, List, Read, Update};
use crate::table::{self, Row, Verdict, megabytes, percentiles, thousands, throughput};

/// Herald's pool size, and so the baseline's.
const POOL_SIZE: usize = 16;
/// Tenants: the seeded million for lists, one for writes, one for the fan-out's events.
const LIST_TENANT: &str = "bench";
const WRITE_TENANT: &str = "bench-w";
const FANOUT_TENANT: &str = "bench-sse";
const PROJECTION: &str = "petstore.product";
/// W2 spreads updates over this many documents, and piles them on `HOT_DOCUMENTS`.
const SPREAD_DOCUMENTS: i64 = 10_000;
const HOT_DOCUMENTS: usize = 10;
/// How often W8 reads a process's memory while it is under load.
const RSS_INTERVAL: Duration = Duration::from_millis(250);

/// The size of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scale {
    pub documents: u64,
    pub warmup: Duration,
    pub window: Duration,
    pub connections: usize,
    pub subscribers: usize,
    pub fanout_rate: f64,
    /// The processes whose CPU each load run reads; set once the servers run.
    #[serde(skip)]
    pub cpu: Components,
    /// The run's database, which each load run waits on until Herald has settled.
    #[serde(skip)]
    pub database_url: String,
}

impl Scale {
    fn of(args: &RunArgs) -> Self {
        let (documents, warmup, window) = if args.quick {
            (100_000, Duration::from_secs(2), Duration::from_secs(5))
        } else {
            (1_000_000, Duration::from_secs(5), Duration::from_secs(15))
        };
        Self {
            documents: args.documents.unwrap_or(documents),
            warmup,
            window: args.window.unwrap_or(window),
            connections: 64,
            subscribers: 1_000,
            fanout_rate: 500.0,
            cpu: Components::default(),
            database_url: String::new(),
        }
    }
}

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
    let (rows, raw) = outcome?;
    let markdown = table::markdown(&rows);
    println!("\n{markdown}");
    let document = json!({
        "started_at": started,
        "finished_at": Utc::now(),
        "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "scale": scale,
        "rows": rows,
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

fn say(line: &str) {
    eprintln!("bench: {line}");
}

/// The release binaries, found beside `herald-bench` (`cargo build --release` puts them
/// together in `target/release`).
struct Binaries {
    herald: PathBuf,
    bench: PathBuf,
}

impl Binaries {
    fn beside_this_one() -> anyhow::Result<Self> {
        let bench = std::env::current_exe().context("cannot find this executable")?;
        let dir = bench.parent().context("the executable has no folder")?;
        let herald = dir.join("herald");
        if !herald.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p herald-cli -p herald-bench`",
                herald.display()
            );
        }
        Ok(Self { herald, bench })
    }
}

/// The two servers under test.
struct Servers {
    herald: Process,
    herald_addr: SocketAddr,
    baseline: Process,
    baseline_addr: SocketAddr,
}

async fn measure(
    args: &RunArgs,
    scale: &mut Scale,
    db: &BenchDatabase,
    env: &HeraldEnv,
    bins: &Binaries,
    run_dir: &Path,
) -> anyhow::Result<(Vec<Row>, Value)> {
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let apps = write_apps(run_dir)?;
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
    say(&format!(
        "seeding {} products",
        thousands(scale.documents as f64)
    ));
    let seeding = Instant::now();
    db.seed_products(LIST_TENANT, scale.documents).await?;
    say(&format!(
        "seeded in {:.1}s",
        seeding.elapsed().as_secs_f64()
    ));
    let servers = start_servers(db, env, bins, &apps, run_dir).await?;

    say("W6: the projector builds the seeded view, then rebuilds it on request");
    wait_for_catch_up(db, scale.documents).await?;
    request_rebuild(&servers, env).await?;
    let (events, seconds) = wait_for_build(db, scale.documents).await?;
    let rate = events as f64 / seconds.max(0.001);
    rows.push(Row {
        id: "W6",
        workload: format!("rebuild a view from {} events", thousands(events as f64)),
        herald: format!("{} events/s ({seconds:.1} s)", thousands(rate)),
        baseline: String::new(),
        ratio: None,
        target: "≥ 50,000 events/s".into(),
        verdict: Verdict::of(rate >= 50_000.0),
    });
    say(&format!("  {}", rows[0].herald));
    raw.insert("w6".into(), json!({"events": events, "seconds": seconds}));
    copy_listing_to_baseline(db).await?;

    let herald_pid = servers.herald.pid().context("Herald has exited")?;
    let baseline_pid = servers.baseline.pid().context("the baseline has exited")?;
    scale.cpu = Components {
        processes: vec![("herald", herald_pid), ("baseline", baseline_pid)],
    };
    scale.database_url.clone_from(&db.url);
    let scale = &*scale;
    let idle = (rss_bytes(herald_pid), rss_bytes(baseline_pid));

    let herald_writes = Api::herald(&env.token(WRITE_TENANT)?)?;
    let direct_writes = Api::direct(WRITE_TENANT);
    let closed = Mode::Closed {
        connections: scale.connections,
    };
    say("W1: creates");
    let (w1_herald, herald_peak) = with_peak_rss(
        herald_pid,
        load(
            servers.herald_addr,
            Create::new(herald_writes.clone(), "w1"),
            closed,
            scale,
            true,
        ),
    )
    .await?;
    let (w1_direct, baseline_peak) = with_peak_rss(
        baseline_pid,
        load(
            servers.baseline_addr,
            Create::new(direct_writes.clone(), "w1"),
            closed,
            scale,
            true,
        ),
    )
    .await?;
    rows.push(compare(
        "W1",
        "create, 64 connections",
        &w1_herald,
        &w1_direct,
        0.5,
    ));

    say("W5: commit to view lag at half the W1 rate");
    let half_rate = (w1_herald.total.requests_per_sec / 2.0).max(1.0);
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let (url, stop) = (db.url.clone(), stop.clone());
        async move { sample_lag(&url, PROJECTION, WRITE_TENANT, stop).await }
    });
    let w5_load = load(
        servers.herald_addr,
        Create::new(herald_writes.clone(), "w5"),
        Mode::Open {
            rate: half_rate,
            max_connections: scale.connections,
        },
        scale,
        true,
    )
    .await;
    stop.cancel();
    let lag = sampler.await.context("the lag sampler failed")??;
    let w5_load = w5_load?;
    rows.push(Row {
        id: "W5",
        workload: format!(
            "commit → visible in the view, creates at {} req/s",
            thousands(half_rate)
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
    raw.insert("w5".into(), json!({"lag": lag, "load": w5_load}));

    say("W2: updates over 10k documents and on 10 hot ones");
    let herald_ids = view_ids(db, WRITE_TENANT).await?;
    let direct_ids = baseline_ids(db, WRITE_TENANT).await?;
    let w2_herald = load(
        servers.herald_addr,
        Update::new(herald_writes.clone(), "update", herald_ids.clone()),
        closed,
        scale,
        true,
    )
    .await?;
    let w2_direct = load(
        servers.baseline_addr,
        Update::new(direct_writes.clone(), "update", direct_ids.clone()),
        closed,
        scale,
        true,
    )
    .await?;
    rows.push(compare(
        "W2",
        &format!(
            "update (PATCH) spread over {} documents",
            thousands(herald_ids.len() as f64)
        ),
        &w2_herald,
        &w2_direct,
        0.5,
    ));
    let hot: Vec<Uuid> = herald_ids.iter().take(HOT_DOCUMENTS).copied().collect();
    let before = stream_versions(db, &hot).await?;
    // No warm-up: every acknowledged update of the window must be in the log.
    let w2_hot = load(
        servers.herald_addr,
        Update::new(herald_writes.clone(), "hot update", hot.clone()),
        closed,
        scale,
        false,
    )
    .await?;
    settle(&db.url).await?;
    let appended = stream_versions(db, &hot).await? - before;
    let acknowledged = i64::try_from(w2_hot.total.statuses.success).unwrap_or(i64::MAX);
    let lost = (acknowledged - appended).max(0);
    let direct_hot: Vec<Uuid> = direct_ids.iter().take(HOT_DOCUMENTS).copied().collect();
    let w2_direct_hot = load(
        servers.baseline_addr,
        Update::new(direct_writes, "hot update", direct_hot),
        closed,
        scale,
        false,
    )
    .await?;
    rows.push(Row {
        id: "W2",
        workload: "update (PATCH) on 10 hot documents".into(),
        herald: format!(
            "{}; {} acknowledged, {} appended, {lost} lost, {} conflicts",
            throughput(&w2_hot),
            thousands(acknowledged as f64),
            thousands(appended as f64),
            w2_hot.total.statuses.client_error
        ),
        baseline: throughput(&w2_direct_hot),
        ratio: Some(ratio(&w2_hot, &w2_direct_hot)),
        target: "no lost update".into(),
        verdict: Verdict::of(lost == 0 && w2_hot.total.statuses.success > 0),
    });
    raw.insert(
        "w2".into(),
        json!({"spread": {"herald": w2_herald, "direct": w2_direct},
               "hot": {"herald": w2_hot, "direct": w2_direct_hot, "acknowledged": acknowledged, "appended": appended}}),
    );

    say("W3: reads by id");
    let w3_herald = load(
        servers.herald_addr,
        Read::new(herald_writes.clone(), herald_ids),
        closed,
        scale,
        true,
    )
    .await?;
    let w3_direct = load(
        servers.baseline_addr,
        Read::new(Api::direct(WRITE_TENANT), direct_ids),
        closed,
        scale,
        true,
    )
    .await?;
    rows.push(compare("W3", "read by id", &w3_herald, &w3_direct, 0.9));

    say("W4: lists over the seeded documents");
    let list_api = Api::herald(&env.token(LIST_TENANT)?)?;
    let w4_herald = load(
        servers.herald_addr,
        List::new(list_api),
        closed,
        scale,
        true,
    )
    .await?;
    let w4_direct = load(
        servers.baseline_addr,
        List::new(Api::direct(LIST_TENANT)),
        closed,
        scale,
        true,
    )
    .await?;
    let plan = list_plan(db).await?;
    let mut w4 = compare(
        "W4",
        &format!(
            "list: 2 filters + sort, page of 50, over {} documents",
            thousands(scale.documents as f64)
        ),
        &w4_herald,
        &w4_direct,
        0.8,
    );
    w4.herald = format!("{}; plan: {plan}", w4.herald);
    if !plan.contains("Index") {
        w4.verdict = Verdict::Fail;
    }
    rows.push(w4);

    say(&format!(
        "W7: {} subscribers, creates at {} events/s",
        scale.subscribers, scale.fanout_rate
    ));
    let (fanout, fanout_writes) = fan_out(&servers, env, db, scale).await?;
    rows.push(Row {
        id: "W7",
        workload: format!(
            "SSE fan-out: {} subscribers, {} events/s",
            thousands(scale.subscribers as f64),
            thousands(scale.fanout_rate)
        ),
        herald: format!(
            "delivery {}; {} events, {} of {} deliveries lost, {} subscriptions ended; busy cores: Herald {:.2}, subscribers (harness) {:.2}",
            percentiles(&fanout.latency),
            thousands(fanout.events as f64),
            thousands(fanout.lost as f64),
            thousands((fanout.events * fanout.subscribers as u64) as f64),
            fanout.dropped,
            fanout_writes.cpu.cores.get("herald").copied().unwrap_or(0.0),
            fanout_writes.cpu.cores.get("harness").copied().unwrap_or(0.0),
        ),
        baseline: String::new(),
        ratio: None,
        target: "p99 ≤ 100 ms, 0 lost".into(),
        verdict: Verdict::of(
            fanout.lost == 0 && fanout.events > 0 && fanout.latency.p99_us <= 100_000,
        ),
    });
    raw.insert(
        "w7".into(),
        json!({"fanout": fanout, "writes": fanout_writes}),
    );

    let idle_text = |rss: Option<u64>| rss.map_or_else(|| "?".to_owned(), megabytes);
    rows.push(Row {
        id: "W8",
        workload: "memory (RSS): idle / peak under W1".into(),
        herald: format!("{} / {}", idle_text(idle.0), megabytes(herald_peak)),
        baseline: format!("{} / {}", idle_text(idle.1), megabytes(baseline_peak)),
        ratio: None,
        target: "≤ 150 MB under load".into(),
        verdict: Verdict::of(herald_peak > 0 && herald_peak <= 150 * 1_048_576),
    });
    raw.insert(
        "w8".into(),
        json!({"herald": {"idle": idle.0, "peak_w1": herald_peak}, "direct": {"idle": idle.1, "peak_w1": baseline_peak}}),
    );
    raw.insert(
        "w1".into(),
        json!({"herald": w1_herald, "direct": w1_direct}),
    );
    raw.insert(
        "w3".into(),
        json!({"herald": w3_herald, "direct": w3_direct}),
    );
    raw.insert(
        "w4".into(),
        json!({"herald": w4_herald, "direct": w4_direct, "plan": plan}),
    );

    if let Some(soak) = args.soak {
        say(&format!(
            "W8: soak for {}",
            humantime::format_duration(soak)
        ));
        let (row, soak_raw) = soak_run(&servers, scale, herald_writes, half_rate, soak).await?;
        rows.push(row);
        raw.insert("w8_soak".into(), soak_raw);
    }
    servers.herald.stop().await;
    servers.baseline.stop().await;
    Ok((rows, Value::Object(raw)))
}

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
    })
}

/// One load run against `addr`; the warm-up is skipped where every request must count.
async fn load(
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

/// A load run's report with the CPU each component spent on it.
#[derive(Debug, Clone, serde::Serialize)]
struct Measured {
    report: Report,
    cpu: Usage,
}

impl std::ops::Deref for Measured {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

/// The processes that serve a request to Herald, and to the baseline.
const HERALD_PARTS: [&str; 3] = ["herald", "postgres", "nats"];
const BASELINE_PARTS: [&str; 2] = ["baseline", "postgres"];

/// Runs `work` while reading `pid`'s memory, and returns the largest reading with its result.
async fn with_peak_rss<T>(
    pid: u32,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, u64)> {
    let (result, samples) = with_rss(pid, RSS_INTERVAL, work).await?;
    Ok((result?, samples.into_iter().max().unwrap_or(0)))
}

/// Runs `work` while reading `pid`'s memory every `interval`; returns its result and the
/// readings.
async fn with_rss<T>(
    pid: u32,
    interval: Duration,
    work: impl std::future::Future<Output = T>,
) -> anyhow::Result<(T, Vec<u64>)> {
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(interval);
            while !stop.is_cancelled() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = ticker.tick() => samples.push(rss_bytes(pid).unwrap_or(0)),
                }
            }
            samples
        }
    });
    let result = work.await;
    stop.cancel();
    let samples = sampler.await.context("the memory sampler failed")?;
    Ok((result, samples))
}

fn ratio(herald: &Report, direct: &Report) -> f64 {
    herald.total.requests_per_sec / direct.total.requests_per_sec.max(f64::MIN_POSITIVE)
}

/// A row comparing throughput with the baseline's: passes at `target` × the baseline with
/// no failed request. Each side shows the CPU one request cost its server, Postgres and NATS.
fn compare(
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

/// Build deadlines are generous: a slow build is a figure to report, not a harness failure.
fn build_deadline(documents: u64) -> Instant {
    Instant::now() + Duration::from_secs(120 + documents / 1_000)
}

/// Waits until the first version of the view has applied every event it was created with.
async fn wait_for_catch_up(db: &BenchDatabase, documents: u64) -> anyhow::Result<()> {
    let client = db.connect().await?;
    poll_until(
        build_deadline(documents),
        "the view to catch up",
        || async {
            let caught_up = client
                .query_opt(
                    "SELECT 1 FROM herald.projections
                 WHERE name = $1 AND state = 'active' AND events_done >= events_total",
                    &[&PROJECTION],
                )
                .await?
                .is_some();
            Ok(caught_up.then_some(()))
        },
    )
    .await
}

/// Asks `check` every 100 ms until it answers, failing once `deadline` has passed.
async fn poll_until<T, F, Fut>(deadline: Instant, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    loop {
        if let Some(answer) = check().await? {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until Herald has worked off everything the runs before left it — every command of
/// the last seconds decided, the view and the relay through the whole log — so a run
/// (Herald's or the baseline's) never shares the machine with the backlog of the one before
/// it. An older undecided command is not waited for: only a crash can leave one.
async fn settle(database_url: &str) -> anyhow::Result<()> {
    let client = crate::setup::connect(database_url).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    poll_until(deadline, "Herald to work off its backlog", || async {
        let busy: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM herald.commands
                                WHERE status = 'accepted' AND created_at > now() - interval '3 seconds')
                     OR EXISTS (
                         SELECT 1 FROM herald.projections p
                         JOIN herald.checkpoints c ON c.name = p.checkpoint
                         JOIN herald.events e ON e.collection = p.name
                          AND (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE p.state = 'active')
                     OR EXISTS (
                         SELECT 1 FROM herald.checkpoints c
                         JOIN herald.events e ON (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE c.name = 'relay')",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok((!busy).then_some(()))
    })
    .await
}

/// Asks Herald, as an operator, to rebuild the view from position zero.
async fn request_rebuild(servers: &Servers, env: &HeraldEnv) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!(
            "http://{}/v1/admin/projections/{PROJECTION}/rebuild",
            servers.herald_addr
        ))
        .bearer_auth(env.token(OPERATOR_TENANT)?)
        .send()
        .await?
        .error_for_status()
        .context("the rebuild was refused")?;
    Ok(())
}

/// Waits until the newest version of the view is active; returns the events it was built from and the
/// seconds from the version's creation to its activation, as the catalog recorded them.
async fn wait_for_build(db: &BenchDatabase, documents: u64) -> anyhow::Result<(u64, f64)> {
    let client = db.connect().await?;
    let last_report = std::cell::Cell::new(Instant::now());
    poll_until(build_deadline(documents), "the view to be rebuilt", || {
        let (client, last_report) = (&client, &last_report);
        async move {
            let Some(row) = client
                .query_opt(
                    "SELECT state, events_total, events_done,
                            extract(epoch FROM activated_at - created_at)::float8
                     FROM herald.projections WHERE name = $1 ORDER BY version DESC LIMIT 1",
                    &[&PROJECTION],
                )
                .await?
            else {
                return Ok(None);
            };
            let state: String = row.try_get(0)?;
            let total: i64 = row.try_get(1)?;
            let done: i64 = row.try_get(2)?;
            if state == "active" {
                let seconds: Option<f64> = row.try_get(3)?;
                return Ok(Some((
                    u64::try_from(total).unwrap_or(0),
                    seconds.unwrap_or(0.0),
                )));
            }
            if last_report.get().elapsed() > Duration::from_secs(5) {
                say(&format!(
                    "  {} of {} events applied",
                    thousands(done as f64),
                    thousands(total as f64)
                ));
                last_report.set(Instant::now());
            }
            Ok(None)
        }
    })
    .await
}

/// Gives the baseline the same listing documents, then fresh statistics for both tables.
async fn copy_listing_to_baseline(db: &BenchDatabase) -> anyhow::Result<()> {
    let client = db.connect().await?;
    let table: String = client
        .query_one(
            "SELECT format('herald_views.%I', checkpoint) FROM herald.projections
             WHERE name = $1 AND state = 'active'",
            &[&PROJECTION],
        )
        .await?
        .try_get(0)?;
    client
        .execute(
            &format!(
                "INSERT INTO direct.product (tenant, id, version, doc, f_price, f_status, created_at, updated_at)
                 SELECT tenant, id, version, doc, f_price, f_status, created_at, updated_at
                 FROM {table} WHERE tenant = $1"
            ),
            &[&LIST_TENANT],
        )
        .await
        .context("cannot copy the listing documents to the baseline")?;
    for table in ["direct.product", table.as_str()] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await?;
    }
    Ok(())
}

async fn view_ids(db: &BenchDatabase, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    ids(db, &format!("herald_views.\"{PROJECTION}\""), tenant).await
}

async fn baseline_ids(db: &BenchDatabase, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    ids(db, "direct.product", tenant).await
}

async fn ids(db: &BenchDatabase, table: &str, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    let client = db.connect().await?;
    let rows = client
        .query(
            &format!("SELECT id FROM {table} WHERE tenant = $1 ORDER BY id LIMIT $2"),
            &[&tenant, &SPREAD_DOCUMENTS],
        )
        .await?;
    if rows.is_empty() {
        bail!("no documents of {tenant} in {table} to update or read");
    }
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// The events appended to these documents so far (their versions, added up).
async fn stream_versions(db: &BenchDatabase, ids: &[Uuid]) -> anyhow::Result<i64> {
    let client = db.connect().await?;
    let streams: Vec<String> = ids.iter().map(|id| format!("{PROJECTION}.{id}")).collect();
    Ok(client
        .query_one(
            "SELECT coalesce(sum(version), 0)::bigint FROM herald.streams
             WHERE tenant = $1 AND stream_id = ANY($2)",
            &[&WRITE_TENANT, &streams],
        )
        .await?
        .try_get(0)?)
}

/// The top of the plan Postgres picks for W4's query on the view.
async fn list_plan(db: &BenchDatabase) -> anyhow::Result<String> {
    let client = db.connect().await?;
    let rows = client
        .query(
            &format!(
                "EXPLAIN SELECT * FROM herald_views.\"{PROJECTION}\"
                 WHERE tenant = '{LIST_TENANT}' AND NOT archived AND f_status = 'published'
                   AND f_price < 100
                 ORDER BY f_price DESC, id DESC LIMIT 51"
            ),
            &[],
        )
        .await?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()?;
    let scan = lines
        .iter()
        .find(|l| l.contains("Scan"))
        .map_or("?", |l| l.trim().trim_start_matches("->").trim());
    Ok(scan
        .split(" on ")
        .next()
        .unwrap_or(scan)
        .split("  (")
        .next()
        .unwrap_or(scan)
        .to_owned())
}

async fn fan_out(
    servers: &Servers,
    env: &HeraldEnv,
    db: &BenchDatabase,
    scale: &Scale,
) -> anyhow::Result<(crate::fanout::Fanout, Measured)> {
    let token = env.token(FANOUT_TENANT)?;
    let base = format!("http://{}", servers.herald_addr);
    let marker = reqwest::Client::new()
        .post(format!("{base}/v1/petstore/product"))
        .bearer_auth(&token)
        .json(&json!({"name": format!("Marker {}", random_lower(8)), "price": 1}))
        .send()
        .await?
        .error_for_status()
        .context("the marker event was refused")?;
    let position = marker
        .headers()
        .get("herald-position")
        .and_then(|v| v.to_str().ok())
        .context("the marker has no Herald-Position")?
        .to_owned();
    let subscribers = Subscribers::open(
        &format!("{base}/v1/petstore/product/events"),
        &token,
        &position,
        scale.subscribers,
    )
    .await?;
    let writes = load(
        servers.herald_addr,
        Create::new(Api::herald(&token)?, "w7"),
        Mode::Open {
            rate: scale.fanout_rate,
            max_connections: scale.connections,
        },
        scale,
        false,
    )
    .await?;
    let events = settled_events(&db.url, FANOUT_TENANT).await?;
    let fanout = subscribers.finish(events.saturating_sub(1)).await?;
    say(&format!(
        "  {} events written ({} acknowledged), {} deliveries lost",
        events.saturating_sub(1),
        writes.total.statuses.success,
        fanout.lost
    ));
    Ok((fanout, writes))
}

/// The tenant's event count once Herald has settled (no command still being handled).
async fn settled_events(database_url: &str, tenant: &str) -> anyhow::Result<u64> {
    settle(database_url).await?;
    let client = crate::setup::connect(database_url).await?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM herald.events WHERE tenant = $1",
            &[&tenant],
        )
        .await?
        .try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// W8's soak: creates at `rate` for `length`, reading Herald's memory every second; growth
/// is measured from the end of the first tenth (allocator and caches warmed) to the end.
async fn soak_run(
    servers: &Servers,
    scale: &Scale,
    api: Api,
    rate: f64,
    length: Duration,
) -> anyhow::Result<(Row, Value)> {
    let pid = servers.herald.pid().context("Herald has exited")?;
    let config = LoadConfig {
        target: Target::parse(&format!("http://{}/", servers.herald_addr))?,
        mode: Mode::Open {
            rate,
            max_connections: scale.connections,
        },
        warmup: Duration::ZERO,
        duration: length,
    };
    let (report, samples) = with_rss(
        pid,
        Duration::from_secs(1),
        run_load(&config, std::sync::Arc::new(Create::new(api, "soak"))),
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
