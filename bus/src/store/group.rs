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

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::UniqueValue;
use super::batch::Batcher;
use super::commit::commit_alone;
use super::notify::Announcer;
use super::{Commit, StoreError, rows};
use crate::command::{CommandEnvelope, Effect, Outcome, Success};
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
    effect: Effect,
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
            effect: self.effect,
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
            effect: commit.effect,
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
            let collections: HashSet<String> = group
                .iter()
                .map(|q| q.command.collection().to_string())
                .collect();
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
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Database(_) | StoreError::Pool(_) => Self("a database error"),
            _ => Self("a stored value cannot be read or written"),
        }
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
    let commits: Vec<Commit<'_>> = group.iter().map(Queued::commit).collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_commands(&tx, group).await?;
    let written = rows::write(&tx, &commits).await?;
    if written.streams != group.len() as u64 {
        return Err(Fallback("a stream moved"));
    }
    if commits.iter().any(|commit| written.taken(commit).is_some()) {
        return Err(Fallback("a unique value is taken"));
    }
    let outcomes: Vec<Outcome> = commits
        .iter()
        .map(|commit| {
            Outcome::Succeeded(Success {
                effect: commit.effect,
                document: commit.state.clone(),
                position: written.positions.get(&rows::stream_key(commit)).copied(),
            })
        })
        .collect();
    rows::finish(&tx, &commits, &written.positions, &outcomes).await?;
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
            q.command.collection().to_string(),
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
