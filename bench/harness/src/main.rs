//! `herald-bench`: runs the benchmark, or serves the direct baseline for it.

use clap::Parser;
use herald_bench::baseline::Baseline;
use herald_bench::cli::{Cli, Command};

// The allocator Herald runs with, so the baseline is measured on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => herald_bench::run::run(args).await,
        Command::Hostile(args) => herald_bench::hostile::run(args).await,
        Command::Baseline(args) => {
            let baseline = Baseline::build(&args.database_url, args.pool_size, args.addr).await?;
            println!("baseline listening on {}", baseline.local_addr()?);
            baseline
                .run_until_stopped(async {
                    drop(tokio::signal::ctrl_c().await);
                })
                .await
        }
    }
}
