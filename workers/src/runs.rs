//! Task rows (`herald.tasks`): what each run came to, and the outbox of runs to publish.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use herald_bus::store::StoreError;

/// The states of a run, as stored and as `GET /v1/tasks/{id}` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Dead,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Dead => "dead",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => TaskState::Queued,
            "running" => TaskState::Running,
            "retrying" => TaskState::Retrying,
            "succeeded" => TaskState::Succeeded,
            "dead" => TaskState::Dead,
            other => return Err(StoreError::Corrupt(format!("task state `{other}`"))),
        })
    }

    /// Whether the run has ended: a redelivered message of it is only acknowledged.
    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Dead)
    }
}

/// One run, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant: String,
    pub name: String,
    pub state: TaskState,
    #[serde(skip)]
    pub payload: Value,
    pub event_id: Option<Uuid>,
    #[serde(skip)]
    pub traceparent: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub round: i32,
    pub duration_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, tenant, name, state, payload, event_id, traceparent, attempts, \
     max_attempts, last_error, next_attempt_at, round, duration_ms, created_at, updated_at, \
     finished_at";

fn row_of(row: &tokio_postgres::Row) -> Result<TaskRow, StoreError> {
    Ok(TaskRow {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        name: row.try_get(2)?,
        state: TaskState::parse(row.try_get(3)?)?,
        payload: row.try_get(4)?,
        event_id: row.try_get(5)?,
        traceparent: row.try_get(6)?,
        attempts: row.try_get(7)?,
        max_attempts: row.try_get(8)?,
        last_error: row.try_get(9)?,
        next_attempt_at: row.try_get(10)?,
        round: row.try_get(11)?,
        duration_ms: row.try_get(12)?,
        created_at: row.try_get(13)?,
        updated_at: row.try_get(14)?,
        finished_at: row.try_get(15)?,
    })
}

/// The run a statement returning [`COLUMNS`] found, if any.
async fn one(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<TaskRow>, StoreError> {
    client
        .query_opt(sql, params)
        .await?
        .as_ref()
        .map(row_of)
        .transpose()
}

/// The runs a statement returning [`COLUMNS`] found.
async fn many(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<TaskRow>, StoreError> {
    client
        .query(sql, params)
        .await?
        .iter()
        .map(row_of)
        .collect()
}

/// A run to create.
pub struct NewTask<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub name: &'a str,
    pub payload: &'a Value,
    pub event_id: Option<Uuid>,
    pub traceparent: Option<&'a str>,
    pub max_attempts: i32,
}

/// Creates the run unless it exists (the id is derived from what triggered it, so a trigger
/// read twice creates it once). Returns whether it was created.
pub async fn insert(client: &impl GenericClient, task: &NewTask<'_>) -> Result<bool, StoreError> {
    let created = client
        .execute(
            "INSERT INTO herald.tasks
                 (id, tenant, name, state, payload, event_id, traceparent, max_attempts)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7)
             ON CONFLICT (id) DO NOTHING",
            &[
                &task.id,
                &task.tenant,
                &task.name,
                task.payload,
                &task.event_id,
                &task.traceparent,
                &task.max_attempts,
            ],
        )
        .await?;
    Ok(created == 1)
}

pub async fn load(client: &impl GenericClient, id: Uuid) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM herald.tasks WHERE id = $1");
    one(client, &sql, &[&id]).await
}

/// Up to `limit` runs waiting to be published, oldest first.
pub async fn pending(client: &impl GenericClient, limit: i64) -> Result<Vec<TaskRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM herald.tasks WHERE publish_pending ORDER BY created_at LIMIT $1"
    );
    many(client, &sql, &[&limit]).await
}

/// Marks runs as stored in JetStream (in the round that was published).
pub async fn published(
    client: &impl GenericClient,
    runs: &[(Uuid, i32)],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = runs.iter().map(|(id, _)| *id).collect();
    let rounds: Vec<i32> = runs.iter().map(|(_, round)| *round).collect();
    client
        .execute(
            "UPDATE herald.tasks t SET publish_pending = false
             FROM unnest($1::uuid[], $2::int[]) AS p(id, round)
             WHERE t.id = p.id AND t.round = p.round",
            &[&ids, &rounds],
        )
        .await?;
    Ok(())
}

/// What a delivered message of a run may do.
#[derive(Debug)]
pub enum Attempt {
    /// Run it: the attempt is counted, and this is the run's row.
    Start(Box<TaskRow>),
    /// Another copy of the message holds the run, and its heartbeat is younger than
    /// `stale_after`; once its worker is gone, the heartbeat goes stale.
    HeldElsewhere,
    /// Nothing to run: the run ended, was requeued in a later round, or was never recorded.
    Over,
}

/// Starts an attempt of the run in `round`: counts it and returns the row, unless the run is
/// held by another copy or over.
pub async fn start_attempt(
    client: &impl GenericClient,
    id: Uuid,
    round: i32,
    stale_after: std::time::Duration,
) -> Result<Attempt, StoreError> {
    let sql = format!(
        "UPDATE herald.tasks SET state = 'running', attempts = attempts + 1,
                next_attempt_at = NULL, updated_at = now()
         WHERE id = $1 AND round = $2
           AND (state IN ('queued', 'retrying')
                OR (state = 'running' AND updated_at < now() - make_interval(secs => $3)))
         RETURNING {COLUMNS}"
    );
    if let Some(row) = one(client, &sql, &[&id, &round, &stale_after.as_secs_f64()]).await? {
        return Ok(Attempt::Start(Box::new(row)));
    }
    let held = client
        .query_opt(
            "SELECT 1 FROM herald.tasks WHERE id = $1 AND round = $2 AND state = 'running'",
            &[&id, &round],
        )
        .await?
        .is_some();
    Ok(if held {
        Attempt::HeldElsewhere
    } else {
        Attempt::Over
    })
}

/// Tells other copies of the run that this attempt is alive.
pub async fn heartbeat(client: &impl GenericClient, run: &TaskRow) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE herald.tasks SET updated_at = now()
             WHERE id = $1 AND round = $2 AND attempts = $3 AND state = 'running'",
            &[&run.id, &run.round, &run.attempts],
        )
        .await?;
    Ok(())
}

/// How an attempt ended.
pub enum Finish<'a> {
    Succeeded,
    Retrying {
        error: &'a str,
        next_attempt_at: DateTime<Utc>,
    },
    Dead {
        error: &'a str,
    },
}

/// Records how the attempt `run` (as [`start_attempt`] returned it) ended. Returns `false` when
/// the attempt is no longer the run's current one (another copy took the run over), so nothing
/// was recorded.
pub async fn finish_attempt(
    client: &impl GenericClient,
    run: &TaskRow,
    duration_ms: i64,
    finish: Finish<'_>,
) -> Result<bool, StoreError> {
    let (state, error, next): (&str, Option<&str>, Option<DateTime<Utc>>) = match finish {
        Finish::Succeeded => ("succeeded", None, None),
        Finish::Retrying {
            error,
            next_attempt_at,
        } => ("retrying", Some(error), Some(next_attempt_at)),
        Finish::Dead { error } => ("dead", Some(error), None),
    };
    let recorded = client
        .execute(
            "UPDATE herald.tasks SET state = $2, last_error = coalesce($3, last_error),
                    next_attempt_at = $4, duration_ms = $5, updated_at = now(),
                    finished_at = CASE WHEN $2 IN ('succeeded', 'dead') THEN now() END
             WHERE id = $1 AND round = $6 AND attempts = $7 AND state = 'running'",
            &[
                &run.id,
                &state,
                &error,
                &next,
                &duration_ms,
                &run.round,
                &run.attempts,
            ],
        )
        .await?;
    Ok(recorded == 1)
}

/// Gives back a running attempt that was not finished (at shutdown): it does not count.
pub async fn release_attempt(client: &impl GenericClient, run: &TaskRow) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE herald.tasks SET state = 'queued', attempts = attempts - 1, updated_at = now()
             WHERE id = $1 AND round = $2 AND attempts = $3 AND state = 'running'",
            &[&run.id, &run.round, &run.attempts],
        )
        .await?;
    Ok(())
}

/// Puts back in the outbox, in a new round, the runs whose message was lost: queued for longer
/// than `queued_for` without a worker taking them, overdue for a retry by `overdue_by`, or
/// running without a heartbeat for `overdue_by`. JetStream can lose a run's message (a
/// delivery limit reached while Postgres was down, a storage acknowledged before fsync); a new
/// round publishes it afresh, and copies of older rounds are skipped. Only runs of `names` (the
/// declared tasks) are looked at: a task no worker runs any more keeps its runs queued, and
/// publishing them again would only grow the stream. Returns how many.
pub async fn requeue_stranded(
    client: &impl GenericClient,
    names: &[String],
    queued_for: std::time::Duration,
    overdue_by: std::time::Duration,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE herald.tasks SET round = round + 1, publish_pending = true,
                    state = CASE WHEN state = 'running' THEN 'queued' ELSE state END,
                    updated_at = now()
             WHERE NOT publish_pending AND name = ANY($3) AND (
                 (state = 'queued' AND updated_at < now() - make_interval(secs => $1))
                 OR (state = 'retrying' AND next_attempt_at < now() - make_interval(secs => $2))
                 OR (state = 'running' AND updated_at < now() - make_interval(secs => $2)))",
            &[&queued_for.as_secs_f64(), &overdue_by.as_secs_f64(), &names],
        )
        .await?)
}

/// Puts a dead run back in the queue, with its attempts reset, in a new round. Returns the
/// row when it was dead.
pub async fn requeue_dead(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!(
        "UPDATE herald.tasks SET state = 'queued', attempts = 0, round = round + 1,
                publish_pending = true, next_attempt_at = NULL, finished_at = NULL,
                updated_at = now()
         WHERE id = $1 AND state = 'dead'
         RETURNING {COLUMNS}"
    );
    one(client, &sql, &[&id]).await
}

/// A page of dead runs, most recently ended first, after `(updated_at, id)` of the last one.
pub async fn dead(
    client: &impl GenericClient,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TaskRow>, StoreError> {
    let (at, id) = after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM herald.tasks
         WHERE state = 'dead' AND ($1::timestamptz IS NULL OR (updated_at, id) < ($1, $2))
         ORDER BY updated_at DESC, id DESC LIMIT $3"
    );
    many(client, &sql, &[&at, &id, &limit]).await
}

/// Runs of one task in one state, with the attempts they made.
pub struct StateCount {
    pub name: String,
    pub state: String,
    pub runs: i64,
    pub attempts: i64,
    /// Attempts after the first.
    pub retries: i64,
}

pub async fn state_counts(client: &impl GenericClient) -> Result<Vec<StateCount>, StoreError> {
    Ok(client
        .query(
            "SELECT name, state, count(*), coalesce(sum(attempts), 0)::bigint,
                    coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint
             FROM herald.tasks GROUP BY name, state ORDER BY name, state",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(StateCount {
                name: r.try_get(0)?,
                state: r.try_get(1)?,
                runs: r.try_get(2)?,
                attempts: r.try_get(3)?,
                retries: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?)
}

/// The median and 99th percentile of one task's last-attempt durations, in seconds.
pub struct Durations {
    pub name: String,
    pub p50: f64,
    pub p99: f64,
}

/// The durations of the runs that ended in the last `window_secs`, per task.
pub async fn recent_durations(
    client: &impl GenericClient,
    window_secs: f64,
) -> Result<Vec<Durations>, StoreError> {
    Ok(client
        .query(
            "SELECT name,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) / 1000.0,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) / 1000.0
             FROM herald.tasks
             WHERE finished_at > now() - make_interval(secs => $1) AND duration_ms IS NOT NULL
             GROUP BY name ORDER BY name",
            &[&window_secs],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Durations {
                name: r.try_get(0)?,
                p50: r.try_get(1)?,
                p99: r.try_get(2)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?)
}
