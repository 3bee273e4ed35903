//! A place in the global event log, `(tx_id, position)`, shown to clients as an opaque token.
//!
//! Positions come from a sequence, and sequences commit out of order; the transaction id orders
//! commits, so readers compare the pair. Clients only compare tokens by asking the server.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition {
    /// The appending transaction's `xid8`.
    pub tx_id: u64,
    /// The event's `position` (identity column); 0 means "before every event of `tx_id`".
    pub position: i64,
}

impl LogPosition {
    pub const START: LogPosition = LogPosition {
        tx_id: 0,
        position: 0,
    };

    /// Parses a token made by [`LogPosition::token`]; anything else is `None`.
    pub fn parse(token: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        let (tx, pos) = bytes.split_at(8);
        let tx_id = u64::from_be_bytes(tx.try_into().ok()?);
        let position = i64::from_be_bytes(pos.try_into().ok()?);
        (position >= 0).then_some(Self { tx_id, position })
    }

    pub fn token(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.tx_id.to_be_bytes());
        bytes[8..].copy_from_slice(&self.position.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `tx_id` as Postgres text, for `$n::text::xid8` parameters (the driver has no xid8 type).
    pub fn tx_text(&self) -> String {
        self.tx_id.to_string()
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

impl Serialize for LogPosition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.token())
    }
}

impl<'de> Deserialize<'de> for LogPosition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("invalid position token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_order() {
        let a = LogPosition {
            tx_id: 900,
            position: 7,
        };
        let b = LogPosition {
            tx_id: 901,
            position: 3,
        };
        assert_eq!(LogPosition::parse(&a.token()), Some(a));
        assert!(
            a < b,
            "a later transaction sorts after, whatever its position"
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in ["", "abc", "!!!!", &"A".repeat(40)] {
            assert_eq!(LogPosition::parse(bad), None, "{bad:?}");
        }
    }
}
