//! Identifiers: tenants, document ids and command ids, each parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

/// The stream id of one document: `<app>.<doc>.<id>`.
pub fn stream_id(collection: &str, id: Uuid) -> String {
    format!("{collection}.{id}")
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
    fn idempotency_ids_are_scoped_per_caller() {
        let a = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u1", "k"));
        let b = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u2", "k"));
        let a2 = TenantId::parse("a").map(|t| CommandId::from_idempotency_key(&t, "u1", "k"));
        assert_eq!(a, a2);
        assert_ne!(a, b);
    }
}
