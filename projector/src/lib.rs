//! Document views: one table per document and projection version, kept equal to the fold of
//! its events.
//!
//! # Layout
//!
//! - [`table`]: the tables of a view, derived from its YAML: typed columns and indexes for
//!   `filter`/`sort` fields, `tsvector` columns for `search` fields, the batched upsert, and the SQL view reads go through.
//! - [`catalog`]: `herald.projections`, the versions of each view — one `active` serving reads,
//!   at most one `building` from position zero — and the atomic switch between them.
//! - [`apply`]: [`apply::project_next`] reads the next batch of the ordered log, folds it into
//!   the rows it touches and writes them with the *checkpoint* (how far the version has read)
//!   in the same transaction, so a crash never applies an event twice or skips one.
//! - [`replay`]: parked events applied again at an operator's request, by refolding each
//!   event's document up to the checkpoint, as a rebuild would.
//! - [`status`]: what operators see: state, checkpoint, lag, heartbeat, rebuild progress.
//! - [`runner`]: the projector role: one leased runner per live version, standbys elsewhere,
//!   woken by `pg_notify` from appends, with a polling fallback.
//!
//! Events flow: `herald.events` → ordered reader → `project_next` → version table + checkpoint.

pub mod apply;
pub mod catalog;
pub mod query;
pub mod replay;
pub mod runner;
pub mod status;
pub mod table;

pub use apply::{Progress, ProjectError, project_next};
pub use runner::{Runtime, Stop, contend, run};
pub use table::{Column, ROW_COLUMNS, VersionTable, columns_of, read_relation};

/// The projection catalog (`herald.projections`); view tables themselves are made at run time.
pub const MIGRATIONS: &[herald_bus::store::Migration] = &[herald_bus::store::Migration {
    version: 2,
    sql: include_str!("../migrations/0002_projections.sql"),
}];
