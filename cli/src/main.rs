use std::process::ExitCode;

use clap::Parser;
use herald_cli::cli::Cli;
use herald_cli::failure::Failure;

// mimalloc rather than the system allocator: allocation is a visible share of each request's
// CPU, and it hands freed memory back to the system instead of keeping it per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.settings() {
        Ok(settings) => {
            herald_bus::telemetry::init(&settings.log);
            cli.run(settings).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes, one line: what failed and why, without a backtrace.
            eprintln!("error: {error:#}");
            error
                .downcast_ref::<Failure>()
                .map_or(ExitCode::FAILURE, |failure| ExitCode::from(failure.code))
        }
    }
}
