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

/// `If-Match: "<version>"` as an expected version; `None` when absent or `*`, which asks only
/// that the document exists (every action on one checks that anyway).
///
/// Anything else — an empty value, a weak or unquoted tag, a list — states a precondition this
/// server cannot check, and running the change regardless would ignore it: `412`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let mut values = headers.get_all("if-match").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed =
        || ApiError::VersionMismatch("If-Match must be one entity tag such as \"3\", or *".into());
    if values.next().is_some() {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(malformed)
}

/// `If-None-Match` (RFC 9110, section 13.1.2): `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfNoneMatch {
    Absent,
    Any,
    /// The opaque parts of the tags, without quotes; weak tags count as strong (the weak
    /// comparison a `GET` uses).
    Tags(Vec<String>),
}

impl IfNoneMatch {
    /// Whether the header matches the document at `version`, so the answer is `304`.
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Absent => false,
            Self::Any => true,
            Self::Tags(tags) => {
                let current = version.to_string();
                tags.contains(&current)
            }
        }
    }
}

/// Parses every `If-None-Match` header; a value that is not `*` or a list of entity tags is
/// `400 invalid_header`, since a condition the server cannot read must not be ignored.
pub fn if_none_match(headers: &HeaderMap) -> Result<IfNoneMatch, ApiError> {
    let malformed = || ApiError::InvalidHeader {
        header: "If-None-Match",
        detail: "must be * or a comma-separated list of entity tags such as \"3\"".into(),
    };
    let mut tags = Vec::new();
    let mut any = false;
    for value in headers.get_all("if-none-match") {
        let text = value.to_str().map_err(|_| malformed())?.trim();
        if text == "*" {
            any = true;
            continue;
        }
        for tag in text.split(',') {
            tags.push(opaque_tag(tag.trim()).ok_or_else(malformed)?.to_owned());
        }
    }
    Ok(match (any, tags.is_empty()) {
        (true, _) => IfNoneMatch::Any,
        (false, false) => IfNoneMatch::Tags(tags),
        (false, true) if headers.contains_key("if-none-match") => return Err(malformed()),
        (false, true) => IfNoneMatch::Absent,
    })
}

/// The opaque part of an entity tag, `[W/]"<etagc>*"`.
fn opaque_tag(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| t.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b)))
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
    fn if_match_takes_one_strong_tag_or_a_star() {
        assert_eq!(if_match(&headers(&[])).ok(), Some(None));
        assert_eq!(if_match(&headers(&[("if-match", "*")])).ok(), Some(None));
        assert_eq!(
            if_match(&headers(&[("if-match", "\"3\"")])).ok(),
            Some(Some(3))
        );
        assert_eq!(
            if_match(&headers(&[("if-match", " \"3\" ")])).ok(),
            Some(Some(3))
        );
    }

    #[test]
    fn a_malformed_if_match_is_a_failed_precondition() {
        for bad in [
            "",
            " ",
            "3",
            "\"\"",
            "\"-3\"",
            "\"+3\"",
            "W/\"3\"",
            "\"3\", \"4\"",
            "\"99999999999999999999\"",
        ] {
            let error = if_match(&headers(&[("if-match", bad)]));
            assert!(
                matches!(error, Err(ApiError::VersionMismatch(_))),
                "{bad:?}: {error:?}"
            );
        }
        let twice = headers(&[("if-match", "\"3\""), ("if-match", "\"3\"")]);
        assert!(matches!(
            if_match(&twice),
            Err(ApiError::VersionMismatch(_))
        ));
    }

    #[test]
    fn if_none_match_lists_tags() {
        let parsed = |value: &'static str| if_none_match(&headers(&[("if-none-match", value)]));
        assert_eq!(if_none_match(&headers(&[])).ok(), Some(IfNoneMatch::Absent));
        assert_eq!(parsed("*").ok(), Some(IfNoneMatch::Any));
        let tags = parsed("\"1\", W/\"2\"").ok();
        assert!(
            tags.as_ref()
                .is_some_and(|t| t.matches(2) && t.matches(1) && !t.matches(3))
        );
        assert!(parsed("*").ok().is_some_and(|t| t.matches(7)));
        assert!(!IfNoneMatch::Absent.matches(1));
    }

    #[test]
    fn a_malformed_if_none_match_is_a_bad_request() {
        for bad in ["", "1", "\"1", "\"1\",", "W/", "\"a b\"", "**"] {
            let error = if_none_match(&headers(&[("if-none-match", bad)]));
            assert!(
                matches!(error, Err(ApiError::InvalidHeader { .. })),
                "{bad:?}: {error:?}"
            );
        }
    }
}
