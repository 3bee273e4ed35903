//! What a task is: a named implementation, the envelope it receives, and how it can fail.

use std::collections::HashMap;
use std::sync::Arc;

use herald_bus::command::Success;
use serde::{Deserialize, Serialize};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::commander::{CommandRequest, Commander, Lineage};
pub use crate::error::TaskError;

/// One run of a task, as published to the task stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    /// The run's id (its row in `herald.tasks`); with `round`, the `Nats-Msg-Id`.
    pub id: Uuid,
    /// `<app>.<task>` as declared in `tasks.yaml`, or the name a Rust task was registered under.
    pub name: String,
    pub tenant: String,
    /// The triggering event (`id`, `type`, `document_id`, `version`, `time`, `actor`, `data`,
    /// `tenant`, `metadata`), or what the code that enqueued the run gave.
    pub payload: Value,
    /// How many times the run was requeued from the dead letters.
    #[serde(default)]
    pub round: i32,
    /// The W3C trace context of the command behind the triggering event.
    #[serde(default)]
    pub traceparent: Option<String>,
}

impl From<&crate::runs::TaskRow> for TaskEnvelope {
    fn from(row: &crate::runs::TaskRow) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            tenant: row.tenant.clone(),
            payload: row.payload.clone(),
            round: row.round,
            traceparent: row.traceparent.clone(),
        }
    }
}

/// What a run gets to work with.
pub struct TaskContext {
    pub task: TaskEnvelope,
    /// 1 for the first attempt.
    pub attempt: u64,
    /// Cancelled when the worker shuts down: finish quickly or return `Retry`.
    pub cancel: CancellationToken,
    /// Issues Herald commands as this task's system actor.
    pub commands: TaskCommands,
}

/// Issuing commands from a run: each carries the run's correlation id and the triggering
/// event as its cause, and the n-th command of a run has the same id in every attempt, so a
/// retried run does not repeat what an earlier attempt did.
pub struct TaskCommands {
    pub(crate) commander: Option<Commander>,
    pub(crate) lineage: Lineage,
    pub(crate) deadline: tokio::time::Instant,
    pub(crate) issued: std::sync::atomic::AtomicU32,
}

impl TaskCommands {
    /// Issues a command and waits (within the task's timeout) for its outcome.
    pub async fn issue(&self, request: CommandRequest) -> Result<Success, TaskError> {
        let Some(commander) = &self.commander else {
            return Err(TaskError::Permanent(
                "this worker cannot issue commands".into(),
            ));
        };
        let sequence = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        commander
            .issue(&self.lineage, sequence, request, self.deadline)
            .await
    }
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

    /// The names tasks are registered under.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }
}
