//! Issuing Herald commands from tasks, as a system actor: the `command` kind and custom tasks
//! use it. A command goes through the same pipeline as one from HTTP (recorded, published to
//! `HERALD_COMMANDS`, decided by a handler); its id derives from the task run, so a retried
//! run issues the same command, which runs once.

use std::time::Duration;

use chrono::Utc;
use herald_bus::access::Principal;
use herald_bus::command::{Action, CommandEnvelope, Outcome, Success, request_hash};
use herald_bus::ids::{CommandId, TenantId};
use herald_bus::nats::Bus;
use herald_bus::store::{EventStore, PgStore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::TaskError;

/// A command a task issues.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub app: String,
    pub doc: String,
    /// The document; a new id is made for a create without one.
    pub document_id: Option<Uuid>,
    pub action: Action,
    /// The roles the system actor holds (`admin` passes every ACL).
    pub roles: Vec<String>,
}

/// What a task's commands carry from the run that issues them.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub tenant: String,
    /// The actor's `sub`: `task:<app>.<name>`.
    pub actor: String,
    /// The run's id: with the round and `sequence`, the command's id, so a retried attempt
    /// issues the same command, and a run retried from the dead letters a new one.
    pub task_id: Uuid,
    pub round: i32,
    pub correlation_id: Uuid,
    /// The triggering event (or the run, when enqueued by code).
    pub causation_id: Uuid,
    pub traceparent: Option<String>,
}

/// Issues commands for task runs.
#[derive(Clone)]
pub struct Commander {
    bus: Bus,
    store: PgStore,
}

/// How often a waiting run looks for its command's outcome.
const POLL: Duration = Duration::from_millis(20);

impl Commander {
    pub fn new(bus: Bus, store: PgStore) -> Self {
        Self { bus, store }
    }

    /// Issues the `sequence`-th command of a run and waits, until `deadline`, for its outcome.
    /// A rejection is permanent (the same command would be rejected again); no outcome in
    /// time, or a bus or database failure, is worth a retry.
    pub async fn issue(
        &self,
        lineage: &Lineage,
        sequence: u32,
        request: CommandRequest,
        deadline: Instant,
    ) -> Result<Success, TaskError> {
        let tenant = TenantId::parse(&lineage.tenant)
            .ok_or_else(|| TaskError::Permanent(format!("bad tenant `{}`", lineage.tenant)))?;
        let id = CommandId(Uuid::new_v5(
            &lineage.task_id,
            format!("command {}.{sequence}", lineage.round).as_bytes(),
        ));
        let body = serde_json::to_vec(&request.action)
            .map_err(|e| TaskError::Permanent(format!("the command cannot be encoded: {e}")))?;
        let command = CommandEnvelope {
            id,
            app: request.app.clone(),
            doc: request.doc.clone(),
            document_id: request
                .document_id
                .unwrap_or_else(|| Uuid::new_v5(&id.0, b"document")),
            request_hash: request_hash("TASK", &format!("{}.{}", request.app, request.doc), &body),
            action: request.action,
            expected_version: None,
            principal: Principal {
                sub: Some(lineage.actor.clone()),
                tenant,
                roles: request.roles,
            },
            idempotency_key: None,
            correlation_id: lineage.correlation_id,
            causation_id: Some(lineage.causation_id),
            traceparent: lineage.traceparent.clone(),
            submitted_at: Utc::now(),
        };
        let retry = |what: &str, error: &dyn std::fmt::Display| {
            TaskError::Retry(format!("{what}: {error}"))
        };
        self.store
            .accept_command(&command)
            .await
            .map_err(|e| retry("recording the command failed", &e))?;
        self.bus
            .publish_command(&command, None)
            .await
            .map_err(|e| retry("publishing the command failed", &e))?;
        loop {
            let stored = self
                .store
                .load_command(id)
                .await
                .map_err(|e| retry("reading the command's outcome failed", &e))?;
            match stored.and_then(|s| s.outcome) {
                Some(Outcome::Succeeded(success)) => return Ok(success),
                Some(Outcome::Rejected(rejection)) => {
                    return Err(TaskError::Permanent(format!(
                        "the command was rejected ({:?}): {}",
                        rejection.code, rejection.detail
                    )));
                }
                None if Instant::now() + POLL > deadline => {
                    return Err(TaskError::Retry(format!(
                        "command {id} had no outcome before the task's timeout"
                    )));
                }
                None => tokio::time::sleep(POLL).await,
            }
        }
    }
}
