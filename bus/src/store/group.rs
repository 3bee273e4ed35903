//! Group commit: commits that arrive together are appended in one transaction, with one
//! multi-row statement per table instead of one statement per command.
//!
//! Why: a commit alone costs about seven round trips and a WAL flush, and under load that
//! per-statement work, not the data, is what the database spends its time on. Commits queue
//! here while earlier groups are being written, so the busier the handler, the larger the
//! groups; when commands trickle in, each one forms a group of one and takes the single-commit
//! path with no added wait.
//!
//! A group is all or nothing and never decides anything itself. Whenever a group meets
//! anything but the plain case — a command already completed (a redelivery) or never
//! recorded, a command without changes, a stream that moved, a unique value that is taken,
//! wanted twice or swapped between two of its commands, any database error — its
//! transaction is rolled back and each of its commits runs alone, so every
//! outcome, conflict and error is exactly the one the single-commit path gives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::UniqueValue;
use super::batch::Batcher;
use super::notify::Announcer;
use super::postgres::{commit_alone, stored_status, to_json};
use super::{Commit, StoreError, event_metadata, event_type, parse_tx_id};
use crate::command::{CommandEnvelope, Outcome, Success};
use crate::document::{Change, DocumentState};
use crate::position::LogPosition;

/// Most commits in one group.
const MAX_GROUP: usize = 64;
/// Groups written at the same time, each on its own connection: while one group waits for its
/// WAL flush, the next one is already being written.
const WRITERS: usize = 4;

/// A commit that owns its parts, so it can wait in the queue.
struct Queued {
    command: CommandEnvelope,
    stream_id: String,
    expected_version: i64,
    changes: Vec<Change>,
    state: DocumentState,
    reserve: Vec<UniqueValue>,
    release: Vec<UniqueValue>,
    http_status: u16,
    previous_position: Option<LogPosition>,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

impl Queued {
    fn commit(&self) -> Commit<'_> {
        Commit {
            command: &self.command,
            stream_id: &self.stream_id,
            expected_version: self.expected_version,
            changes: &self.changes,
            state: &self.state,
            reserve: &self.reserve,
            release: &self.release,
            http_status: self.http_status,
            previous_position: self.previous_position,
        }
    }
}

/// The queue commits wait in for their group.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    batcher: Batcher<Queued>,
    counts: Arc<GroupCounts>,
}

/// What group commit has done in this process, for `/metrics`.
#[derive(Debug, Default)]
pub struct GroupCounts {
    /// Groups of two or more written as one transaction.
    pub groups: AtomicU64,
    /// Commits written in those groups.
    pub commits: AtomicU64,
    /// Groups of two or more that fell back to committing each alone.
    pub fallbacks: AtomicU64,
}

impl GroupCommit {
    /// Starts the writers on the current runtime; `None` outside one (commits run alone).
    pub(crate) fn start(pool: &Pool, announcer: &Announcer) -> Option<Self> {
        let (pool, announcer) = (pool.clone(), announcer.clone());
        let counts = Arc::new(GroupCounts::default());
        let counted = counts.clone();
        let batcher = Batcher::start(WRITERS, MAX_GROUP, move |group| {
            let (pool, announcer, counts) = (pool.clone(), announcer.clone(), counted.clone());
            async move { write_and_reply(&pool, &announcer, &counts, group).await }
        })?;
        Some(Self { batcher, counts })
    }

    pub(crate) fn counts(&self) -> &GroupCounts {
        &self.counts
    }

    /// Commits in the next group; `None` when the writers are gone.
    pub(crate) async fn commit(&self, commit: &Commit<'_>) -> Option<Result<Outcome, StoreError>> {
        let (reply, outcome) = oneshot::channel();
        let queued = Queued {
            command: commit.command.clone(),
            stream_id: commit.stream_id.to_owned(),
            expected_version: commit.expected_version,
            changes: commit.changes.to_vec(),
            state: commit.state.clone(),
            reserve: commit.reserve.to_vec(),
            release: commit.release.to_vec(),
            http_status: commit.http_status,
            previous_position: commit.previous_position,
            reply,
        };
        self.batcher.push(queued).ok()?;
        outcome.await.ok()
    }
}

async fn write_and_reply(
    pool: &Pool,
    announcer: &Announcer,
    counts: &GroupCounts,
    group: Vec<Queued>,
) {
    let written = if group.len() > 1 {
        write_group(pool, &group).await
    } else {
        Err(Fallback("a group of one"))
    };
    match written {
        Ok(outcomes) => {
            counts.groups.fetch_add(1, Ordering::Relaxed);
            counts
                .commits
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            let collections: HashSet<String> =
                group.iter().map(|q| q.command.collection()).collect();
            collections
                .into_iter()
                .for_each(|collection| announcer.appended(collection));
            for (queued, outcome) in group.into_iter().zip(outcomes) {
                // The handler may have given up waiting (shutdown); the outcome is stored.
                drop(queued.reply.send(Ok(outcome)));
            }
        }
        Err(Fallback(reason)) => {
            if group.len() > 1 {
                counts.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    group.size = group.len(),
                    reason,
                    "group commit fell back to lone commits"
                );
            }
            // On a task of their own: a lone commit waiting on a row lock must not hold up the
            // writer, and with it every group behind it.
            let (pool, announcer) = (pool.clone(), announcer.clone());
            tokio::spawn(async move {
                let alone = group
                    .iter()
                    .map(|queued| commit_alone(&pool, &announcer, queued.commit()));
                let outcomes = futures::future::join_all(alone).await;
                for (queued, outcome) in group.into_iter().zip(outcomes) {
                    drop(queued.reply.send(outcome));
                }
            });
        }
    }
}

/// The group cannot be written as one, and why: its commits run alone.
struct Fallback(&'static str);

impl From<tokio_postgres::Error> for Fallback {
    fn from(_: tokio_postgres::Error) -> Self {
        Self("a database error")
    }
}

impl From<deadpool_postgres::PoolError> for Fallback {
    fn from(_: deadpool_postgres::PoolError) -> Self {
        Self("no database connection")
    }
}

impl From<StoreError> for Fallback {
    fn from(_: StoreError) -> Self {
        Self("a stored value cannot be read or written")
    }
}

/// Writes the whole group in one transaction, or nothing.
#[tracing::instrument(skip_all, fields(group.size = group.len()))]
async fn write_group(pool: &Pool, group: &[Queued]) -> Result<Vec<Outcome>, Fallback> {
    if group.iter().any(|q| q.changes.is_empty()) {
        return Err(Fallback("a command without changes"));
    }
    if values_meet(group) {
        return Err(Fallback("two commands reserve or swap one unique value"));
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_commands(&tx, group).await?;
    let (streams, _, reserved, events) = futures::try_join!(
        write_streams(&tx, group),
        release_values(&tx, group),
        reserve_values(&tx, group),
        append_events(&tx, group),
    )?;
    let reservations: usize = group.iter().map(|q| q.reserve.len()).sum();
    if streams != group.len() as u64 {
        return Err(Fallback("a stream moved"));
    }
    if reserved != reservations as u64 {
        return Err(Fallback("a unique value is taken"));
    }
    let outcomes: Vec<Outcome> = group
        .iter()
        .map(|queued| {
            Outcome::Succeeded(Success {
                http_status: queued.http_status,
                document: queued.state.clone(),
                position: events.get(&stream_key(queued)).copied(),
            })
        })
        .collect();
    futures::try_join!(
        record_positions(&tx, group, &events),
        complete_commands(&tx, group, &outcomes),
    )?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Whether a unique value of one commit of the group is also another's: two reserving one
/// value (one of them must be refused), or one releasing a value another reserves (a swap,
/// which alone would be refused on both sides, while one group's delete-then-insert would let
/// both through). Either way the single-commit path decides.
fn values_meet(group: &[Queued]) -> bool {
    let key = |q: &'_ Queued, value: &UniqueValue| {
        (
            q.command.principal.tenant.as_str().to_owned(),
            q.command.collection(),
            value.field.clone(),
            value.value.clone(),
        )
    };
    let mut reserved = HashSet::new();
    for queued in group {
        for value in &queued.reserve {
            if !reserved.insert(key(queued, value)) {
                return true;
            }
        }
    }
    group.iter().any(|q| {
        q.release
            .iter()
            .any(|value| reserved.contains(&key(q, value)))
    })
}

/// Locks every command's row; falls back unless all are recorded and none completed.
async fn lock_commands(tx: &Transaction<'_>, group: &[Queued]) -> Result<(), Fallback> {
    let ids: Vec<Uuid> = group.iter().map(|q| q.command.id.0).collect();
    let statement = tx
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE outcome IS NULL) FROM
               (SELECT outcome FROM herald.commands WHERE id = ANY($1) FOR UPDATE) AS locked",
        )
        .await?;
    let open: i64 = tx.query_one(&statement, &[&ids]).await?.try_get(0)?;
    if open != group.len() as i64 {
        return Err(Fallback("a command is completed already or not recorded"));
    }
    Ok(())
}

/// Creates the new streams and moves the existing ones; returns how many it wrote (fewer
/// than the group when a stream moved meanwhile).
async fn write_streams(tx: &Transaction<'_>, group: &[Queued]) -> Result<u64, Fallback> {
    let (new, moved): (Vec<&Queued>, Vec<&Queued>) =
        group.iter().partition(|q| q.expected_version == 0);
    let mut written = 0;
    if !new.is_empty() {
        let statement = tx
            .prepare_cached(
                "INSERT INTO herald.streams
                     (tenant, stream_id, collection, version, archived, created_by, snapshot, last_tx, last_position)
                 SELECT t, s, c, v, a, b, snap, pg_current_xact_id(), 0
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::text[], $7::jsonb[])
                      AS u(t, s, c, v, a, b, snap)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let snapshots = snapshots(&new)?;
        written += tx
            .execute(
                &statement,
                &[
                    &tenants(&new),
                    &stream_ids(&new),
                    &new.iter()
                        .map(|q| q.command.collection())
                        .collect::<Vec<_>>(),
                    &new_versions(&new),
                    &new.iter().map(|q| q.state.archived).collect::<Vec<_>>(),
                    &new.iter()
                        .map(|q| q.state.created_by.as_str())
                        .collect::<Vec<_>>(),
                    &snapshots,
                ],
            )
            .await?;
    }
    if !moved.is_empty() {
        let statement = tx
            .prepare_cached(
                "UPDATE herald.streams s SET version = u.v, archived = u.a, snapshot = u.snap
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::jsonb[], $6::int8[])
                      AS u(t, sid, v, a, snap, expected)
                 WHERE s.tenant = u.t AND s.stream_id = u.sid AND s.version = u.expected",
            )
            .await?;
        let snapshots = snapshots(&moved)?;
        written += tx
            .execute(
                &statement,
                &[
                    &tenants(&moved),
                    &stream_ids(&moved),
                    &new_versions(&moved),
                    &moved.iter().map(|q| q.state.archived).collect::<Vec<_>>(),
                    &snapshots,
                    &moved.iter().map(|q| q.expected_version).collect::<Vec<_>>(),
                ],
            )
            .await?;
    }
    Ok(written)
}

/// A stream's key in the store: streams are per tenant.
fn stream_key(queued: &Queued) -> (String, String) {
    (
        queued.command.principal.tenant.as_str().to_owned(),
        queued.stream_id.clone(),
    )
}

fn tenants<'a>(group: &[&'a Queued]) -> Vec<&'a str> {
    group
        .iter()
        .map(|q| q.command.principal.tenant.as_str())
        .collect()
}

fn stream_ids<'a>(group: &[&'a Queued]) -> Vec<&'a str> {
    group.iter().map(|q| q.stream_id.as_str()).collect()
}

fn new_versions(group: &[&Queued]) -> Vec<i64> {
    group
        .iter()
        .map(|q| q.expected_version + q.changes.len() as i64)
        .collect()
}

fn snapshots(group: &[&Queued]) -> Result<Vec<Value>, StoreError> {
    group.iter().map(|q| to_json(&q.state)).collect()
}

/// The unique values of the group, one array per column.
struct Values<'a> {
    tenants: Vec<&'a str>,
    collections: Vec<String>,
    fields: Vec<&'a str>,
    values: Vec<&'a str>,
    streams: Vec<&'a str>,
}

fn values<'a>(group: &'a [Queued], pick: impl Fn(&'a Queued) -> &'a [UniqueValue]) -> Values<'a> {
    let mut out = Values {
        tenants: Vec::new(),
        collections: Vec::new(),
        fields: Vec::new(),
        values: Vec::new(),
        streams: Vec::new(),
    };
    for queued in group {
        for value in pick(queued) {
            out.tenants.push(queued.command.principal.tenant.as_str());
            out.collections.push(queued.command.collection());
            out.fields.push(&value.field);
            out.values.push(&value.value);
            out.streams.push(&queued.stream_id);
        }
    }
    out
}

async fn release_values(tx: &Transaction<'_>, group: &[Queued]) -> Result<u64, Fallback> {
    let released = values(group, |q| q.release.as_slice());
    if released.tenants.is_empty() {
        return Ok(0);
    }
    let statement = tx
        .prepare_cached(
            "DELETE FROM herald.unique_keys k
             USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(t, c, f, v, s)
             WHERE k.tenant = u.t AND k.collection = u.c AND k.field = u.f AND k.value = u.v
               AND k.stream_id = u.s",
        )
        .await?;
    Ok(tx
        .execute(
            &statement,
            &[
                &released.tenants,
                &released.collections,
                &released.fields,
                &released.values,
                &released.streams,
            ],
        )
        .await?)
}

/// Reserves the group's unique values; returns how many it got (fewer when one is taken).
async fn reserve_values(tx: &Transaction<'_>, group: &[Queued]) -> Result<u64, Fallback> {
    let reserved = values(group, |q| q.reserve.as_slice());
    if reserved.tenants.is_empty() {
        return Ok(0);
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO herald.unique_keys (tenant, collection, field, value, stream_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT (tenant, collection, field, value)
             DO UPDATE SET stream_id = EXCLUDED.stream_id
             WHERE unique_keys.stream_id = EXCLUDED.stream_id",
        )
        .await?;
    Ok(tx
        .execute(
            &statement,
            &[
                &reserved.tenants,
                &reserved.collections,
                &reserved.fields,
                &reserved.values,
                &reserved.streams,
            ],
        )
        .await?)
}

/// Appends every event of the group in one statement; returns each stream's last position.
async fn append_events(
    tx: &Transaction<'_>,
    group: &[Queued],
) -> Result<HashMap<(String, String), LogPosition>, Fallback> {
    let mut tenants = Vec::new();
    let mut streams = Vec::new();
    let mut collections = Vec::new();
    let mut documents = Vec::new();
    let mut versions = Vec::new();
    let mut ids = Vec::new();
    let mut types = Vec::new();
    let mut data = Vec::new();
    let mut metadata = Vec::new();
    let mut recorded: Vec<DateTime<Utc>> = Vec::new();
    for queued in group {
        let command = &queued.command;
        let meta = event_metadata(command);
        for (offset, change) in queued.changes.iter().enumerate() {
            tenants.push(command.principal.tenant.as_str());
            streams.push(queued.stream_id.as_str());
            collections.push(command.collection());
            documents.push(command.document_id);
            versions.push(queued.expected_version + 1 + offset as i64);
            ids.push(Uuid::now_v7());
            types.push(event_type(command, change));
            data.push(change.data());
            metadata.push(meta.clone());
            recorded.push(queued.state.updated_at);
        }
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO herald.events
                 (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata, recorded_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::int8[],
                                  $6::uuid[], $7::text[], $8::jsonb[], $9::jsonb[], $10::timestamptz[])
             RETURNING tenant, stream_id, position, tx_id::text",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &tenants,
                &streams,
                &collections,
                &documents,
                &versions,
                &ids,
                &types,
                &data,
                &metadata,
                &recorded,
            ],
        )
        .await?;
    let mut last: HashMap<(String, String), LogPosition> = HashMap::new();
    for row in rows {
        let position = LogPosition {
            tx_id: parse_tx_id(row.try_get(3)?)?,
            position: row.try_get(2)?,
        };
        let entry = last
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_insert(position);
        *entry = (*entry).max(position);
    }
    Ok(last)
}

async fn record_positions(
    tx: &Transaction<'_>,
    group: &[Queued],
    positions: &HashMap<(String, String), LogPosition>,
) -> Result<(), Fallback> {
    let queued: Vec<&Queued> = group.iter().collect();
    let mut tx_ids = Vec::new();
    let mut last = Vec::new();
    for q in &queued {
        let position = positions
            .get(&stream_key(q))
            .ok_or(Fallback("an event's position is missing"))?;
        tx_ids.push(position.tx_text());
        last.push(position.position);
    }
    let statement = tx
        .prepare_cached(
            "UPDATE herald.streams s SET last_tx = u.tx::xid8, last_position = u.pos
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(t, sid, tx, pos)
             WHERE s.tenant = u.t AND s.stream_id = u.sid",
        )
        .await?;
    tx.execute(
        &statement,
        &[&tenants(&queued), &stream_ids(&queued), &tx_ids, &last],
    )
    .await?;
    Ok(())
}

async fn complete_commands(
    tx: &Transaction<'_>,
    group: &[Queued],
    outcomes: &[Outcome],
) -> Result<(), Fallback> {
    let ids: Vec<Uuid> = group.iter().map(|q| q.command.id.0).collect();
    let stored = outcomes
        .iter()
        .map(to_json)
        .collect::<Result<Vec<Value>, _>>()?;
    let (statuses, positions): (Vec<&str>, Vec<Option<i64>>) =
        outcomes.iter().map(stored_status).unzip();
    let statement = tx
        .prepare_cached(
            "UPDATE herald.commands c
             SET status = u.s, outcome = u.o, position = u.p, completed_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int8[]) AS u(id, s, o, p)
             WHERE c.id = u.id",
        )
        .await?;
    tx.execute(&statement, &[&ids, &statuses, &stored, &positions])
        .await?;
    Ok(())
}
