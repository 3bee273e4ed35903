use std::process::ExitCode;

// As in the `herald` binary: mimalloc hands freed memory back instead of keeping it per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The petstore example's binary: `herald` with the example's code.
#[tokio::main]
async fn main() -> ExitCode {
    herald_petstore::app().run().await
}
