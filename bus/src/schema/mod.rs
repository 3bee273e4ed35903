//! Document declarations: the YAML files under `apps/<app>/` that define each collection's
//! fields, constraints and access rules, and the validation of request bodies against them.
//!
//! - [`model`]: the types a declaration becomes ([`DocumentSchema`], [`Field`], [`Acl`], …).
//! - [`load`]: finds the files and builds the [`Registry`], reporting every mistake with its
//!   file, line and column. Files named after a [`RESERVED_STEMS`] entry are not documents:
//!   [`load::Documents`] hands them, with the documents, to the crate that declares with them.
//! - `parse`: turns one YAML file into a [`DocumentSchema`] (used by [`load`]), its `commands`
//!   included.
//! - [`condition`]: conditions on fields (command guards, task triggers); `when` reads them.
//! - [`yaml`]: the marked-YAML readers every parser of the apps folder shares.
//! - [`validate`]: checks a create body, a merge patch or a merged document, returning every
//!   [`FieldError`] at once; [`format`](mod@format) says what JSON each field kind accepts.
//! - [`query`]: dotted field paths and typed values for list filters.
//! - `patch`: [`merge_patch`], RFC 7396, the body format of `PATCH`.

pub mod condition;
mod error;
pub mod format;
pub mod load;
pub mod model;
mod parse;
mod patch;
pub mod query;
pub mod validate;
pub mod versions;
mod when;
pub mod yaml;

pub use error::{LoadError, LoadErrors};
pub use load::{IDENTITY_APP, RESERVED_STEMS, Registry};
pub use model::{
    Acl, AclAction, DocumentSchema, Field, FieldAcl, FieldKind, Fields, MANAGED_FIELDS,
    PASSWORD_LENGTH, Role, RoleSet, SEARCH_LANGUAGES,
};
pub use patch::merge_patch;
pub use validate::{ErrorCode, FieldError, Mode};
