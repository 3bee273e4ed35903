//! The `herald` command line and the composition of Herald's roles into one process.
//!
//! # Layout
//!
//! - [`app`]: [`App`], an app's Rust commands and tasks; an app's own binary runs it.
//! - [`server`]: [`server::Herald`] builds the roles a process runs (api, handler, projector,
//!   worker) and runs them until shutdown, stopping the api first so in-flight requests still
//!   get their outcome.
//! - [`database`]: creating the configured database and migrating it.
//! - [`dev`]: `herald dev`, everything in one process with a local signing key and a ready token.
//! - [`replay`]: `herald replay`, rebuilding one projection's view with a progress bar.
//! - [`tail`]: `herald tail`, printing live events from a running Herald's event stream.
//! - [`new`]: `herald new`, a new app crate with its tests.
//! - [`failure`]: [`failure::Failure`], an error that ends the process with its own exit code.
//! - [`cli`]: the argument parser and the commands (`dev`, `serve`, `migrate`, `check`, `token`,
//!   `replay`, `tail`, `new`).

pub mod app;
pub mod cli;
pub mod database;
pub mod dev;
pub mod failure;
pub mod new;
pub mod replay;
pub mod server;
pub mod tail;

pub use app::App;
