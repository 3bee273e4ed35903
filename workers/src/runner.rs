//! The worker role: pulls runs from `HERALD_TASKS`, runs each by its kind within its timeout
//! and its task's concurrency limit, and records every attempt in `herald.tasks`.
//!
//! Success is acknowledged. A retryable failure is negatively acknowledged with the task's
//! back-off (`NakWithDelay`), until its attempts are spent; then, or on a permanent failure,
//! the run is dead: parked in `herald.tasks` and on the dead-letter stream, and terminated in
//! JetStream so it blocks nothing. Attempts are counted in Postgres, not by JetStream's
//! delivery count, so a retry from the dead letters starts afresh and a worker killed mid-run
//! still used an attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use herald_bus::command::Action;
use herald_bus::nats::{Bus, consume};
use herald_bus::store::PgStore;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::commander::{CommandRequest, Commander, Lineage};
use crate::declare::{
    CommandTemplate, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, RetryPolicy, TaskDecl, TaskKind, Tasks,
    TemplateAction,
};
use crate::queue::{consumer, dead_subject, ensure_dead_stream};
use crate::runs::{self, Finish, TaskRow};
use crate::task::{TaskCommands, TaskContext, TaskEnvelope, TaskError, TaskRegistry};
use crate::webhook::{self, Delivery, WebhookSecret};

/// How long a run may go without acknowledging before JetStream redelivers it; a run in
/// progress acknowledges every third of it.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a run may go on after shutdown begins before it is released to another worker.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "task `{task}` uses webhook secret `{secret}`, which settings do not define (webhooks.secrets.{secret}, HERALD_WEBHOOKS__SECRETS__{upper})"
    )]
    MissingSecret {
        task: String,
        secret: String,
        upper: String,
    },
    #[error("webhook secret `{name}` is not valid: {reason}")]
    BadSecret { name: String, reason: String },
    #[error(
        "task `{0}` is declared `kind: rust` but no implementation is registered under that name"
    )]
    Unregistered(String),
    #[error(transparent)]
    Bus(#[from] herald_bus::nats::BusError),
    #[error("the webhook client cannot be built")]
    Client(#[source] reqwest::Error),
}

/// Everything runs need, shared by a worker process.
pub struct Worker {
    bus: Bus,
    store: PgStore,
    tasks: Arc<Tasks>,
    rust: Arc<TaskRegistry>,
    secrets: HashMap<String, WebhookSecret>,
    http: reqwest::Client,
    /// Runs at once per task in this process.
    concurrency: HashMap<String, usize>,
    commander: Commander,
}

impl Worker {
    /// Checks that every declared task can run here: its webhook secret is configured, its
    /// Rust implementation registered.
    pub fn new(
        bus: Bus,
        store: PgStore,
        tasks: Arc<Tasks>,
        rust: Arc<TaskRegistry>,
        secrets: &HashMap<String, secrecy::SecretString>,
    ) -> Result<Self, WorkerError> {
        use secrecy::ExposeSecret;
        let mut parsed = HashMap::new();
        let mut concurrency = HashMap::new();
        for decl in tasks.iter() {
            let name = decl.full_name();
            match &decl.kind {
                TaskKind::Webhook { secret, .. } => {
                    let text = secrets
                        .get(secret)
                        .ok_or_else(|| WorkerError::MissingSecret {
                            task: name.clone(),
                            secret: secret.clone(),
                            upper: secret.to_uppercase(),
                        })?;
                    let key = WebhookSecret::parse(text.expose_secret()).map_err(|reason| {
                        WorkerError::BadSecret {
                            name: secret.clone(),
                            reason,
                        }
                    })?;
                    parsed.insert(secret.clone(), key);
                }
                TaskKind::Rust if rust.get(&name).is_none() => {
                    return Err(WorkerError::Unregistered(name));
                }
                TaskKind::Rust | TaskKind::Command(_) => {}
            }
            concurrency.insert(name, decl.concurrency);
        }
        // Registered but not declared: enqueued by code, with the default limits.
        for name in rust.names() {
            concurrency
                .entry(name.to_owned())
                .or_insert(DEFAULT_CONCURRENCY);
        }
        let http = webhook::client().map_err(WorkerError::Client)?;
        Ok(Self {
            commander: Commander::new(bus.clone(), store.clone()),
            bus,
            store,
            tasks,
            rust,
            secrets: parsed,
            http,
            concurrency,
        })
    }

    /// The back-off and timeout of a task: its declaration's, or the defaults for a task only
    /// registered in Rust.
    fn policy(&self, name: &str) -> (RetryPolicy, Duration, Option<&TaskDecl>) {
        match self.tasks.get(name) {
            Some(decl) => (decl.retry.clone(), decl.timeout, Some(decl)),
            None => (RetryPolicy::default(), DEFAULT_TIMEOUT, None),
        }
    }
}

/// Runs tasks until `shutdown`; runs in flight get [`SHUTDOWN_GRACE`] to finish, then are
/// released to another worker.
/// Runs every task this worker knows (declared or registered in Rust), each from its own
/// consumer with its own concurrency, until `shutdown`.
pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    ensure_dead_stream(&worker.bus).await?;
    let mut pulls = tokio::task::JoinSet::new();
    for (name, concurrency) in worker.concurrency.clone() {
        let consumer = consumer(&worker.bus, &name, ACK_WAIT).await?;
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        pulls.spawn(async move {
            consume(&consumer, concurrency, &shutdown, |message| {
                let (worker, shutdown) = (worker.clone(), shutdown.clone());
                async move { handle(&worker, message, shutdown).await }
            })
            .await;
        });
    }
    info!(tasks = pulls.len(), "worker started");
    // A worker with no task to run still runs until shutdown, like every role.
    shutdown.cancelled().await;
    while pulls.join_next().await.is_some() {}
    info!("worker stopped");
    Ok(())
}

/// Keeps a message alive (in-progress acks) while `work` runs, and, when given a run, its
/// heartbeat in `herald.tasks`, so another copy of the message does not take the run over.
async fn alive<F: std::future::Future>(
    worker: &Worker,
    message: &Message,
    run: Option<&TaskRow>,
    work: F,
) -> F::Output {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(ACK_WAIT / 3);
    tick.tick().await;
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = tick.tick() => {
                drop(message.ack_with(AckKind::Progress).await);
                if let (Some(run), Ok(client)) = (run, worker.store.pool().get().await) {
                    drop(runs::heartbeat(&**client, run).await);
                }
            }
        }
    }
}

async fn handle(worker: &Worker, message: Message, shutdown: CancellationToken) {
    // The message names the run; its payload is read from the run's row.
    let named: TaskEnvelope = match serde_json::from_slice(&message.payload) {
        Ok(named) => named,
        Err(error) => {
            warn!(%error, "dropping an unreadable task message");
            acknowledge(&message, AckKind::Term).await;
            return;
        }
    };
    let attempt = match worker.store.pool().get().await {
        Ok(client) => runs::start_attempt(&**client, named.id, named.round, ACK_WAIT).await,
        Err(error) => Err(error.into()),
    };
    let row = match attempt {
        Ok(runs::Attempt::Start(row)) => *row,
        Ok(runs::Attempt::HeldElsewhere) => {
            // Its holder may have died: look again once its heartbeat can have gone stale,
            // rather than leave the run to the sweep for stranded runs.
            acknowledge(&message, AckKind::Nak(Some(ACK_WAIT / 3))).await;
            return;
        }
        Ok(runs::Attempt::Over) => {
            acknowledge(&message, AckKind::Ack).await;
            return;
        }
        Err(error) => {
            warn!(task_id = %named.id, %error, "cannot record the attempt; retrying soon");
            acknowledge(&message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
    };
    let envelope = TaskEnvelope::from(&row);
    let (retry, timeout, decl) = worker.policy(&envelope.name);
    // The run's own limit: a declaration changed since it was made does not change it.
    let max_attempts = u32::try_from(row.max_attempts).unwrap_or(1);
    let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
    let started = Instant::now();
    let result = if attempt > max_attempts {
        Err(TaskError::Permanent(format!(
            "attempt {attempt} of at most {max_attempts}: an earlier attempt never finished"
        )))
    } else {
        let run = run_attempt(worker, decl, &envelope, &row, attempt, timeout, &shutdown);
        let released = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let result = tokio::select! {
            result = alive(worker, &message, Some(&row), run) => result,
            () = released => {
                release(worker, &message, &row).await;
                return;
            }
        };
        // A run that gave up because the worker is stopping is handed on, not counted.
        if matches!(result, Err(TaskError::Retry(_))) && shutdown.is_cancelled() {
            release(worker, &message, &row).await;
            return;
        }
        result
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let outcome = AttemptEnd {
        attempt,
        max_attempts,
        duration_ms,
    };
    settle(worker, &message, &row, &retry, outcome, result).await;
}

/// One attempt of a run, by its kind, within its timeout.
async fn run_attempt(
    worker: &Worker,
    decl: Option<&TaskDecl>,
    envelope: &TaskEnvelope,
    row: &TaskRow,
    attempt: u32,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), TaskError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let run = Attempt {
        worker,
        envelope,
        row,
        attempt,
        timeout,
        deadline,
        shutdown,
    };
    let work = async {
        match decl.map(|d| &d.kind) {
            Some(TaskKind::Webhook { url, secret }) => run.deliver_webhook(url, secret).await,
            Some(TaskKind::Command(template)) => run.issue_command(template).await,
            Some(TaskKind::Rust) | None => run.run_rust().await,
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(TaskError::Retry(format!(
            "timed out after {} ms",
            timeout.as_millis()
        ))),
    }
}

/// One attempt at a run, for each kind of task to carry out.
struct Attempt<'a> {
    worker: &'a Worker,
    envelope: &'a TaskEnvelope,
    row: &'a TaskRow,
    attempt: u32,
    timeout: Duration,
    deadline: tokio::time::Instant,
    shutdown: &'a CancellationToken,
}

impl Attempt<'_> {
    /// Where the commands the attempt issues come from: the task, and the event behind it.
    fn lineage(&self) -> Lineage {
        let (envelope, row) = (self.envelope, self.row);
        Lineage {
            tenant: envelope.tenant.clone(),
            actor: format!("task:{}", envelope.name),
            task_id: row.id,
            round: row.round,
            correlation_id: envelope.payload["metadata"]["correlation_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .unwrap_or(row.id),
            causation_id: row.event_id.unwrap_or(row.id),
            traceparent: envelope.traceparent.clone(),
        }
    }

    async fn deliver_webhook(&self, url: &str, secret: &str) -> Result<(), TaskError> {
        let key = self
            .worker
            .secrets
            .get(secret)
            .ok_or_else(|| TaskError::Permanent(format!("no webhook secret `{secret}`")))?;
        let body = serde_json::to_vec(&self.envelope.payload)
            .map_err(|e| TaskError::Permanent(format!("the event cannot be encoded: {e}")))?;
        let id = self.row.id.to_string();
        let delivery = Delivery {
            url,
            secret: key,
            id: &id,
            body: body.into(),
            timeout: self.timeout,
            traceparent: self.envelope.traceparent.as_deref(),
        };
        webhook::deliver(&self.worker.http, delivery).await
    }

    async fn issue_command(&self, template: &CommandTemplate) -> Result<(), TaskError> {
        let (document_id, body) = template
            .render(&self.envelope.payload)
            .map_err(TaskError::Permanent)?;
        let action = match template.action {
            TemplateAction::Create => Action::Create { fields: body },
            TemplateAction::Update => Action::Update { patch: body },
            TemplateAction::Archive => Action::Archive,
            TemplateAction::Restore => Action::Restore,
        };
        let request = CommandRequest {
            app: template.app.clone(),
            doc: template.doc.clone(),
            document_id,
            action,
            roles: template.roles.clone(),
        };
        let lineage = self.lineage();
        let issued = self
            .worker
            .commander
            .issue(&lineage, 0, request, self.deadline);
        issued.await.map(|_| ())
    }

    async fn run_rust(&self) -> Result<(), TaskError> {
        let name = &self.envelope.name;
        let task = self.worker.rust.get(name).ok_or_else(|| {
            TaskError::Permanent(format!("no implementation is registered for task `{name}`"))
        })?;
        let context = TaskContext {
            task: self.envelope.clone(),
            attempt: u64::from(self.attempt),
            cancel: self.shutdown.child_token(),
            commands: TaskCommands {
                commander: Some(self.worker.commander.clone()),
                lineage: self.lineage(),
                deadline: self.deadline,
                issued: AtomicU32::new(0),
            },
        };
        task.run(context).await
    }
}

/// Where an attempt stands when it ends.
struct AttemptEnd {
    attempt: u32,
    max_attempts: u32,
    duration_ms: i64,
}

/// Records how the attempt ended and tells JetStream.
async fn settle(
    worker: &Worker,
    message: &Message,
    row: &TaskRow,
    retry: &RetryPolicy,
    outcome: AttemptEnd,
    result: Result<(), TaskError>,
) {
    let AttemptEnd {
        attempt,
        max_attempts,
        duration_ms,
    } = outcome;
    let (finish, ack, error) = match &result {
        Ok(()) => (Finish::Succeeded, AckKind::Ack, None),
        Err(TaskError::Retry(reason)) if attempt < max_attempts => {
            let delay = retry.delay(attempt, rand::rng().random::<f64>());
            let next_attempt_at =
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            warn!(task_id = %row.id, task = %row.name, attempt, %reason, delay_ms = delay.as_millis(), "task failed; will retry");
            (
                Finish::Retrying {
                    error: reason,
                    next_attempt_at,
                },
                AckKind::Nak(Some(delay)),
                None,
            )
        }
        Err(TaskError::Retry(reason) | TaskError::Permanent(reason)) => {
            error!(task_id = %row.id, task = %row.name, attempt, %reason, "task is dead");
            (Finish::Dead { error: reason }, AckKind::Term, Some(reason))
        }
    };
    let recorded = match worker.store.pool().get().await {
        Ok(client) => runs::finish_attempt(&**client, row, duration_ms, finish).await,
        Err(error) => Err(error.into()),
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            // Another copy of the message took the run over: it owns the outcome.
            acknowledge(message, AckKind::Ack).await;
            return;
        }
        Err(error) => {
            // The outcome is lost: let the run come back rather than end it unrecorded.
            warn!(task_id = %row.id, %error, "cannot record the attempt's outcome; it will run again");
            acknowledge(message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
    }
    if let Some(reason) = error {
        let letter = serde_json::json!({
            "id": row.id, "name": row.name, "tenant": row.tenant, "attempts": attempt,
            "error": reason, "event_id": row.event_id, "payload": row.payload,
        });
        let published = async {
            worker
                .bus
                .jetstream
                .publish(
                    dead_subject(&worker.bus, &row.name),
                    letter.to_string().into(),
                )
                .await?
                .await
                .map_err(async_nats::Error::from)
        };
        if let Err(error) = published.await {
            warn!(task_id = %row.id, %error, "the dead letter was not published; the run stays dead in herald.tasks");
        }
    }
    acknowledge(message, ack).await;
}

/// Gives a run back at shutdown: its attempt is not counted and another worker takes it now.
async fn release(worker: &Worker, message: &Message, row: &TaskRow) {
    let released = match worker.store.pool().get().await {
        Ok(client) => runs::release_attempt(&**client, row).await,
        Err(error) => Err(error.into()),
    };
    if let Err(error) = released {
        warn!(task_id = %row.id, %error, "cannot release the run's attempt");
    }
    info!(task_id = %row.id, "released a run at shutdown");
    acknowledge(message, AckKind::Nak(None)).await;
}

/// Acknowledges and waits for the server's confirmation: a lost nak would otherwise leave the
/// run waiting out the ack deadline instead of its back-off.
async fn acknowledge(message: &Message, ack: AckKind) {
    if let Err(error) = message.double_ack_with(ack).await {
        warn!(%error, "task acknowledgement failed; it may run again");
    }
}
