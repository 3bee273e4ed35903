//! The exact syntax of what the server parses from strings — position tokens, cursors, filters,
//! `as_of`, entity tags — as JSON Schema, so the description accepts what the server accepts.

use serde_json::{Value, json};

/// A position token ([`herald_bus::position::LogPosition::token`]): 16 bytes, base64url without
/// padding, so 22 characters. The 11th carries the sign bit of the position half, which is
/// never set (weight 2 of its six bits); the last carries two bits and four zero ones.
pub const POSITION_PATTERN: &str =
    "^[A-Za-z0-9_-]{10}[ABEFIJMNQRUVYZcdghklopstwx014589][A-Za-z0-9_-]{10}[AQgw]$";

/// A cursor: a payload and a 16-byte MAC, base64url without padding.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{22,}$";

/// An entity tag as Herald makes them, or `*`.
pub const IF_MATCH_PATTERN: &str = "^(\\*|\"[0-9]{1,18}\")$";

/// `*` or a comma-separated list of entity tags, weak ones too (RFC 9110, section 8.8.3).
pub const IF_NONE_MATCH_PATTERN: &str =
    "^[ \\t]*(\\*|(W/)?\"[!#-~]*\"([ \\t]*,[ \\t]*(W/)?\"[!#-~]*\")*)[ \\t]*$";

pub fn position() -> Value {
    json!({"type": "string", "pattern": POSITION_PATTERN,
        "description": "An opaque position token made by this server (`Herald-Position`, an event's `position`)."})
}

pub fn cursor() -> Value {
    json!({"type": "string", "pattern": CURSOR_PATTERN,
        "description": "An opaque cursor from `next_cursor`, bound to the query that made it."})
}

/// A filter on a field taking `operators`: `[not.]<operator>.<value>`.
pub fn filter(operators: &[&str]) -> Value {
    json!({"type": "string", "pattern": format!("^(not\\.)?({})\\.", operators.join("|"))})
}

/// `as_of`: a version (from 1) or an RFC 3339 time.
pub fn as_of() -> Value {
    json!({"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": i64::MAX},
        {"type": "string", "format": "date-time"},
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_bus::position::LogPosition;
    use regex::Regex;

    fn regex(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    #[test]
    fn the_position_pattern_accepts_exactly_the_tokens_the_server_parses() {
        let pattern = regex(POSITION_PATTERN);
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let base = LogPosition {
            tx_id: 0x0123_4567_89ab_cdef,
            position: 0x0fed_cba9_8765_4321,
        }
        .token();
        for index in 0..22 {
            for c in alphabet.chars() {
                let mut token: Vec<char> = base.chars().collect();
                token[index] = c;
                let token: String = token.into_iter().collect();
                assert_eq!(
                    LogPosition::parse(&token).is_some(),
                    pattern.is_match(&token),
                    "{token}"
                );
            }
        }
        let last = LogPosition {
            tx_id: u64::MAX,
            position: i64::MAX,
        };
        for position in [LogPosition::START, last] {
            assert!(pattern.is_match(&position.token()));
        }
        for bad in ["", "AAAA", &"A".repeat(23)] {
            assert!(!pattern.is_match(bad), "{bad:?}");
        }
    }

    #[test]
    fn entity_tag_patterns() {
        let if_match = regex(IF_MATCH_PATTERN);
        for good in ["*", "\"1\"", "\"42\""] {
            assert!(if_match.is_match(good), "{good}");
        }
        for bad in ["", "1", "W/\"1\"", "\"1\", \"2\"", "\"a\""] {
            assert!(!if_match.is_match(bad), "{bad}");
        }
        let if_none_match = regex(IF_NONE_MATCH_PATTERN);
        for good in ["*", "\"1\"", "\"1\", W/\"2\"", "W/\"x\",\"\""] {
            assert!(if_none_match.is_match(good), "{good}");
        }
        for bad in ["", "1", "\"1", "\"1\",", "**"] {
            assert!(!if_none_match.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn filter_patterns_name_the_operators() {
        let pattern = regex(
            filter(&["eq", "lt"])["pattern"]
                .as_str()
                .unwrap_or_default(),
        );
        assert!(
            pattern.is_match("eq.3") && pattern.is_match("not.lt.") && !pattern.is_match("gt.3")
        );
    }
}
