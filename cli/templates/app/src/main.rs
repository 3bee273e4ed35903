//! The `{{name}}` binary: every `herald` subcommand (`dev`, `serve`, `check`, `migrate`,
//! `replay`, `token`, `tail`) with the app's code in place.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    {{name}}::app().run().await
}
