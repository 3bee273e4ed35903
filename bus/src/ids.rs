//! Identifiers and names: tenants, command ids, collections, streams and event types, each
//! parsed once at the edge and written in one place.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Names of apps, documents, fields and custom commands end up in URLs, subjects and SQL
/// identifiers, so they share one conservative shape: `^[a-z][a-z0-9_]*$`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A tenant id from the token's `tid` claim. It becomes a NATS subject token and a column value,
/// so it is restricted to characters that are safe in both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a command. Derived from the caller's `Idempotency-Key` when there is one, so a
/// retry maps to the same command (and the same JetStream `Nats-Msg-Id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommandId(pub Uuid);

/// Namespace for idempotency-derived command ids (UUID v5).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6865_7261_6c64_4964_656d_706f_7465_6e74);

impl CommandId {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// The same tenant, subject and key always give the same id: keys are scoped per caller.
    pub fn from_idempotency_key(tenant: &TenantId, sub: &str, key: &str) -> Self {
        let name = format!("{}\u{0}{}\u{0}{}", tenant.as_str(), sub, key);
        Self(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The documents of one declaration, `<app>.<doc>`. It names their streams, view, event types
/// and subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Collection {
    pub app: String,
    pub doc: String,
}

impl Collection {
    pub fn new(app: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            doc: doc.into(),
        }
    }

    /// `<app>.<doc>`, both names; `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let (app, doc) = text.split_once('.')?;
        (is_name(app) && is_name(doc)).then(|| Self::new(app, doc))
    }

    /// The stream of the document `id`.
    pub fn stream(&self, id: Uuid) -> StreamId {
        StreamId(format!("{self}.{id}"))
    }

    /// The type of this collection's events with `verb`.
    pub fn event_type(&self, verb: &str) -> EventType {
        EventType {
            collection: self.clone(),
            verb: verb.to_owned(),
        }
    }
}

/// Written as `<app>.<doc>`, as everywhere else.
impl Serialize for Collection {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app, self.doc)
    }
}

/// The stream of one document: `<app>.<doc>.<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamId(String);

impl StreamId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of an event: `<app>.<doc>.<verb>`, the verb in the past tense (`created`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventType {
    pub collection: Collection,
    pub verb: String,
}

impl EventType {
    /// `<app>.<doc>.<verb>`, all names; `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let (collection, verb) = text.rsplit_once('.')?;
        let collection = Collection::parse(collection)?;
        is_name(verb).then(|| collection.event_type(verb))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.collection, self.verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_subject_safe() {
        assert!(TenantId::parse("acme-01_x").is_some());
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn collections_and_event_types_read_back_as_written() {
        let product = Collection::parse("petstore.product");
        assert_eq!(product, Some(Collection::new("petstore", "product")));
        let created = EventType::parse("petstore.product.created");
        assert_eq!(
            created.as_ref().map(ToString::to_string).as_deref(),
            Some("petstore.product.created")
        );
        assert_eq!(created.map(|t| t.collection), product);
        for bad in ["petstore", "petstore.", ".product", "Pet.product", "a.b.c"] {
            assert_eq!(Collection::parse(bad), None, "{bad}");
        }
        for bad in ["petstore.product", "petstore.product.", "a..created"] {
            assert_eq!(EventType::parse(bad), None, "{bad}");
        }
        let id = Uuid::nil();
        let stream = Collection::new("a", "b").stream(id);
        assert_eq!(stream.as_str(), format!("a.b.{id}"));
    }

    #[test]
    fn idempotency_ids_are_scoped_per_caller() {
        let a = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u1", "k"));
        let b = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u2", "k"));
        let a2 = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u1", "k"));
        assert_eq!(a, a2);
        assert_ne!(a, b);
    }
}
