//! The state of one document and the events that change it. `apply` only changes state: every
//! check happens before, in [`crate::decide`]. The handler, the projector and the tests all
//! fold events through this one function, so a view always equals the fold of its events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ids::is_name;
use crate::schema::merge_patch;

/// What one event says happened to a document. The stored type is `<app>.<doc>.<verb>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The document's fields as created (defaults applied).
    Created(Map<String, Value>),
    /// Only the changed fields, as a merge patch (`null` = cleared).
    Updated(Map<String, Value>),
    Archived,
    Restored,
    /// A declared command's event (`<app>.<doc>.published`): the fields it sets, applied as a
    /// merge patch (or, as a stream's first event, the fields of the document it creates). The event records them, so folding it runs no command code and needs no
    /// declaration: a log folds the same after a command's code or YAML changes.
    Custom {
        verb: String,
        set: Map<String, Value>,
        /// The event's data when it is not `set` (a Rust command's own payload, such as
        /// `{"quantity": 5}` for a restock); `set` is then kept in the event's metadata.
        payload: Option<Map<String, Value>>,
    },
}

/// The verbs of the built-in events, in the order a stream can have them.
pub const VERBS: [&str; 4] = ["created", "updated", "archived", "restored"];

impl Change {
    pub fn verb(&self) -> &str {
        match self {
            Change::Created(_) => "created",
            Change::Updated(_) => "updated",
            Change::Archived => "archived",
            Change::Restored => "restored",
            Change::Custom { verb, .. } => verb,
        }
    }

    pub fn data(&self) -> Value {
        match self {
            Change::Created(fields)
            | Change::Updated(fields)
            | Change::Custom {
                payload: Some(fields),
                ..
            }
            | Change::Custom {
                set: fields,
                payload: None,
                ..
            } => Value::Object(fields.clone()),
            Change::Archived | Change::Restored => Value::Object(Map::new()),
        }
    }

    /// The fields an event sets when its data says something else (metadata `sets`).
    pub fn sets(&self) -> Option<&Map<String, Value>> {
        match self {
            Change::Custom {
                set,
                payload: Some(_),
                ..
            } => Some(set),
            _ => None,
        }
    }

    /// Reads back a stored event from its type's verb, its data and the `sets` of its metadata.
    pub fn from_stored(
        event_type: &str,
        data: &Value,
        sets: Option<&Map<String, Value>>,
    ) -> Option<Self> {
        let verb = event_type.rsplit('.').next()?;
        let fields = || data.as_object().cloned();
        match verb {
            "created" => fields().map(Change::Created),
            "updated" => fields().map(Change::Updated),
            "archived" => Some(Change::Archived),
            "restored" => Some(Change::Restored),
            verb if is_name(verb) => fields().map(|data| match sets {
                Some(set) => Change::Custom {
                    verb: verb.to_owned(),
                    set: set.clone(),
                    payload: Some(data),
                },
                None => Change::Custom {
                    verb: verb.to_owned(),
                    set: data,
                    payload: None,
                },
            }),
            _ => None,
        }
    }
}

/// Who and when, for the event being applied.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub version: i64,
    pub at: DateTime<Utc>,
    pub by: &'a str,
}

/// A document as its events made it: the fields plus the server-managed attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentState {
    pub id: Uuid,
    pub version: i64,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FoldError {
    #[error("the first event of a stream must create it, got `{0}`")]
    NotCreatedFirst(String),
    #[error("a stream can be created only once")]
    CreatedTwice,
}

/// Applies one event to the state before it (`None` before the first event).
pub fn apply(
    state: Option<DocumentState>,
    id: Uuid,
    change: &Change,
    stamp: Stamp<'_>,
) -> Result<DocumentState, FoldError> {
    let Some(mut doc) = state else {
        return match change {
            // A command `on: collection` creates its document with its own event.
            Change::Created(fields) | Change::Custom { set: fields, .. } => Ok(DocumentState {
                id,
                version: stamp.version,
                archived: false,
                created_at: stamp.at,
                created_by: stamp.by.to_owned(),
                updated_at: stamp.at,
                updated_by: stamp.by.to_owned(),
                fields: fields.clone(),
            }),
            other => Err(FoldError::NotCreatedFirst(other.verb().to_owned())),
        };
    };
    match change {
        Change::Created(_) => return Err(FoldError::CreatedTwice),
        Change::Updated(patch) | Change::Custom { set: patch, .. } => {
            let mut fields = Value::Object(std::mem::take(&mut doc.fields));
            merge_patch(&mut fields, &Value::Object(patch.clone()));
            if let Value::Object(map) = fields {
                doc.fields = map;
            }
        }
        Change::Archived => doc.archived = true,
        Change::Restored => doc.archived = false,
    }
    doc.version = stamp.version;
    doc.updated_at = stamp.at;
    doc.updated_by = stamp.by.to_owned();
    Ok(doc)
}

impl DocumentState {
    /// The document as the API shows it: its fields plus `id`, `version` and the audit stamps.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = self.fields.clone();
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert("version".into(), Value::from(self.version));
        out.insert("created_at".into(), Value::String(rfc3339(self.created_at)));
        out.insert("created_by".into(), Value::String(self.created_by.clone()));
        out.insert("updated_at".into(), Value::String(rfc3339(self.updated_at)));
        out.insert("updated_by".into(), Value::String(self.updated_by.clone()));
        out
    }
}

/// Timestamps are shown in UTC with microseconds, the precision Postgres keeps.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn folding_create_update_archive_restore() {
        let id = Uuid::now_v7();
        let at = Utc::now();
        let s = |version| Stamp {
            version,
            at,
            by: "u1",
        };
        let doc = apply(
            None,
            id,
            &Change::Created(obj(json!({"a": 1, "b": {"c": 2}}))),
            s(1),
        );
        let doc = doc.and_then(|d| {
            apply(
                Some(d),
                id,
                &Change::Updated(obj(json!({"a": null, "b": {"d": 3}}))),
                s(2),
            )
        });
        let doc = doc.and_then(|d| apply(Some(d), id, &Change::Archived, s(3)));
        let doc = doc.and_then(|d| apply(Some(d), id, &Change::Restored, s(4)));
        let doc = doc.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Value::Object(doc.fields), json!({"b": {"c": 2, "d": 3}}));
        assert_eq!(doc.version, 4);
        assert!(!doc.archived);
    }

    #[test]
    fn a_stream_starts_with_an_event_that_creates_it() {
        let stamp = Stamp {
            version: 1,
            at: Utc::now(),
            by: "u",
        };
        assert_eq!(
            apply(None, Uuid::now_v7(), &Change::Archived, stamp),
            Err(FoldError::NotCreatedFirst("archived".into()))
        );
        let imported = Change::Custom {
            verb: "imported".into(),
            set: obj(json!({"name": "Rex"})),
            payload: Some(obj(json!({"source": "csv"}))),
        };
        let state = apply(None, Uuid::now_v7(), &imported, stamp).unwrap();
        assert_eq!(
            (state.version, state.fields),
            (1, obj(json!({"name": "Rex"}))),
            "a command on the collection creates its document with its own event"
        );
    }

    #[test]
    fn stored_events_read_back() {
        let data = json!({"x": 1});
        assert_eq!(
            Change::from_stored("petstore.product.updated", &data, None),
            Some(Change::Updated(obj(data.clone())))
        );
        assert_eq!(
            Change::from_stored("petstore.product.published", &data, None),
            Some(Change::Custom {
                verb: "published".into(),
                set: obj(data.clone()),
                payload: None
            })
        );
        assert_eq!(
            Change::from_stored("petstore.product.published", &json!(3), None),
            None
        );
        assert_eq!(
            Change::from_stored("petstore.product.Bad", &data, None),
            None
        );
        let sets = obj(json!({"stock": 12}));
        assert_eq!(
            Change::from_stored("petstore.product.restocked", &data, Some(&sets)),
            Some(Change::Custom {
                verb: "restocked".into(),
                set: sets.clone(),
                payload: Some(obj(data.clone()))
            }),
            "a Rust command's event folds by the fields it recorded"
        );
    }
}
