//! What to send: the `RequestSource` trait and the two built-in sources for smoke runs.

use std::sync::Arc;

use bytes::Bytes;
use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::LoadError;

/// One request to send, as produced by a [`RequestSource`].
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The label figures are grouped under in the report (for example `create`).
    pub kind: Arc<str>,
    pub method: Method,
    /// Origin-form path and query, such as `/v1/petstore/product?limit=50`.
    pub path: String,
    pub headers: HeaderMap,
    /// Serialized JSON; when present, `content-type: application/json` is added.
    pub body: Option<Bytes>,
}

/// Produces the requests of a run; the benchmark harness implements it per workload.
///
/// `connection` is the index of the connection that will send the request and `sequence`
/// a number unique within the run (warm-up included), so a source can spread writes over
/// documents or make names unique without shared state of its own.
///
/// ```no_run
/// use herald_load::{RequestSource, RequestSpec};
/// use hyper::http::{HeaderMap, Method};
///
/// struct ReadById;
///
/// impl RequestSource for ReadById {
///     fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
///         RequestSpec {
///             kind: "read".into(),
///             method: Method::GET,
///             path: format!("/v1/petstore/product/{}", sequence % 10_000),
///             headers: HeaderMap::new(),
///             body: None,
///         }
///     }
/// }
/// ```
pub trait RequestSource: Send + Sync + 'static {
    fn request(&self, connection: usize, sequence: u64) -> RequestSpec;
}

/// Sends the same `GET` again and again.
#[derive(Debug, Clone)]
pub struct FixedGet {
    kind: Arc<str>,
    path: String,
    headers: HeaderMap,
}

impl FixedGet {
    #[must_use]
    pub fn new(path: &str, headers: HeaderMap) -> Self {
        Self {
            kind: format!("GET {path}").into(),
            path: path.to_owned(),
            headers,
        }
    }
}

impl RequestSource for FixedGet {
    fn request(&self, _connection: usize, _sequence: u64) -> RequestSpec {
        RequestSpec {
            kind: Arc::clone(&self.kind),
            method: Method::GET,
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: None,
        }
    }
}

/// Sends a `POST` whose JSON body is a template with every `{n}` replaced by the sequence
/// number, so that each created document differs (unique names, no idempotent replays).
#[derive(Debug, Clone)]
pub struct TemplatePost {
    kind: Arc<str>,
    path: String,
    headers: HeaderMap,
    template: String,
}

impl TemplatePost {
    /// Checks up front that the template is JSON once filled in, so that a typo fails the
    /// run immediately instead of producing a report full of 400s.
    pub fn new(path: &str, headers: HeaderMap, template: &str) -> Result<Self, LoadError> {
        serde_json::from_str::<serde_json::Value>(&fill_template(template, 0))
            .map_err(LoadError::InvalidTemplate)?;
        Ok(Self {
            kind: format!("POST {path}").into(),
            path: path.to_owned(),
            headers,
            template: template.to_owned(),
        })
    }
}

impl RequestSource for TemplatePost {
    fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
        RequestSpec {
            kind: Arc::clone(&self.kind),
            method: Method::POST,
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: Some(Bytes::from(fill_template(&self.template, sequence))),
        }
    }
}

/// Replaces every `{n}` in `template` by `sequence`.
#[must_use]
pub fn fill_template(template: &str, sequence: u64) -> String {
    template.replace("{n}", &sequence.to_string())
}

/// Parses a `name: value` header as given on the command line.
pub fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), LoadError> {
    let invalid = || LoadError::InvalidHeader(line.to_owned());
    let (name, value) = line.split_once(':').ok_or_else(invalid)?;
    let name = HeaderName::try_from(name.trim()).map_err(|_| invalid())?;
    let value = HeaderValue::try_from(value.trim()).map_err(|_| invalid())?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_replaces_every_placeholder() {
        assert_eq!(
            fill_template(r#"{"name":"p{n}","sku":"{n}-x"}"#, 42),
            r#"{"name":"p42","sku":"42-x"}"#
        );
    }

    #[test]
    fn template_post_fills_the_body_with_the_sequence_number() {
        let source =
            TemplatePost::new("/p", HeaderMap::new(), r#"{"name":"p{n}","price":1}"#).unwrap();
        let spec = source.request(3, 7);
        assert_eq!(spec.method, Method::POST);
        assert_eq!(
            spec.body.unwrap(),
            Bytes::from(r#"{"name":"p7","price":1}"#)
        );
    }

    #[test]
    fn template_that_is_not_json_is_refused() {
        let err = TemplatePost::new("/p", HeaderMap::new(), r#"{"name":p{n}"#).unwrap_err();
        assert!(matches!(err, LoadError::InvalidTemplate(_)));
    }

    #[test]
    fn header_lines_are_split_on_the_first_colon() {
        let (name, value) = parse_header("authorization: Bearer a:b").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer a:b");
        assert!(matches!(
            parse_header("nocolon"),
            Err(LoadError::InvalidHeader(_))
        ));
    }
}
