//! The tables of a projection. Each version of a document's view has its own table,
//! `herald_views."<app>.<doc>.v<N>"`, with typed, indexed copies of the fields the YAML declares
//! `filter` or `sort`. Reads go through `herald_views."<app>.<doc>"`, a SQL view of the active
//! version's table, so switching versions is one transaction.

use std::fmt::Write as _;

use herald_bus::schema::{DocumentSchema, FieldKind};
use herald_bus::store::lease::lease_key;
use herald_bus::store::reader::LogFilter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The schema holding every view table.
pub const VIEWS_SCHEMA: &str = "herald_views";

/// A typed copy of a top-level field, indexed for filters and sorting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub field: String,
    /// The column name: `f_<field>`.
    pub name: String,
    pub sql_type: String,
}

/// The SQL type a field is stored as in its typed column, or `None` if it has none.
fn column_type(kind: &FieldKind) -> Option<&'static str> {
    Some(match kind {
        FieldKind::String | FieldKind::Email | FieldKind::Url => "text",
        FieldKind::Integer => "bigint",
        FieldKind::Number => "double precision",
        FieldKind::Boolean => "boolean",
        FieldKind::Datetime => "timestamptz",
        FieldKind::Date => "date",
        FieldKind::Uuid | FieldKind::Ref { .. } => "uuid",
        FieldKind::Array(_) => "jsonb",
        FieldKind::Object(_) => return None,
    })
}

/// The typed columns a document's YAML asks for.
pub fn columns_of(schema: &DocumentSchema) -> Vec<Column> {
    schema
        .fields
        .iter()
        .filter(|(_, f)| f.filter || f.sort)
        .filter_map(|(name, f)| {
            Some(Column {
                field: name.clone(),
                name: format!("f_{name}"),
                sql_type: column_type(&f.kind)?.to_owned(),
            })
        })
        .collect()
}

/// A stable digest of the columns (not std's hasher, which may change between Rust releases):
/// a YAML change that alters it builds a new version.
pub fn shape_of(columns: &[Column]) -> String {
    let mut digest = Sha256::new();
    for column in columns {
        digest.update(column.name.as_bytes());
        digest.update([0]);
        digest.update(column.sql_type.as_bytes());
        digest.update([0]);
    }
    digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the reads of a document go: the SQL view of its active version, ready for SQL.
pub fn read_relation(projection: &str) -> String {
    format!("{VIEWS_SCHEMA}.\"{projection}\"")
}

/// The columns a row is read back with, in [`crate::apply::row_state`] order.
pub const ROW_COLUMNS: &str =
    "id, version, archived, created_at, created_by, updated_at, updated_by, doc";

/// One version of a projection: its table, checkpoint and lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTable {
    /// The projection's name: the document's collection (`petstore.product`).
    pub projection: String,
    pub version: i32,
    /// `herald_views."petstore.product.v2"`, ready to splice into SQL.
    pub table: String,
    /// The checkpoint's name: `petstore.product.v2`.
    pub checkpoint: String,
    /// The advisory lock its one active runner holds.
    pub lease_key: i64,
    pub columns: Vec<Column>,
}

impl VersionTable {
    pub fn new(projection: &str, version: i32, columns: Vec<Column>) -> Self {
        let checkpoint = format!("{projection}.v{version}");
        Self {
            projection: projection.to_owned(),
            version,
            table: read_relation(&checkpoint),
            lease_key: lease_key(&checkpoint),
            checkpoint,
            columns,
        }
    }

    /// The events this version applies: those of its collection.
    pub fn filter(&self) -> LogFilter {
        LogFilter::collection(self.projection.clone())
    }

    /// The DDL creating the table with its primary key; safe to run again.
    pub fn table_sql(&self) -> String {
        let mut sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {VIEWS_SCHEMA};
             CREATE TABLE IF NOT EXISTS {} (
                 tenant text NOT NULL,
                 id uuid NOT NULL,
                 version bigint NOT NULL,
                 archived boolean NOT NULL,
                 created_at timestamptz NOT NULL,
                 created_by text NOT NULL,
                 updated_at timestamptz NOT NULL,
                 updated_by text NOT NULL,
                 doc jsonb NOT NULL",
            self.table
        );
        for column in &self.columns {
            let _ = write!(sql, ",\n \"{}\" {}", column.name, column.sql_type);
        }
        sql.push_str(",\n PRIMARY KEY (tenant, id));\n");
        sql
    }

    /// The DDL creating the indexes of the typed columns; safe to run again. A version being
    /// built gets them only once it has caught up: building an index once is far cheaper than
    /// maintaining it through every batch of a rebuild.
    pub fn index_sql(&self) -> String {
        let mut sql = String::new();
        for (ordinal, column) in self.columns.iter().enumerate() {
            // Short and unique in the schema: Postgres cuts identifiers at 63 bytes.
            let index = format!("ix_{:016x}_{ordinal}", self.lease_key);
            let _ = if column.sql_type == "jsonb" {
                writeln!(
                    sql,
                    "CREATE INDEX IF NOT EXISTS \"{index}\" ON {} USING gin (\"{}\");",
                    self.table, column.name
                )
            } else {
                // The tenant leads every index: every query is tenant-scoped.
                writeln!(
                    sql,
                    "CREATE INDEX IF NOT EXISTS \"{index}\" ON {} (tenant, \"{}\", id);",
                    self.table, column.name
                )
            };
        }
        sql
    }

    /// Inserts or replaces a batch of rows in one statement. The parameters are arrays, one per
    /// column of [`ROW_COLUMNS`] after `$1` (tenants); the typed columns derive from `doc`.
    pub fn upsert_sql(&self) -> String {
        let mut names = String::from(
            "tenant, id, version, archived, created_at, created_by, updated_at, updated_by, doc",
        );
        let mut values = String::from(
            "r.tenant, r.id, r.version, r.archived, r.created_at, r.created_by, r.updated_at, \
             r.updated_by, r.doc",
        );
        let mut updates = String::from(
            "version = EXCLUDED.version, archived = EXCLUDED.archived, \
             updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by, doc = EXCLUDED.doc",
        );
        for column in &self.columns {
            let _ = write!(names, ", \"{}\"", column.name);
            let field = column.field.replace('\'', "''");
            let _ = if column.sql_type == "jsonb" {
                write!(values, ", r.doc -> '{field}'")
            } else {
                write!(values, ", (r.doc ->> '{field}')::{}", column.sql_type)
            };
            let _ = write!(updates, ", \"{0}\" = EXCLUDED.\"{0}\"", column.name);
        }
        format!(
            "INSERT INTO {} ({names})
             SELECT {values}
             FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::boolean[], $5::timestamptz[],
                         $6::text[], $7::timestamptz[], $8::text[], $9::jsonb[])
                  AS r(tenant, id, version, archived, created_at, created_by, updated_at,
                       updated_by, doc)
             ON CONFLICT (tenant, id) DO UPDATE SET {updates}",
            self.table
        )
    }
}
