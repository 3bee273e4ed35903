//! `herald-chaos`: runs the fault scenarios and prints their table; exits 1 when any failed.

use clap::Parser;
use herald_chaos::cli::RunArgs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if herald_chaos::run::run(RunArgs::parse()).await? {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
