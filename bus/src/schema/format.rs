//! What each field kind accepts as JSON: its JSON type and, for string kinds, its format.

use serde_json::Value;

use super::model::FieldKind;

/// Whether `value` has the JSON type that `kind` is stored as (objects and arrays are matched
/// by the caller, so they never get here with the right type).
pub fn has_type(kind: &FieldKind, value: &Value) -> bool {
    match kind {
        FieldKind::Integer => is_integer(value),
        FieldKind::Number => value.as_f64().is_some_and(f64::is_finite),
        FieldKind::Boolean => value.is_boolean(),
        FieldKind::Object(_) | FieldKind::Array(_) => false,
        _ => value.is_string(),
    }
}

/// Integers travel as JSON numbers; `3.0` is accepted because many clients cannot tell the
/// difference, but the value must fit the `bigint` it is stored in.
fn is_integer(value: &Value) -> bool {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    match value {
        Value::Number(n) if n.is_i64() => true,
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)),
        _ => false,
    }
}

/// The `type` error detail for a kind.
pub fn expected(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Integer => "must be an integer",
        FieldKind::Number => "must be a number",
        FieldKind::Boolean => "must be true or false",
        FieldKind::Object(_) => "must be an object",
        FieldKind::Array(_) => "must be an array",
        _ => "must be a string",
    }
}

/// The longest password hash kept; argon2id's PHC strings are about a hundred characters.
const MAX_PASSWORD_HASH: usize = 256;

/// Whether `text` is what a `password` field stores: an argon2id hash in the PHC string format,
/// never the password itself.
fn is_password_hash(text: &str) -> bool {
    text.starts_with("$argon2id$") && text.len() <= MAX_PASSWORD_HASH
}

/// Why `text` is not in the format of `kind`, if it is not.
pub fn format_problem(kind: &FieldKind, text: &str) -> Option<&'static str> {
    // Postgres text and jsonb cannot hold NUL; refuse it here rather than fail at commit.
    if text.contains('\0') {
        return Some("must not contain NUL characters");
    }
    let valid = match kind {
        // Year 0 parses but has no place in the Gregorian calendar Postgres stores.
        FieldKind::Datetime => chrono::DateTime::parse_from_rfc3339(text)
            .is_ok_and(|t| chrono::Datelike::year(&t.naive_utc()) >= 1),
        // chrono alone would also accept unpadded months and days, signs and spaces.
        FieldKind::Date => {
            text.len() == 10
                && text.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
                && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .is_ok_and(|d| chrono::Datelike::year(&d) >= 1)
        }
        // Only the canonical hyphenated form, so one id has one spelling.
        FieldKind::Uuid | FieldKind::Ref { .. } => {
            text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
        }
        FieldKind::Email => {
            let options = email_address::Options::default()
                .without_display_text()
                .without_domain_literal()
                .with_required_tld();
            email_address::EmailAddress::parse_with_options(text, options).is_ok()
        }
        FieldKind::Url => url::Url::parse(text)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host()),
        FieldKind::Password => is_password_hash(text),
        _ => true,
    };
    if valid {
        return None;
    }
    Some(match kind {
        FieldKind::Datetime => "must be an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z",
        FieldKind::Date => "must be a date in the form YYYY-MM-DD",
        FieldKind::Uuid => "must be a UUID",
        FieldKind::Ref { .. } => "must be a document id (UUID)",
        FieldKind::Email => "must be an email address",
        FieldKind::Password => "must be an argon2id hash: passwords are hashed by the api",
        _ => "must be an absolute http or https URL",
    })
}

#[cfg(test)]
mod tests {
    use super::{FieldKind, format_problem};

    #[test]
    fn a_password_field_holds_only_an_argon2id_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        assert_eq!(format_problem(&FieldKind::Password, hash), None);
        for clear in [
            "correct horse battery staple",
            "$argon2i$v=19$m=1,t=1,p=1$x$y",
            "",
        ] {
            assert!(
                format_problem(&FieldKind::Password, clear).is_some(),
                "{clear}"
            );
        }
        let long = format!("$argon2id${}", "a".repeat(300));
        assert!(format_problem(&FieldKind::Password, &long).is_some());
    }
}
