//! Reads of document views: one document by id, and keyset pages with the view query
//! language. Every read also reports the view's checkpoint, so a client knows how far its
//! answer has caught up with the log (`Herald-Position`).
//!
//! - [`document`]: where a collection's reads go ([`DocumentView`]) and the by-id read.
//! - [`target`]: which fields a caller may name in a query, and the columns they map to.
//! - [`filter`]: `<field>=[not.]<op>.<value>`, values read with the field's type.
//! - [`page`]: bind parameters, the order, the keyset of the next page, and running a page.
//!
//! Every value reaches Postgres as a bind parameter; only validated identifiers (column names
//! from the YAML) and fixed keywords are written into the SQL.

pub mod document;
pub mod filter;
pub mod page;
pub mod target;

pub use document::{DocumentView, fetch_document};
pub use filter::{Filter, operator_names};
pub use page::{FetchedPage, Key, PageQuery, Search, fetch_page};
pub use target::{MANAGED_QUERY_FIELDS, Target, Use, Vocabulary, managed};

/// Why a read of a view failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No connection, or the database failed a step every read takes.
    #[error("the database is unavailable")]
    Unavailable(#[source] tokio_postgres::Error),
    /// Postgres refused the query the caller's parameters made (see its SQLSTATE).
    #[error("the query was refused")]
    Refused(#[source] tokio_postgres::Error),
    /// A row or checkpoint that does not decode.
    #[error("a stored row cannot be read")]
    Unreadable(#[source] Box<dyn std::error::Error + Send + Sync>),
}
