//! The checker: once Herald has worked off everything, every acknowledged create is compared
//! with the event log, every `202` with its decision, every task run with its effect, the relayed
//! copy with the log, and the view with a rebuild of it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::world::{TENANT, World};
use crate::writes::{Outcome, Record};

/// How long Herald may take to work off its backlog after the faults.
const SETTLE_DEADLINE: Duration = Duration::from_secs(180);
/// The view the scenarios write to.
const VIEW: &str = "petstore.product";

/// What the checker found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verdict {
    /// Events of the checked tenant in the log.
    pub events: i64,
    /// Acknowledged creates without their event.
    pub lost: usize,
    /// Creates with more than one event (or refused as a conflict when tried again), and task
    /// runs that acted more than once.
    pub duplicated: usize,
    /// Accepted (`202`) commands still undecided once everything else settled.
    pub undecided: usize,
    /// Task runs that did not end with exactly one effect.
    pub task_faults: usize,
    /// Events of the log missing from, or doubled in, the relayed stream.
    pub relay_faults: i64,
    pub view_equals_rebuild: bool,
    /// Seconds from the end of the writes until everything was worked off.
    pub settle_secs: f64,
    pub settled: bool,
    /// What was still busy, or what went wrong, for a verdict that fails.
    pub diagnosis: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.settled
            && self.lost == 0
            && self.duplicated == 0
            && self.undecided == 0
            && self.task_faults == 0
            && self.relay_faults == 0
            && self.view_equals_rebuild
    }
}

/// Checks the world after the clients of `record` stopped. Events the relay or the task
/// triggers parked are expected to be missing from what they did.
pub async fn check(world: &World, record: &Record) -> anyhow::Result<Verdict> {
    let client = world.db.connect().await?;
    let started = Instant::now();
    let accepted: Vec<Uuid> = record
        .writes
        .iter()
        .filter_map(|w| match w.outcome {
            Outcome::Accepted(id) => Some(id),
            _ => None,
        })
        .collect();
    let settled = settle(&client, &accepted).await?;
    let settle_secs = started.elapsed().as_secs_f64();
    let undecided: i64 = client
        .query_one(
            "SELECT count(*) FROM herald.commands WHERE id = ANY($1) AND status = 'accepted'",
            &[&accepted],
        )
        .await?
        .try_get(0)?;
    let (lost, duplicated) = compare_with_log(&client, record).await?;
    let mut diagnosis = record.refusals.clone();
    if !settled {
        diagnosis.extend(busy(&client, &accepted).await?);
    }
    let events: i64 = client
        .query_one(
            "SELECT count(*) FROM herald.events WHERE tenant = $1",
            &[&TENANT],
        )
        .await?
        .try_get(0)?;
    Ok(Verdict {
        events,
        lost,
        duplicated: duplicated + usize::try_from(record.refused).unwrap_or(usize::MAX),
        undecided: usize::try_from(undecided).unwrap_or(usize::MAX),
        task_faults: task_faults(&client).await?,
        relay_faults: relay_faults(world, &client).await?,
        view_equals_rebuild: view_equals_rebuild(world, &client).await?,
        settle_secs,
        settled,
        diagnosis,
    })
}

/// Waits until every accepted command is decided and the view, the relay, the task triggers
/// and the task runs are through; `false` when the deadline passed first.
async fn settle(client: &tokio_postgres::Client, accepted: &[Uuid]) -> anyhow::Result<bool> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let busy = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM herald.commands
                                WHERE id = ANY($1) AND status = 'accepted')
                     OR EXISTS (
                         SELECT 1 FROM herald.projections p
                         JOIN herald.checkpoints c ON c.name = p.checkpoint
                         JOIN herald.events e ON e.collection = p.name
                          AND (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE p.state IN ('active', 'building'))
                     OR EXISTS (
                         SELECT 1 FROM herald.checkpoints c
                         JOIN herald.events e ON (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE c.name IN ('relay', 'tasks'))
                     OR (SELECT count(*) FROM herald.checkpoints
                         WHERE name IN ('relay', 'tasks')) < 2
                     OR EXISTS (SELECT 1 FROM herald.tasks
                                WHERE state IN ('queued', 'running', 'retrying'))",
                &[&accepted],
            )
            .await
            .and_then(|row| row.try_get::<_, bool>(0));
        // The database may still be coming back from a scenario's restart.
        if matches!(busy, Ok(false)) {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What keeps Herald from being settled, one line per reader or queue.
async fn busy(client: &tokio_postgres::Client, accepted: &[Uuid]) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT what, n FROM (
                 SELECT 'undecided 202s' AS what, count(*) AS n FROM herald.commands
                 WHERE id = ANY($1) AND status = 'accepted'
                 UNION ALL
                 SELECT 'unread by ' || c.name, count(*) FROM herald.checkpoints c
                 JOIN herald.events e ON (e.tx_id, e.position) > (c.tx_id, c.position)
                 GROUP BY c.name
                 UNION ALL
                 SELECT 'task runs ' || state, count(*) FROM herald.tasks
                 WHERE state <> 'succeeded' GROUP BY state) busy
             WHERE n > 0",
            &[&accepted],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(format!(
                "{} {}",
                row.try_get::<_, String>(0)?,
                row.try_get::<_, i64>(1)?
            ))
        })
        .collect()
}

/// Acknowledged creates without an event (lost), and creates with more than one (duplicated).
async fn compare_with_log(
    client: &tokio_postgres::Client,
    record: &Record,
) -> anyhow::Result<(usize, usize)> {
    let rows = client
        .query(
            "SELECT metadata->>'idempotency_key', count(*), min(document_id::text)
             FROM herald.events
             WHERE tenant = $1 AND type = 'petstore.product.created'
               AND metadata->>'idempotency_key' IS NOT NULL
             GROUP BY 1",
            &[&TENANT],
        )
        .await?;
    let mut in_log: HashMap<String, (i64, Option<Uuid>)> = HashMap::new();
    for row in rows {
        let key: Option<String> = row.try_get(0)?;
        let document: Option<String> = row.try_get(2)?;
        in_log.insert(
            key.unwrap_or_default(),
            (
                row.try_get(1)?,
                document.and_then(|d| Uuid::parse_str(&d).ok()),
            ),
        );
    }
    let mut lost = 0;
    for write in record.writes.iter().filter(|w| w.acknowledged()) {
        match (in_log.get(&write.key), &write.outcome) {
            (None, _) => lost += 1,
            // A 201 names the document its event created.
            (Some((_, document)), Outcome::Created(id)) if *document != Some(*id) => lost += 1,
            _ => {}
        }
    }
    let duplicated = in_log
        .values()
        .map(|(count, _)| usize::try_from(count - 1).unwrap_or(0))
        .sum();
    Ok((lost, duplicated))
}

/// Task runs that did not end with exactly one effect: each created product must have exactly
/// one run, succeeded, and exactly one `updated` event (its effect).
async fn task_faults(client: &tokio_postgres::Client) -> anyhow::Result<usize> {
    let faults: i64 = client
        .query_one(
            "SELECT count(*) FROM herald.events c
             WHERE c.tenant = $1 AND c.type = 'petstore.product.created'
               AND ((SELECT count(*) FROM herald.tasks t
                     WHERE t.event_id = c.event_id AND t.state = 'succeeded') <> 1
                 OR (SELECT count(*) FROM herald.tasks t WHERE t.event_id = c.event_id) <> 1
                 OR (SELECT count(*) FROM herald.events p
                     WHERE p.stream_id = c.stream_id
                       AND p.type = 'petstore.product.updated') <> 1)
               AND NOT EXISTS (SELECT 1 FROM herald.parked_events x
                               WHERE x.event_id = c.event_id AND x.reader = 'tasks')",
            &[&TENANT],
        )
        .await?
        .try_get(0)?;
    Ok(usize::try_from(faults).unwrap_or(usize::MAX))
}

/// The difference between the events the relay should have published (the log, less what it
/// parked) and the messages in `<PREFIX>_EVENTS`.
async fn relay_faults(world: &World, client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let expected: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM herald.events)
                  - (SELECT count(*) FROM herald.parked_events WHERE reader = 'relay')",
            &[],
        )
        .await?
        .try_get(0)?;
    let nats = async_nats::connect(world.nats_servers()).await?;
    let jetstream = async_nats::jetstream::new(nats);
    let name = format!("{}_EVENTS", world.env.prefix.to_uppercase());
    let mut stream = jetstream
        .get_stream(&name)
        .await
        .with_context(|| format!("no stream {name}"))?;
    let relayed = i64::try_from(stream.info().await?.state.messages).unwrap_or(i64::MAX);
    Ok((expected - relayed).abs())
}

/// Rebuilds the view through the operators' route and compares the new version's rows with
/// the rows the view had.
async fn view_equals_rebuild(
    world: &World,
    client: &tokio_postgres::Client,
) -> anyhow::Result<bool> {
    let before = active_version(client).await?;
    let digest_before = digest(client, before).await?;
    let addr = world
        .api_addrs()
        .first()
        .copied()
        .context("no api process")?;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/admin/projections/{VIEW}/rebuild"))
        .bearer_auth(world.operator_token()?)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the rebuild was refused: {}", response.status());
    }
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let after = loop {
        let active = active_version(client).await?;
        if active != before {
            break active;
        }
        if Instant::now() > deadline {
            bail!("the rebuilt view did not become active in time");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(digest(client, after).await? == digest_before)
}

async fn active_version(client: &tokio_postgres::Client) -> anyhow::Result<i32> {
    Ok(client
        .query_one(
            "SELECT version FROM herald.projections WHERE name = $1 AND state = 'active'",
            &[&VIEW],
        )
        .await?
        .try_get(0)?)
}

/// A digest of every row of a version of the view.
async fn digest(client: &tokio_postgres::Client, version: i32) -> anyhow::Result<String> {
    let sql = format!(
        "SELECT coalesce(md5(string_agg(row(tenant, id, version, archived, created_at, created_by,
                                            updated_at, updated_by, doc)::text,
                                        ',' ORDER BY tenant, id)), '')
         FROM herald_views.\"{VIEW}.v{version}\""
    );
    Ok(client.query_one(&sql, &[]).await?.try_get(0)?)
}

/// The parked events of the view, as the admin API lists them.
pub async fn parked_in_view(world: &World) -> anyhow::Result<usize> {
    let addr = world
        .api_addrs()
        .first()
        .copied()
        .context("no api process")?;
    let listed: Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/admin/parked-events"))
        .bearer_auth(world.operator_token()?)
        .send()
        .await?
        .json()
        .await?;
    Ok(listed["data"].as_array().map_or(0, |events| {
        events
            .iter()
            .filter(|e| {
                e["reader"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&format!("{VIEW}.v")))
            })
            .count()
    }))
}
