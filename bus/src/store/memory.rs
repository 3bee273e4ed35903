//! An in-memory [`EventStore`] for given/when/then tests of the handler's decisions. It keeps
//! the same contract as Postgres (expected versions, unique values, stored outcomes) but
//! persists nothing and is never used to serve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;

use super::{Commit, EventStore, LoadedStream, StoreError, event_type};
use crate::command::{CommandEnvelope, Outcome, Rejection, StoredCommand, Success};
use crate::document::DocumentState;
use crate::ids::{CommandId, TenantId};
use crate::position::LogPosition;

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEvent {
    pub tenant: TenantId,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    pub data: serde_json::Value,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<(TenantId, String), LoadedStream>,
    commands: HashMap<CommandId, StoredCommand>,
    unique: HashMap<(TenantId, String, String, String), String>,
    events: Vec<MemoryEvent>,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event appended so far, in order.
    pub fn events(&self) -> Vec<MemoryEvent> {
        self.lock().events.clone()
    }

    fn stored(command: &CommandEnvelope, outcome: &Outcome) -> StoredCommand {
        StoredCommand {
            id: command.id,
            request_hash: command.request_hash.clone(),
            created_at: command.submitted_at,
            completed_at: Some(Utc::now()),
            outcome: Some(outcome.clone()),
            principal_sub: command.principal.actor_sub().to_owned(),
            collection: command.collection().to_string(),
        }
    }
}

impl EventStore for MemoryStore {
    async fn load_command(&self, id: CommandId) -> Result<Option<StoredCommand>, StoreError> {
        Ok(self.lock().commands.get(&id).cloned())
    }

    async fn load_stream(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<Option<LoadedStream>, StoreError> {
        let key = (tenant.clone(), stream_id.to_owned());
        Ok(self.lock().streams.get(&key).cloned())
    }

    async fn load_streams(
        &self,
        tenant: &TenantId,
        stream_ids: &[String],
    ) -> Result<HashMap<String, LoadedStream>, StoreError> {
        let inner = self.lock();
        Ok(stream_ids
            .iter()
            .filter_map(|id| {
                let stream = inner.streams.get(&(tenant.clone(), id.clone()))?;
                Some((id.clone(), stream.clone()))
            })
            .collect())
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<Outcome, StoreError> {
        let mut inner = self.lock();
        let command = commit.command;
        if let Some(outcome) = inner
            .commands
            .get(&command.id)
            .and_then(|c| c.outcome.clone())
        {
            return Ok(outcome);
        }
        let tenant = command.principal.tenant.clone();
        let key = (tenant.clone(), commit.stream_id.to_owned());
        let actual = inner
            .streams
            .get(&key)
            .map(|s| s.state.version)
            .unwrap_or(0);
        if actual != commit.expected_version {
            return Err(StoreError::VersionConflict {
                stream_id: commit.stream_id.to_owned(),
                expected: commit.expected_version,
                actual: Some(actual),
            });
        }
        let collection = command.collection().to_string();
        let unique_key = |field: &str, value: &str| {
            (
                tenant.clone(),
                collection.clone(),
                field.to_owned(),
                value.to_owned(),
            )
        };
        for reserved in commit.reserve {
            let holder = inner
                .unique
                .get(&unique_key(&reserved.field, &reserved.value));
            if holder.is_some_and(|h| h != commit.stream_id) {
                return Err(StoreError::UniqueTaken {
                    field: reserved.field.clone(),
                });
            }
        }
        for released in commit.release {
            inner
                .unique
                .remove(&unique_key(&released.field, &released.value));
        }
        for reserved in commit.reserve {
            let key = unique_key(&reserved.field, &reserved.value);
            inner.unique.insert(key, commit.stream_id.to_owned());
        }
        let mut position = commit.previous_position;
        for (offset, change) in commit.changes.iter().enumerate() {
            inner.events.push(MemoryEvent {
                tenant: tenant.clone(),
                stream_id: commit.stream_id.to_owned(),
                version: commit.expected_version + 1 + offset as i64,
                event_type: event_type(command, change),
                data: change.data(),
            });
            position = Some(LogPosition {
                tx_id: inner.events.len() as u64,
                position: inner.events.len() as i64,
            });
        }
        if let (false, Some(last_position)) = (commit.changes.is_empty(), position) {
            let state: DocumentState = commit.state.clone();
            inner.streams.insert(
                key,
                LoadedStream {
                    state,
                    last_position,
                },
            );
        }
        let outcome = Outcome::Succeeded(Success {
            effect: commit.effect,
            document: commit.state.clone(),
            position,
        });
        inner
            .commands
            .insert(command.id, Self::stored(command, &outcome));
        Ok(outcome)
    }

    async fn reject(
        &self,
        command: &CommandEnvelope,
        rejection: Rejection,
    ) -> Result<Outcome, StoreError> {
        let mut inner = self.lock();
        if let Some(outcome) = inner
            .commands
            .get(&command.id)
            .and_then(|c| c.outcome.clone())
        {
            return Ok(outcome);
        }
        let outcome = Outcome::Rejected(rejection);
        inner
            .commands
            .insert(command.id, Self::stored(command, &outcome));
        Ok(outcome)
    }
}
