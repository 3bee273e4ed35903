//! The task runtime: *tasks* are units of background work published to `HERALD_TASKS`
//! (`<prefix>.task.<name>`) and run by worker processes with explicit acks and bounded
//! retries with exponential back-off.
//!
//! # Layout
//!
//! - [`task`]: the [`task::Task`] trait a team implements, its context and outcome.
//! - [`queue`]: the task stream, its consumer, and [`queue::enqueue`].
//! - [`runner`]: pulls tasks and runs the registered implementation for each.

pub mod queue;
pub mod runner;
pub mod task;

pub use queue::enqueue;
pub use runner::run;
pub use task::{Task, TaskContext, TaskEnvelope, TaskError, TaskRegistry};
