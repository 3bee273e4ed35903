use clap::Parser;
use herald_cli::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = cli.settings()?;
    herald_bus::telemetry::init(&settings.log);
    cli.run(settings).await
}
