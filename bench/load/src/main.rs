//! `herald-load`: run one load test from the command line and print its summary.

use anyhow::Context;
use clap::Parser;
use herald_load::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = cli.json.clone();
    let (config, source) = cli.into_run().context("invalid arguments")?;
    let report = herald_load::run_load(&config, source)
        .await
        .context("load run failed")?;
    println!("{}", report.summary_line());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(&path, text)
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(())
}
