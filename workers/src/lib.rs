//! The task runtime: *tasks* are declared in `apps/<app>/tasks.yaml` (or registered in Rust),
//! triggered by events, published to `HERALD_TASKS` (`<prefix>.task.<name>`) and run by worker
//! processes with explicit acks, retries with exponential back-off and jitter, and dead
//! letters.
//!
//! # Layout
//!
//! - [`declare`]: the declarations of `tasks.yaml` ([`declare::TaskDecl`]), read and checked
//!   against the documents with the rest of the apps folder by [`declare::load`], which gives
//!   the document `Registry` and the declared [`declare::Tasks`].
//! - [`task`]: the [`task::Task`] trait a team implements, its context and outcome.
//! - [`queue`]: the task stream, its consumer, and [`queue::enqueue`].
//! - [`runner`]: pulls runs and runs each by its kind (webhook, command, Rust), recording
//!   every attempt; dead runs go to the dead letters.
//! - [`triggers`]: turns matching events of the ordered log into runs, exactly once.
//! - [`runs`]: the run rows in `herald.tasks`, the source of truth for their state.
//! - [`commander`]: issuing Herald commands from runs, as a system actor.
//! - [`error`]: [`TaskError`], how a run fails (retryable or permanent).
//! - [`webhook`]: signs and posts one Standard Webhooks delivery, telling retryable failures
//!   from permanent ones.

pub mod commander;
pub mod declare;
pub mod error;
pub mod queue;
pub mod runner;
pub mod runs;
pub mod task;
pub mod triggers;
pub mod webhook;

pub use commander::CommandRequest;
pub use queue::enqueue;
pub use runner::{Worker, run};
pub use task::{Task, TaskCommands, TaskContext, TaskEnvelope, TaskError, TaskRegistry};

/// The task runs (`herald.tasks`) and where each trigger starts (`herald.task_triggers`).
pub const MIGRATIONS: &[herald_bus::store::Migration] = &[
    herald_bus::store::Migration {
        version: 3,
        sql: include_str!("../migrations/0003_tasks.sql"),
    },
    herald_bus::store::Migration {
        version: 4,
        sql: include_str!("../migrations/0004_task_trigger_last_seen.sql"),
    },
];
