//! Events a reader could not read or apply, parked so that one bad event never stops the log.
//!
//! A reader that must see every event — a view version, the relay, the task triggers — tries a
//! failing event again with back-off ([`Poison`]); once its attempts are spent it parks the event
//! in `herald.parked_events`, in the transaction that moves its checkpoint past it, and goes on.
//! Parked events are listed by the admin API and counted in `/metrics`. An operator may ask a
//! view version to apply its parked events again once the cause is fixed ([`request_replay`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{StoreError, parse_tx_id};
use crate::position::LogPosition;

/// An event that failed a reader: what is known of it, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the event at {position} cannot be {stage}: {error}")]
pub struct EventFailure {
    pub position: LogPosition,
    /// Absent when the row itself could not be decoded that far.
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub collection: Option<String>,
    pub stage: Stage,
    pub error: String,
}

impl EventFailure {
    /// The failure as a parked row records it: the error, then the stage (`… (applied)`).
    pub fn recorded(&self) -> String {
        format!("{} ({})", self.error, self.stage)
    }
}

/// Where an event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Its row cannot be decoded (a value its type cannot hold, say).
    Read,
    /// A view cannot fold it into its row.
    Applied,
    /// The relay or a trigger cannot hand it on.
    Delivered,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Read => "read",
            Stage::Applied => "applied",
            Stage::Delivered => "delivered",
        })
    }
}

/// The retries of the event a reader is stuck on: each failure of the same event waits twice
/// as long as the one before, and after [`Poison::ATTEMPTS`] the event is to be parked.
#[derive(Debug, Default)]
pub struct Poison {
    at: Option<LogPosition>,
    attempts: u32,
}

impl Poison {
    /// Failures of one event before it is parked.
    pub const ATTEMPTS: u32 = 5;
    const FIRST_DELAY: Duration = Duration::from_millis(250);
    const MOST_DELAY: Duration = Duration::from_secs(10);

    /// Notes that the event at `position` failed; returns how long to wait before trying again.
    pub fn failed(&mut self, position: LogPosition) -> Duration {
        if self.at != Some(position) {
            self.at = Some(position);
            self.attempts = 0;
        }
        self.attempts = self.attempts.saturating_add(1);
        let doublings = self.attempts.saturating_sub(1).min(16);
        (Self::FIRST_DELAY * 2u32.pow(doublings)).min(Self::MOST_DELAY)
    }

    /// Whether the event at `position` has failed often enough to be parked.
    pub fn exhausted(&self, position: LogPosition) -> bool {
        self.at == Some(position) && self.attempts >= Self::ATTEMPTS
    }

    /// After a reader's spell failed with `error`: logs it as `what` failed, then waits —
    /// longer each time when it failed on the same event (`failure`), else `otherwise` — or
    /// until `shutdown`. Returns `false` when shutdown came first.
    pub async fn back_off(
        &mut self,
        what: &str,
        error: &anyhow::Error,
        failure: Option<&EventFailure>,
        otherwise: Duration,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::warn!(error = format!("{error:#}"), "{what} failed; retrying");
        let wait = failure.map_or(otherwise, |failure| self.failed(failure.position));
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }

    /// How often the event at `position` has failed so far.
    pub fn attempts(&self, position: LogPosition) -> u32 {
        if self.at == Some(position) {
            self.attempts
        } else {
            0
        }
    }
}

/// Parks `failure` for `reader` (in the caller's transaction, with the checkpoint that moves
/// past it). Parking the same event twice keeps the first row.
pub async fn park(
    client: &impl GenericClient,
    reader: &str,
    failure: &EventFailure,
    attempts: u32,
) -> Result<(), StoreError> {
    let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    client
        .execute(
            "INSERT INTO herald.parked_events
                 (reader, tx_id, position, event_id, event_type, collection, error, attempts)
             VALUES ($1, $2::text::xid8, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (reader, tx_id, position) DO NOTHING",
            &[
                &reader,
                &failure.position.tx_text(),
                &failure.position.position,
                &failure.event_id,
                &failure.event_type,
                &failure.collection,
                &failure.recorded(),
                &attempts,
            ],
        )
        .await?;
    tracing::error!(
        reader,
        position = %failure.position,
        event_id = ?failure.event_id,
        event_type = ?failure.event_type,
        error = %failure.error,
        attempts,
        "event parked: the reader goes on without it"
    );
    Ok(())
}

/// One parked event, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ParkedEvent {
    pub reader: String,
    pub position: LogPosition,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub collection: Option<String>,
    pub error: String,
    pub attempts: i32,
    pub parked_at: DateTime<Utc>,
    /// When an operator asked for it to be applied again, while its runner has yet to try.
    pub replay_requested_at: Option<DateTime<Utc>>,
}

/// The parked events, newest first, at most `limit`.
pub async fn list(client: &impl GenericClient, limit: i64) -> Result<Vec<ParkedEvent>, StoreError> {
    let rows = client
        .query(
            "SELECT reader, tx_id::text, position, event_id, event_type, collection, error,
                    attempts, parked_at, replay_requested_at
             FROM herald.parked_events ORDER BY parked_at DESC, reader LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ParkedEvent {
                reader: row.try_get(0)?,
                position: LogPosition {
                    tx_id: parse_tx_id(row.try_get(1)?)?,
                    position: row.try_get(2)?,
                },
                event_id: row.try_get(3)?,
                event_type: row.try_get(4)?,
                collection: row.try_get(5)?,
                error: row.try_get(6)?,
                attempts: row.try_get(7)?,
                parked_at: row.try_get(8)?,
                replay_requested_at: row.try_get(9)?,
            })
        })
        .collect()
}

/// How many events each reader has parked.
pub async fn counts(client: &impl GenericClient) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = client
        .query(
            "SELECT reader, count(*) FROM herald.parked_events GROUP BY reader ORDER BY reader",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Asks the runners of the view versions `readers` to apply their parked events again; returns
/// how many rows were marked. Each runner picks its rows up with [`requested`].
pub async fn request_replay(
    client: &impl GenericClient,
    readers: &[String],
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE herald.parked_events SET replay_requested_at = now() WHERE reader = ANY($1)",
            &[&readers],
        )
        .await?)
}

/// A parked event an operator asked to apply again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRequest {
    pub position: LogPosition,
    pub event_id: Option<Uuid>,
}

/// Up to `limit` of `reader`'s events marked for replay, in log order, locked until the caller's
/// transaction ends. Rows an operator is marking at this moment are skipped rather than waited
/// for: the runner's next look finds them.
pub async fn requested(
    client: &impl GenericClient,
    reader: &str,
    limit: i64,
) -> Result<Vec<ReplayRequest>, StoreError> {
    let rows = client
        .query(
            "SELECT tx_id::text, position, event_id FROM herald.parked_events
             WHERE reader = $1 AND replay_requested_at IS NOT NULL
             ORDER BY tx_id, position LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&reader, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ReplayRequest {
                position: LogPosition {
                    tx_id: parse_tx_id(row.try_get(0)?)?,
                    position: row.try_get(1)?,
                },
                event_id: row.try_get(2)?,
            })
        })
        .collect()
}

/// The event `reader` parked at `at` applies now: its row goes.
pub async fn replayed(
    client: &impl GenericClient,
    reader: &str,
    at: LogPosition,
) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM herald.parked_events
             WHERE reader = $1 AND tx_id = $2::text::xid8 AND position = $3",
            &[&reader, &at.tx_text(), &at.position],
        )
        .await?;
    Ok(())
}

/// The event `reader` parked at `at` still fails, with `error`: its row stays, with the new
/// error, one more attempt and the request cleared (an operator asks again after the next fix).
pub async fn replay_failed(
    client: &impl GenericClient,
    reader: &str,
    at: LogPosition,
    error: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE herald.parked_events
             SET error = $4, attempts = attempts + 1, replay_requested_at = NULL
             WHERE reader = $1 AND tx_id = $2::text::xid8 AND position = $3",
            &[&reader, &at.tx_text(), &at.position, &error],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_parked_after_its_attempts_with_growing_waits() {
        let at = LogPosition {
            tx_id: 7,
            position: 3,
        };
        let mut poison = Poison::default();
        let mut waits = Vec::new();
        for _ in 0..Poison::ATTEMPTS {
            assert!(!poison.exhausted(at));
            waits.push(poison.failed(at));
        }
        assert!(poison.exhausted(at));
        assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
        let other = LogPosition {
            tx_id: 7,
            position: 4,
        };
        assert!(!poison.exhausted(other));
        poison.failed(other);
        assert_eq!(poison.attempts(other), 1);
        assert_eq!(poison.attempts(at), 0);
    }
}
