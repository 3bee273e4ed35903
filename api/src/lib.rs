//! The HTTP API: commands over HTTP, queries over views. It validates and authorizes, publishes
//! commands to JetStream and waits for their outcome; it never writes events itself.
//!
//! # Layout
//!
//! - [`startup`]: builds the router, binds the listener, serves until shutdown.
//! - [`browser`]: CORS (deny by default) and the security headers of every answer.
//! - [`connections`]: the listener: connection caps with eviction, head/body/idle/write
//!   timeouts, the listen backlog.
//! - [`state`]: the cheap-to-clone [`state::AppState`] every handler gets.
//! - [`error`]: [`error::ApiError`], the one error type, rendered as RFC 9457 problem+json.
//! - [`request_id`]: `X-Request-Id` on every response and in every problem.
//! - [`api_keys`]: API keys for services: created by a tenant's admins, stored as digests.
//! - [`auth`]: JWT verification (middleware), the [`auth::Caller`] extractor, dev tokens.
//! - [`jwks`]: an identity provider's rotating keys, from its JWKS URL.
//! - [`identity`]: the built-in login: sign-in, Herald's signing key, refresh tokens.
//! - [`passwords`]: argon2id hashing of `password` fields, and checking them at sign-in.
//! - [`body`]: the [`body::JsonBody`] extractor (content type, size, syntax).
//! - [`extract`]: `Path` and `Query` whose rejections are problems like every other error.
//! - [`rate_limit`]: a token bucket per caller; `429` with `Retry-After` over the limit.
//! - [`headers`]: `Prefer`, `If-Match`, `If-None-Match`, `Idempotency-Key`.
//! - [`submit`]: publishing a command and turning its outcome into a response.
//! - [`replies`]: routes handler replies (core NATS) to the requests waiting for them.
//! - [`views`]: reads from document views, and waiting for a view to reach a position.
//! - [`sse`]: Server-Sent Events text, built once per event and rights.
//! - [`tail`]: the shared tail of the log and per-subscriber catch-up, live fan-out and
//!   access checks behind the event streams (served by `routes::events`).
//! - [`openapi`]: the OpenAPI 3.1 description generated from the documents.
//! - [`versions`]: an app's API versions, served by the `/v1` routes with names translated.
//! - [`routes`]: one module per group of routes.
//!
//! A write flows: `auth` → `routes::documents` (authorize, validate) → `submit` (record,
//! publish, wait on `replies`) → response. A read flows: `auth` → `routes::documents` → `views`.

pub mod api_keys;
pub mod auth;
pub mod body;
pub mod browser;
pub mod connections;
pub mod error;
pub mod extract;
pub mod headers;
pub mod identity;
pub mod jwks;
pub mod list;
pub mod openapi;
pub mod passwords;
pub mod rate_limit;
pub mod replies;
pub mod request_id;
pub mod routes;
pub mod sse;
pub mod startup;
pub mod state;
pub mod submit;
pub mod tail;
pub mod versions;
pub mod views;

/// The api's own tables: API keys, then the built-in login's signing key and refresh tokens.
pub const MIGRATIONS: &[herald_bus::store::Migration] = &[
    herald_bus::store::Migration {
        version: 7,
        sql: include_str!("../migrations/0007_api_keys.sql"),
    },
    herald_bus::store::Migration {
        version: 8,
        sql: include_str!("../migrations/0008_identity.sql"),
    },
    herald_bus::store::Migration {
        version: 9,
        sql: include_str!("../migrations/0009_refresh_credential.sql"),
    },
];

pub use startup::ApiServer;
