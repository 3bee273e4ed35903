//! Commands travel from the api to the handlers as a [`CommandEnvelope`]; the handler's answer
//! is an [`Outcome`], stored with the command (so retries and redeliveries get it back) and
//! sent to the waiting api.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::Principal;
use crate::document::DocumentState;
use crate::ids::{Collection, CommandId};
use crate::position::LogPosition;
use crate::schema::{AclAction, FieldError};

/// What the command asks for. Imperative, like every command name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Create {
        fields: Map<String, Value>,
    },
    Update {
        patch: Map<String, Value>,
    },
    Archive,
    Restore,
    /// A command the document declares (`commands.<name>`), with its params as sent.
    Run {
        command: String,
        params: Map<String, Value>,
    },
}

impl Action {
    /// The field values it sets (a create's fields, an update's patch; none otherwise).
    pub fn values(&self) -> &Map<String, Value> {
        static NONE: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        match self {
            Action::Create { fields } => fields,
            Action::Update { patch } => patch,
            Action::Archive | Action::Restore | Action::Run { .. } => &NONE,
        }
    }

    /// The ACL action that guards it.
    pub fn acl_action(&self) -> AclAction {
        match self {
            Action::Create { .. } => AclAction::Create,
            Action::Update { .. } => AclAction::Update,
            Action::Archive | Action::Restore => AclAction::Delete,
            Action::Run { command, .. } => AclAction::Command(command.clone()),
        }
    }
}

/// A command on one document, as published to `HERALD_COMMANDS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub id: CommandId,
    pub app: String,
    pub doc: String,
    pub document_id: Uuid,
    pub action: Action,
    /// From `If-Match`: the stream version the caller saw.
    pub expected_version: Option<i64>,
    pub principal: Principal,
    pub idempotency_key: Option<String>,
    /// A digest of the request, to tell a retry from a different request reusing a key.
    pub request_hash: String,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// W3C `traceparent` of the request, carried into event metadata.
    pub traceparent: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

impl CommandEnvelope {
    pub fn collection(&self) -> Collection {
        Collection::new(&self.app, &self.doc)
    }
}

/// The digest of a request: method, path and body bytes.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a handled command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded(Success),
    Rejected(Rejection),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Success {
    /// What the command did to its document.
    #[serde(alias = "http_status")]
    pub effect: Effect,
    /// The document after the command, all fields (the api removes what the caller may not read).
    pub document: DocumentState,
    /// The last event's place in the log (the stream's last event when nothing changed).
    pub position: Option<LogPosition>,
}

/// What a successful command did to its document (the api answers `201`, `200` or `204`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "serde_json::Value")]
pub enum Effect {
    Created,
    /// Updated or restored, or left as it was by an update that changes nothing.
    Changed,
    Archived,
}

/// Outcomes stored before effects had names carry the HTTP status the api answered with.
impl TryFrom<serde_json::Value> for Effect {
    type Error = String;

    fn try_from(stored: serde_json::Value) -> Result<Self, Self::Error> {
        match stored
            .as_str()
            .or(stored.as_u64().map(|status| match status {
                201 => "created",
                204 => "archived",
                _ => "changed",
            })) {
            Some("created") => Ok(Self::Created),
            Some("changed") => Ok(Self::Changed),
            Some("archived") => Ok(Self::Archived),
            _ => Err(format!("unknown command effect {stored}")),
        }
    }
}

/// Why a command was refused; becomes an RFC 9457 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    NotFound,
    Forbidden,
    Conflict,
    UniqueViolation,
    VersionMismatch,
    PreconditionRequired,
    ValidationFailed,
    /// A declared command's guard refused it, with the app's own code (`not_draft`).
    Refused(String),
    /// A command's code failed (a panic, data that is not an object): the app's fault, and
    /// opaque to the caller.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: RejectionCode,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Rejection {
    pub fn new(code: RejectionCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            code: RejectionCode::ValidationFailed,
            detail: "the request body is not valid for this document".into(),
            errors,
        }
    }

    pub fn not_found() -> Self {
        Self::new(RejectionCode::NotFound, "no such document")
    }
}

/// A command as stored: accepted by the api, then completed by a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCommand {
    pub id: CommandId,
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `None` while the command is still accepted and not yet handled.
    pub outcome: Option<Outcome>,
    pub principal_sub: String,
    /// `<app>.<doc>` of the command's document.
    pub collection: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Effect;

    #[test]
    fn an_effect_reads_as_its_name_or_as_the_status_stored_before_it_had_one() {
        let read = |stored| serde_json::from_value::<Effect>(stored).ok();
        assert_eq!(read(json!("created")), Some(Effect::Created));
        assert_eq!(read(json!("changed")), Some(Effect::Changed));
        assert_eq!(read(json!("archived")), Some(Effect::Archived));
        assert_eq!(read(json!(201)), Some(Effect::Created));
        assert_eq!(read(json!(200)), Some(Effect::Changed));
        assert_eq!(read(json!(204)), Some(Effect::Archived));
        assert_eq!(read(json!("deleted")), None);
        assert_eq!(
            serde_json::to_value(Effect::Archived).ok(),
            Some(json!("archived"))
        );
    }
}
