//! The request headers that shape a command or a read: `Prefer` (RFC 7240), `If-Match` and
//! `If-None-Match` (RFC 9110, entity tags are `"<version>"`), `Idempotency-Key`, `traceparent`.

use std::time::Duration;

use axum::http::HeaderMap;

use crate::error::ApiError;

/// How long to wait for an outcome (or for a view), from `Prefer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `Prefer: respond-async`: answer `202` once the command is durable.
    Async,
    Up(Duration),
}

/// Every preference of the `Prefer` headers (RFC 7240), trimmed.
fn preferences(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(',').map(str::trim))
}

/// `Prefer: count=exact` on a list: count every match too.
pub fn prefer_count(headers: &HeaderMap) -> bool {
    preferences(headers).any(|p| p.eq_ignore_ascii_case("count=exact"))
}

pub fn prefer_wait(headers: &HeaderMap, default: Duration, max: Duration) -> Wait {
    let mut wait = Wait::Up(default);
    for preference in preferences(headers) {
        if preference.eq_ignore_ascii_case("respond-async") {
            return Wait::Async;
        }
        if let Some(secs) = preference
            .strip_prefix("wait=")
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            wait = Wait::Up(Duration::from_secs(secs).min(max));
        }
    }
    wait
}

/// The entity tag of a document version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match: "<version>"` as an expected version (`None` for `*` or an empty header).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    // `*` asks only that the document exists, which every action on it checks anyway; an empty
    // header states no precondition at all.
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::VersionMismatch("If-Match must be an entity tag such as \"3\"".into())
        })
}

/// Whether `If-None-Match` matches the current version (`*` matches any).
pub fn if_none_match(headers: &HeaderMap, version: i64) -> bool {
    let current = etag(version);
    headers
        .get_all("if-none-match")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == current)
}

/// The caller's `Idempotency-Key`, bounded so it can be stored and hashed safely.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::Validation {
            detail: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            errors: Vec::new(),
        }),
    }
}

/// The W3C trace context to carry into the command, if well-formed enough to keep.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn prefer_wait_and_async() {
        let d = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        assert_eq!(prefer_wait(&headers(&[]), d, max), Wait::Up(d));
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=2")]), d, max),
            Wait::Up(Duration::from_secs(2))
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=999")]), d, max),
            Wait::Up(max)
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "respond-async, wait=2")]), d, max),
            Wait::Async
        );
    }

    #[test]
    fn entity_tags() {
        assert_eq!(
            if_match(&headers(&[("if-match", "\"3\"")])).ok(),
            Some(Some(3))
        );
        assert!(if_match(&headers(&[("if-match", "3")])).is_err());
        assert!(if_none_match(
            &headers(&[("if-none-match", "\"1\", W/\"2\"")]),
            2
        ));
        assert!(!if_none_match(&headers(&[("if-none-match", "\"1\"")]), 2));
    }
}
