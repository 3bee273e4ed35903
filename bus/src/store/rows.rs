//! The rows a group of commits writes: one multi-row statement per table (streams, unique
//! values, events, positions, command outcomes), inside the transaction that holds the
//! commands' locks. Command outcomes are stored through here for lone commits and rejections
//! too; a lone commit writes its other rows with single-row statements ([`super::commit`]).
//!
//! Statements that do not need each other's results are sent together (tokio-postgres
//! pipelines the queries of one connection). Postgres still runs them in the order sent, so
//! the stream rows are taken first: that serializes writers on a stream, and the loser waits,
//! then finds the version moved and decides again instead of failing on the events key.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{Commit, EventMetadata, StoreError, UniqueValue, event_type, parse_tx_id};
use crate::command::Outcome;
use crate::position::LogPosition;

/// Where a statement reads its rows from: one array parameter per column (`$1`, `$2`, …),
/// named `u.<column>`. One row (a lone command's outcome, a group's only unique value) is read as
/// `VALUES` of the arrays' first elements, several with `unnest`, whose function scan costs
/// Postgres more than a single row itself.
fn rows_from(columns: &[(&str, &str)], one: bool) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, (_, sql_type))| format!("${}::{sql_type}[]", i + 1));
    let source = if one {
        let firsts: Vec<String> = arrays.map(|array| format!("({array})[1]")).collect();
        format!("(VALUES ({}))", firsts.join(", "))
    } else {
        format!("unnest({})", arrays.collect::<Vec<_>>().join(", "))
    };
    format!("{source} AS u({})", names.join(", "))
}

/// A statement over parallel arrays in its two shapes, built once: for one row and for several
/// (see [`rows_from`]).
struct Shaped([String; 2]);

impl Shaped {
    fn new(columns: &[(&str, &str)], statement: impl Fn(&str) -> String) -> Self {
        Self([
            statement(&rows_from(columns, true)),
            statement(&rows_from(columns, false)),
        ])
    }

    fn for_rows(&self, rows: usize) -> &str {
        &self.0[usize::from(rows != 1)]
    }
}

/// New streams.
static STREAMS_CREATED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(
        &[
            ("t", "text"),
            ("s", "text"),
            ("c", "text"),
            ("v", "int8"),
            ("a", "bool"),
            ("b", "text"),
            ("snap", "jsonb"),
        ],
        |rows| {
            format!(
                "INSERT INTO herald.streams
                     (tenant, stream_id, collection, version, archived, created_by, snapshot, last_tx, last_position)
                 SELECT t, s, c, v, a, b, snap, pg_current_xact_id(), 0 FROM {rows}
                 ON CONFLICT DO NOTHING"
            )
        },
    )
});

/// Streams that move, at the version they were decided on.
static STREAMS_MOVED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(
        &[
            ("t", "text"),
            ("sid", "text"),
            ("v", "int8"),
            ("a", "bool"),
            ("snap", "jsonb"),
            ("expected", "int8"),
        ],
        |rows| {
            format!(
                "UPDATE herald.streams s SET version = u.v, archived = u.a, snapshot = u.snap
                 FROM {rows}
                 WHERE s.tenant = u.t AND s.stream_id = u.sid AND s.version = u.expected"
            )
        },
    )
});

/// Unique values given up.
static VALUES_RELEASED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(&VALUE_COLUMNS, |rows| {
        format!(
            "DELETE FROM herald.unique_keys k USING {rows}
             WHERE k.tenant = u.t AND k.collection = u.c AND k.field = u.f AND k.value = u.v
               AND k.stream_id = u.s"
        )
    })
});

/// Unique values taken; returns the ones it got.
static VALUES_RESERVED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(&VALUE_COLUMNS, |rows| {
        format!(
            "INSERT INTO herald.unique_keys (tenant, collection, field, value, stream_id)
             SELECT * FROM {rows}
             ON CONFLICT (tenant, collection, field, value)
             DO UPDATE SET stream_id = EXCLUDED.stream_id
             WHERE unique_keys.stream_id = EXCLUDED.stream_id
             RETURNING stream_id, field"
        )
    })
});

/// The events; returns each one's place in the log.
static EVENTS_APPENDED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(
        &[
            ("t", "text"),
            ("s", "text"),
            ("c", "text"),
            ("d", "uuid"),
            ("v", "int8"),
            ("id", "uuid"),
            ("ty", "text"),
            ("data", "jsonb"),
            ("meta", "jsonb"),
            ("at", "timestamptz"),
        ],
        |rows| {
            format!(
            "INSERT INTO herald.events
                 (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata, recorded_at)
             SELECT * FROM {rows}
             RETURNING tenant, stream_id, position, tx_id::text"
        )
        },
    )
});

/// Each stream's last event.
static POSITIONS_RECORDED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(
        &[
            ("t", "text"),
            ("sid", "text"),
            ("tx", "text"),
            ("pos", "int8"),
        ],
        |rows| {
            format!(
                "UPDATE herald.streams s SET last_tx = u.tx::xid8, last_position = u.pos
             FROM {rows} WHERE s.tenant = u.t AND s.stream_id = u.sid"
            )
        },
    )
});

/// Each command's outcome.
static OUTCOMES_STORED: LazyLock<Shaped> = LazyLock::new(|| {
    Shaped::new(
        &[("id", "uuid"), ("s", "text"), ("o", "jsonb"), ("p", "int8")],
        |rows| {
            format!(
                "UPDATE herald.commands c
             SET status = u.s, outcome = u.o, position = u.p, completed_at = now()
             FROM {rows} WHERE c.id = u.id"
            )
        },
    )
});

/// A stream's key in the store: streams are per tenant.
pub(crate) type StreamKey = (String, String);

pub(crate) fn stream_key(commit: &Commit<'_>) -> StreamKey {
    (
        commit.command.principal.tenant.as_str().to_owned(),
        commit.stream_id.to_owned(),
    )
}

/// What [`write`] wrote.
pub(crate) struct Written {
    /// Stream rows created or moved: fewer than the commits when a stream moved meanwhile.
    pub streams: u64,
    /// The unique values reserved, as `(stream, field)`: a value missing here is taken.
    pub reserved: HashSet<(String, String)>,
    /// Each stream's last event.
    pub positions: HashMap<StreamKey, LogPosition>,
}

impl Written {
    /// The first unique value of `commit` that was not reserved (another document holds it).
    pub(crate) fn taken<'c>(&self, commit: &'c Commit<'_>) -> Option<&'c UniqueValue> {
        commit.reserve.iter().find(|value| {
            !self
                .reserved
                .contains(&(commit.stream_id.to_owned(), value.field.clone()))
        })
    }
}

/// Writes the stream rows, unique values and events of `commits` (each with changes).
pub(crate) async fn write(
    tx: &Transaction<'_>,
    commits: &[Commit<'_>],
) -> Result<Written, StoreError> {
    let (streams, _, reserved, positions) = futures::try_join!(
        write_streams(tx, commits),
        release_values(tx, commits),
        reserve_values(tx, commits),
        append_events(tx, commits),
    )?;
    Ok(Written {
        streams,
        reserved,
        positions,
    })
}

/// Records each stream's last event (for commits with changes) and every command's outcome.
pub(crate) async fn finish(
    tx: &Transaction<'_>,
    commits: &[Commit<'_>],
    positions: &HashMap<StreamKey, LogPosition>,
    outcomes: &[Outcome],
) -> Result<(), StoreError> {
    let moved: Vec<&Commit<'_>> = commits.iter().filter(|c| !c.changes.is_empty()).collect();
    futures::try_join!(
        record_positions(tx, &moved, positions),
        complete_commands(tx, commits, outcomes),
    )?;
    Ok(())
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|source| StoreError::Decode {
        what: std::any::type_name::<T>().to_owned(),
        source,
    })
}

/// The `status` and `position` a command's row records for its outcome.
pub(crate) fn stored_status(outcome: &Outcome) -> (&'static str, Option<i64>) {
    match outcome {
        Outcome::Succeeded(success) => ("succeeded", success.position.map(|p| p.position)),
        Outcome::Rejected(_) => ("rejected", None),
    }
}

/// Creates the new streams and moves the existing ones; returns how many it wrote.
async fn write_streams(tx: &Transaction<'_>, commits: &[Commit<'_>]) -> Result<u64, StoreError> {
    let (new, moved): (Vec<&Commit<'_>>, Vec<&Commit<'_>>) =
        commits.iter().partition(|c| c.expected_version == 0);
    let insert = async {
        if new.is_empty() {
            return Ok(0);
        }
        let statement = tx
            .prepare_cached(STREAMS_CREATED.for_rows(new.len()))
            .await?;
        let collections: Vec<String> = new
            .iter()
            .map(|c| c.command.collection().to_string())
            .collect();
        let archived: Vec<bool> = new.iter().map(|c| c.state.archived).collect();
        let creators: Vec<&str> = new.iter().map(|c| c.state.created_by.as_str()).collect();
        tx.execute(
            &statement,
            &[
                &tenants(&new),
                &stream_ids(&new),
                &collections,
                &new_versions(&new),
                &archived,
                &creators,
                &snapshots(&new)?,
            ],
        )
        .await
        .map_err(StoreError::from)
    };
    let update = async {
        if moved.is_empty() {
            return Ok(0);
        }
        let statement = tx
            .prepare_cached(STREAMS_MOVED.for_rows(moved.len()))
            .await?;
        let archived: Vec<bool> = moved.iter().map(|c| c.state.archived).collect();
        let expected: Vec<i64> = moved.iter().map(|c| c.expected_version).collect();
        tx.execute(
            &statement,
            &[
                &tenants(&moved),
                &stream_ids(&moved),
                &new_versions(&moved),
                &archived,
                &snapshots(&moved)?,
                &expected,
            ],
        )
        .await
        .map_err(StoreError::from)
    };
    let (inserted, updated) = futures::try_join!(insert, update)?;
    Ok(inserted + updated)
}

fn tenants<'a>(commits: &[&'a Commit<'_>]) -> Vec<&'a str> {
    commits
        .iter()
        .map(|c| c.command.principal.tenant.as_str())
        .collect()
}

fn stream_ids<'a>(commits: &[&'a Commit<'_>]) -> Vec<&'a str> {
    commits.iter().map(|c| c.stream_id).collect()
}

#[allow(clippy::cast_possible_wrap)] // a command has a handful of changes
fn new_versions(commits: &[&Commit<'_>]) -> Vec<i64> {
    commits
        .iter()
        .map(|c| c.expected_version + c.changes.len() as i64)
        .collect()
}

fn snapshots(commits: &[&Commit<'_>]) -> Result<Vec<Value>, StoreError> {
    commits.iter().map(|c| to_json(c.state)).collect()
}

/// The unique values of the commits, one array per column.
#[derive(Default)]
struct Values<'a> {
    tenants: Vec<&'a str>,
    collections: Vec<String>,
    fields: Vec<&'a str>,
    values: Vec<&'a str>,
    streams: Vec<&'a str>,
}

fn values<'a>(
    commits: &[Commit<'a>],
    pick: impl Fn(&Commit<'a>) -> &'a [UniqueValue],
) -> Values<'a> {
    let mut out = Values::default();
    for commit in commits {
        for value in pick(commit) {
            out.tenants.push(commit.command.principal.tenant.as_str());
            out.collections
                .push(commit.command.collection().to_string());
            out.fields.push(&value.field);
            out.values.push(&value.value);
            out.streams.push(commit.stream_id);
        }
    }
    out
}

/// The columns of unique values, in [`Values`] order.
const VALUE_COLUMNS: [(&str, &str); 5] = [
    ("t", "text"),
    ("c", "text"),
    ("f", "text"),
    ("v", "text"),
    ("s", "text"),
];

async fn release_values(tx: &Transaction<'_>, commits: &[Commit<'_>]) -> Result<u64, StoreError> {
    let released = values(commits, |c| c.release);
    if released.tenants.is_empty() {
        return Ok(0);
    }
    let statement = tx
        .prepare_cached(VALUES_RELEASED.for_rows(released.tenants.len()))
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

/// Reserves the commits' unique values; returns the ones it got, as `(stream, field)`.
async fn reserve_values(
    tx: &Transaction<'_>,
    commits: &[Commit<'_>],
) -> Result<HashSet<(String, String)>, StoreError> {
    let reserved = values(commits, |c| c.reserve);
    if reserved.tenants.is_empty() {
        return Ok(HashSet::new());
    }
    let statement = tx
        .prepare_cached(VALUES_RESERVED.for_rows(reserved.tenants.len()))
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &reserved.tenants,
                &reserved.collections,
                &reserved.fields,
                &reserved.values,
                &reserved.streams,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Appends every event of the commits in one statement; returns each stream's last position.
#[allow(clippy::cast_possible_wrap)] // a command has a handful of changes
async fn append_events(
    tx: &Transaction<'_>,
    commits: &[Commit<'_>],
) -> Result<HashMap<StreamKey, LogPosition>, StoreError> {
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
    for commit in commits {
        let command = commit.command;

        for (offset, change) in commit.changes.iter().enumerate() {
            tenants.push(command.principal.tenant.as_str());
            streams.push(commit.stream_id);
            collections.push(command.collection().to_string());
            documents.push(command.document_id);
            versions.push(commit.expected_version + 1 + offset as i64);
            ids.push(Uuid::now_v7());
            types.push(event_type(command, change));
            data.push(change.data());
            metadata.push(Json(EventMetadata::of_change(command, change)));
            recorded.push(commit.state.updated_at);
        }
    }
    let statement = tx
        .prepare_cached(EVENTS_APPENDED.for_rows(ids.len()))
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
    let mut last: HashMap<StreamKey, LogPosition> = HashMap::new();
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
    commits: &[&Commit<'_>],
    positions: &HashMap<StreamKey, LogPosition>,
) -> Result<(), StoreError> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut tx_ids = Vec::new();
    let mut last = Vec::new();
    for commit in commits {
        let position = positions.get(&stream_key(commit)).ok_or_else(|| {
            StoreError::Corrupt(format!("no event position for {}", commit.stream_id))
        })?;
        tx_ids.push(position.tx_text());
        last.push(position.position);
    }
    let statement = tx
        .prepare_cached(POSITIONS_RECORDED.for_rows(commits.len()))
        .await?;
    tx.execute(
        &statement,
        &[&tenants(commits), &stream_ids(commits), &tx_ids, &last],
    )
    .await?;
    Ok(())
}

async fn complete_commands(
    tx: &Transaction<'_>,
    commits: &[Commit<'_>],
    outcomes: &[Outcome],
) -> Result<(), StoreError> {
    let ids: Vec<Uuid> = commits.iter().map(|c| c.command.id.0).collect();
    complete(tx, &ids, outcomes).await
}

/// Stores the outcome of each command of `ids`.
pub(crate) async fn complete(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    outcomes: &[Outcome],
) -> Result<(), StoreError> {
    let stored = outcomes
        .iter()
        .map(to_json)
        .collect::<Result<Vec<Value>, _>>()?;
    let (statuses, positions): (Vec<&str>, Vec<Option<i64>>) =
        outcomes.iter().map(stored_status).unzip();
    let statement = tx
        .prepare_cached(OUTCOMES_STORED.for_rows(ids.len()))
        .await?;
    tx.execute(&statement, &[&ids, &statuses, &stored, &positions])
        .await?;
    Ok(())
}
