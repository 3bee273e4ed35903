//! Document declarations: the YAML files under `apps/<app>/` that define each collection's
//! fields, constraints and access rules, and the validation of request bodies against them.
//!
//! - [`model`]: the types a declaration becomes ([`DocumentSchema`], [`Field`], [`Acl`], …).
//! - [`load`]: finds the files and builds the [`Registry`], reporting every mistake with its
//!   file, line and column.
//! - `parse`: turns one YAML file into a [`DocumentSchema`] (used by [`load`]).
//! - [`validate`]: checks a create body, a merge patch or a merged document, returning every
//!   [`FieldError`] at once; `format` says what JSON each field kind accepts.
//! - [`query`]: dotted field paths and typed values for list filters.
//! - `patch`: [`merge_patch`], RFC 7396, the body format of `PATCH`.
//! - [`tasks`]: background tasks declared in `apps/<app>/tasks.yaml` ([`TaskDecl`]), loaded
//!   into the same [`Registry`] and checked against the documents.

mod error;
mod format;
pub mod load;
pub mod model;
mod parse;
mod patch;
pub mod query;
pub mod tasks;
pub mod validate;
mod yaml;

pub use error::{LoadError, LoadErrors};
pub use load::Registry;
pub use model::{
    Acl, DocumentSchema, Field, FieldAcl, FieldKind, Fields, MANAGED_FIELDS, Role, RoleSet,
    SEARCH_LANGUAGES,
};
pub use patch::merge_patch;
pub use tasks::{
    CommandTemplate, Condition, ConditionOp, RetryPolicy, TaskDecl, TaskKind, TemplateAction,
    Trigger,
};
pub use validate::{ErrorCode, FieldError, Mode};
