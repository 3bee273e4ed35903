//! Herald's core: everything the api, projector and workers share, and nothing that speaks HTTP.
//!
//! # Layout
//!
//! - [`settings`] and [`telemetry`]: the typed, layered configuration and log set-up every role uses.
//! - [`schema`]: documents declared in YAML (`apps/<app>/<doc>.yaml`) and request validation.
//! - [`access`]: who the caller is ([`access::Principal`]) and what its roles allow.
//! - [`ids`] and [`position`]: identifiers and the opaque token of a place in the global log.
//! - [`document`]: the state of one document and how events fold into it.
//! - [`command`]: a *command* is a request to change one document (create, update, archive,
//!   restore); its envelope travels over the bus, its outcome comes back to the api.
//! - [`decide`]: the pure decision — given a document's state and a command, the *events* (facts,
//!   past tense) to append, or the reason to reject.
//! - [`rust_command`]: commands whose decision is the app's Rust code (`kind: rust`).
//! - [`references`]: `ref` values must resolve to a document the caller may read.
//! - [`store`]: the event store in PostgreSQL. A *stream* is the ordered events of one document;
//!   appends check the expected version, record the command outcome and unique-key reservations
//!   in the same transaction. The ordered reader walks the global log without skipping.
//! - [`nats`]: JetStream streams and consumers, named under a configurable prefix.
//! - [`supervise`]: a role that fails or panics is restarted with back-off, not fatal; the
//!   readers that must see every event park one they cannot read or apply (`store::parked`).
//!
//! A command flows: api → `nats` (HERALD_COMMANDS) → the handler (`herald-handler`) → `decide`
//! → `store` → reply.

pub mod access;
pub mod command;
pub mod decide;
pub mod document;
pub mod ids;
pub mod nats;
pub mod position;
pub mod references;
pub mod rust_command;
pub mod schema;
pub mod settings;
pub mod store;
pub mod supervise;
pub mod telemetry;
