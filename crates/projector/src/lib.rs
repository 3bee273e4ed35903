//! Document views: one table per document, kept equal to the fold of its events.
//!
//! # Layout
//!
//! - [`table`]: the *view* table of a document, derived from its YAML: typed columns and
//!   indexes for `filter`/`sort` fields, and the SQL to read and write it.
//! - [`apply`]: [`apply::try_project_next`] reads the next batch of the ordered log, folds it
//!   into the rows it touches and writes them with the *checkpoint* (how far the view has read)
//!   in the same transaction, so a crash never applies an event twice or skips one.
//! - [`runner`]: one loop per view, woken by `pg_notify` from appends, with a polling fallback.
//!
//! Events flow: `herald.events` → ordered reader → `try_project_next` → view row + checkpoint.

pub mod apply;
pub mod runner;
pub mod table;

pub use apply::{Progress, ProjectError, rebuild, try_project_next};
pub use runner::run;
pub use table::{ViewTable, ensure_view, view_checkpoint};
