//! An app's Rust code, registered in one place: the commands declared `kind: rust` and the
//! tasks declared `kind: rust`. An app's own binary is `App::new()…run()` (`run` is in
//! [`crate::cli`]), and then answers every
//! `herald` subcommand (`dev`, `serve --role …`, `check`, `migrate`, `replay`, `token`, `tail`)
//! with its code in place; the `herald` binary is the app without code.
//!
//! ```no_run
//! # use herald_bus::access::Principal;
//! # use herald_bus::document::DocumentState;
//! # use herald_bus::rust_command::{Emit, Refusal, RustCommand};
//! # struct Restock;
//! # impl RustCommand for Restock {
//! #     type Params = serde_json::Value;
//! #     fn decide(&self, _: &DocumentState, _: Self::Params, _: &Principal) -> Result<Vec<Emit>, Refusal> {
//! #         Ok(vec![])
//! #     }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     herald_cli::App::new()
//!         .command("petstore.product.restock", Restock)
//!         .run()
//!         .await
//! }
//! ```

use herald_bus::rust_command::{CollectionCommand, RustCommand, RustCommands};
use herald_workers::{Task, TaskRegistry};

/// The Rust code of an app's commands and tasks.
#[derive(Clone, Default)]
pub struct App {
    pub commands: RustCommands,
    pub tasks: TaskRegistry,
}

impl App {
    pub fn new() -> Self {
        Self::default()
    }

    /// The code of the command declared `kind: rust` as `<app>.<doc>.<command>`.
    #[must_use]
    pub fn command(mut self, name: &str, command: impl RustCommand) -> Self {
        self.commands.register(name, command);
        self
    }

    /// The code of the command declared `kind: rust` and `on: collection` as
    /// `<app>.<doc>.<command>`.
    #[must_use]
    pub fn collection_command(mut self, name: &str, command: impl CollectionCommand) -> Self {
        self.commands.register_collection(name, command);
        self
    }

    /// The code of the task declared `kind: rust` as `<app>.<task>`.
    #[must_use]
    pub fn task(mut self, name: &str, task: impl Task) -> Self {
        self.tasks.register(name, task);
        self
    }
}
