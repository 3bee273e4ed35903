//! What a task is: a named implementation, the envelope it receives, and how it can fail.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One enqueued run of a task, as published to the task stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    /// Also the `Nats-Msg-Id`, so enqueueing the same task twice runs it once.
    pub id: Uuid,
    pub name: String,
    pub tenant: String,
    pub payload: Value,
}

/// Why a run failed, which decides whether it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Worth another attempt after a back-off (a timeout, a 5xx, a lost connection).
    #[error("retryable: {0}")]
    Retry(String),
    /// Will never succeed (bad input, a 4xx): stop now.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a run gets to work with.
pub struct TaskContext {
    pub task: TaskEnvelope,
    /// 1 for the first attempt.
    pub attempt: u64,
    /// Cancelled when the worker shuts down: finish quickly or return `Retry`.
    pub cancel: CancellationToken,
}

/// A background task implemented in Rust.
///
/// ```no_run
/// use herald_workers::{Task, TaskContext, TaskError};
///
/// struct SendWelcome;
///
/// #[async_trait::async_trait]
/// impl Task for SendWelcome {
///     async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
///         let email = ctx.task.payload["email"].as_str().ok_or(TaskError::Permanent("no email".into()))?;
///         println!("welcome, {email}");
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Task: Send + Sync + 'static {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError>;
}

/// The tasks a worker process can run, by name.
#[derive(Clone, Default)]
pub struct TaskRegistry {
    tasks: HashMap<String, Arc<dyn Task>>,
}

impl TaskRegistry {
    pub fn register(&mut self, name: impl Into<String>, task: impl Task) -> &mut Self {
        self.tasks.insert(name.into(), Arc::new(task));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Task>> {
        self.tasks.get(name).cloned()
    }
}
