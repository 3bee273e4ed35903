//! The command line of `herald-bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "herald-bench",
    version,
    about = "Herald against a direct axum + Postgres baseline, workload by workload"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every workload and print the table (what `scripts/bench` does).
    Run(RunArgs),
    /// Serve the direct baseline only (the harness starts it itself).
    Baseline(BaselineArgs),
    /// Attack a running Herald with stalled connections from one address and measure a normal
    /// client on another.
    Hostile(crate::hostile::HostileArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// An admin URL of the Postgres server; the run creates and drops its own database there.
    #[arg(
        long,
        env = "HERALD_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
    #[arg(
        long,
        env = "HERALD_BENCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// A smaller, shorter run: 100 000 documents and 5-second windows.
    #[arg(long)]
    pub quick: bool,
    /// Documents seeded for the list and rebuild workloads (W4, W6).
    #[arg(long)]
    pub documents: Option<u64>,
    /// Length of each measured window (e.g. `15s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub window: Option<Duration>,
    /// Also run the W8 soak at half the W1 rate for this long (e.g. `10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub soak: Option<Duration>,
    /// Where each run writes its folder (table, JSON, process logs).
    #[arg(long, default_value = "results/bench")]
    pub out: PathBuf,
    /// Keep the run's database and NATS streams instead of removing them.
    #[arg(long)]
    pub keep: bool,
    /// Also run the FastAPI peer (bench/peers) on W1–W4, with this Python (one that has the
    /// packages of bench/peers/requirements.txt; `scripts/bench --peers` makes one).
    #[arg(long, value_name = "PYTHON")]
    pub peers: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    #[arg(
        long,
        env = "HERALD_BENCH_BASELINE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: String,
    #[arg(long, default_value_t = 16)]
    pub pool_size: usize,
}
