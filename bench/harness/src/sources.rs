//! The requests of each workload, for Herald and for the direct baseline alike: the same
//! bodies, the same documents, the same query, only the paths (and Herald's token) differ.

use std::sync::Arc;

use bytes::Bytes;
use herald_load::{RequestSource, RequestSpec};
use hyper::http::{HeaderMap, HeaderValue, Method, header};
use uuid::Uuid;

/// One of the two servers under test, as the request sources address it.
#[derive(Debug, Clone)]
pub struct Api {
    /// The collection's path: `/v1/petstore/product` or `/direct/<tenant>/product`.
    pub collection: String,
    /// Herald's bearer token; nothing for the baseline.
    pub headers: HeaderMap,
    pub flavour: Flavour,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Herald,
    Direct,
}

impl Api {
    pub fn herald(token: &str) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        Ok(Self {
            collection: "/v1/petstore/product".to_owned(),
            headers,
            flavour: Flavour::Herald,
        })
    }

    pub fn direct(tenant: &str) -> Self {
        Self {
            collection: format!("/direct/{tenant}/product"),
            headers: HeaderMap::new(),
            flavour: Flavour::Direct,
        }
    }

    fn spec(
        &self,
        kind: &Arc<str>,
        method: Method,
        path: String,
        body: Option<String>,
    ) -> RequestSpec {
        RequestSpec {
            kind: Arc::clone(kind),
            method,
            path,
            headers: self.headers.clone(),
            body: body.map(Bytes::from),
        }
    }
}

/// A new product per request; `run` keeps names unique across runs on one database.
pub struct Create {
    api: Api,
    kind: Arc<str>,
    run: String,
}

impl Create {
    pub fn new(api: Api, run: &str) -> Self {
        Self {
            api,
            kind: "create".into(),
            run: run.to_owned(),
        }
    }
}

impl RequestSource for Create {
    fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
        let body = format!(
            r#"{{"name":"Bench {run} {sequence}","price":{price}.25,"stock":{stock},"status":"published","tags":["dog","toy"],"description":"A sturdy rope toy for large dogs"}}"#,
            run = self.run,
            price = sequence % 1000,
            stock = 5 + sequence % 500,
        );
        self.api.spec(
            &self.kind,
            Method::POST,
            self.api.collection.clone(),
            Some(body),
        )
    }
}

/// A merge patch of price and stock on one of `ids`, picked by a stride that visits every
/// document before repeating one.
pub struct Update {
    api: Api,
    kind: Arc<str>,
    ids: Vec<Uuid>,
}

impl Update {
    pub fn new(api: Api, kind: &str, ids: Vec<Uuid>) -> Self {
        Self {
            api,
            kind: kind.into(),
            ids,
        }
    }
}

impl RequestSource for Update {
    fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
        let id = pick(&self.ids, sequence);
        let body = format!(
            r#"{{"price":{}.5,"stock":{}}}"#,
            sequence % 1000,
            5 + sequence % 500
        );
        let path = format!("{}/{id}", self.api.collection);
        self.api.spec(&self.kind, Method::PATCH, path, Some(body))
    }
}

/// A read of one of `ids`.
pub struct Read {
    api: Api,
    kind: Arc<str>,
    ids: Vec<Uuid>,
}

impl Read {
    pub fn new(api: Api, ids: Vec<Uuid>) -> Self {
        Self {
            api,
            kind: "read".into(),
            ids,
        }
    }
}

impl RequestSource for Read {
    fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
        let path = format!("{}/{}", self.api.collection, pick(&self.ids, sequence));
        self.api.spec(&self.kind, Method::GET, path, None)
    }
}

/// W4's list: published products under a price bound, most expensive first, 50 a page. The
/// bound moves with the sequence so that pages differ, identically on both servers.
pub struct List {
    api: Api,
    kind: Arc<str>,
}

impl List {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            kind: "list".into(),
        }
    }
}

impl RequestSource for List {
    fn request(&self, _connection: usize, sequence: u64) -> RequestSpec {
        let bound = 50 + sequence % 200;
        let query = match self.api.flavour {
            Flavour::Herald => {
                format!("status=eq.published&price=lt.{bound}&order=price.desc&limit=50")
            }
            Flavour::Direct => format!("status=published&price_lt={bound}&limit=50"),
        };
        let path = format!("{}?{query}", self.api.collection);
        self.api.spec(&self.kind, Method::GET, path, None)
    }
}

/// The id for `sequence`: a stride coprime with most lengths spreads consecutive requests
/// over distant documents, so concurrent requests rarely meet on one row.
fn pick(ids: &[Uuid], sequence: u64) -> Uuid {
    let len = ids.len().max(1) as u64;
    let index = usize::try_from(sequence.wrapping_mul(7919) % len).unwrap_or(0);
    ids.get(index).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn creates_are_json_with_unique_names() {
        let source = Create::new(Api::direct("t"), "r1");
        let a: serde_json::Value =
            serde_json::from_slice(&source.request(0, 1).body.unwrap()).unwrap();
        let b: serde_json::Value =
            serde_json::from_slice(&source.request(0, 2).body.unwrap()).unwrap();
        assert_ne!(a["name"], b["name"]);
        assert_eq!(a["status"], "published");
    }

    #[test]
    fn the_stride_visits_every_document() {
        let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
        let mut seen: Vec<Uuid> = (0..10).map(|s| pick(&ids, s)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn both_servers_get_the_same_list_query() {
        let herald = List::new(Api::herald("t").unwrap()).request(0, 3);
        let direct = List::new(Api::direct("bench")).request(0, 3);
        assert_eq!(
            herald.path,
            "/v1/petstore/product?status=eq.published&price=lt.53&order=price.desc&limit=50"
        );
        assert_eq!(
            direct.path,
            "/direct/bench/product?status=published&price_lt=53&limit=50"
        );
        assert!(herald.headers.contains_key(header::AUTHORIZATION));
    }
}
