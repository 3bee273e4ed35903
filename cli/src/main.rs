use std::process::ExitCode;

// mimalloc rather than the system allocator: allocation is a visible share of each request's
// CPU, and it hands freed memory back to the system instead of keeping it per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `herald` binary: an app without Rust code of its own.
#[tokio::main]
async fn main() -> ExitCode {
    herald_cli::App::new().run().await
}
