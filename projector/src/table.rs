//! The tables of a projection. Each version of a document's view has its own table,
//! `herald_views."<app>.<doc>.v<N>"`, with typed, indexed copies of the fields the YAML declares
//! `filter` or `sort`. Reads go through `herald_views."<app>.<doc>"`, a SQL view of the active
//! version's table, so switching versions is one transaction.

use std::fmt::Write as _;

use herald_bus::schema::{DocumentSchema, FieldKind, Fields};
use herald_bus::store::lease::lease_key;
use herald_bus::store::reader::LogFilter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The schema holding every view table.
pub const VIEWS_SCHEMA: &str = "herald_views";

/// A copy of a field in a column of its own, indexed: typed for the fields the YAML declares
/// `filter` or `sort`; or a weighted `tsvector` of `search` fields (see [`Search`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The field's dotted path (`dimensions.width`); empty for a search column.
    pub field: String,
    /// The column name: `f_<path>` (or a digest of the path where that would pass Postgres's
    /// 63-byte identifier limit), or one of the search columns' names.
    pub name: String,
    pub sql_type: String,
    /// For a `tsvector` column: its text search configuration and fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
}

/// A search column. Every document has one over every `search` field: a query matches the
/// words of all of them at once, so `a -b` leaves out a document with `b` in any field. When
/// some search fields have a read rule (on them or on an enclosing object), a second one covers
/// the others: what a caller who may not read them all searches, so hidden words never decide
/// a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    /// Whether it covers only the search fields without a read rule.
    #[serde(default)]
    pub open: bool,
    pub language: String,
    /// The fields' paths with their rank weights, `A` for the first declared down to `D`.
    pub fields: Vec<(String, char)>,
}

impl Column {
    fn typed(field: String, sql_type: &str) -> Self {
        let mut name = format!("f_{field}");
        if name.len() > 63 {
            name = format!("f_{}", digest_hex(&[field.as_bytes()]));
        }
        Self {
            field,
            name,
            sql_type: sql_type.to_owned(),
            search: None,
        }
    }

    /// The column's value from a row's `doc`, as SQL over the alias `r`.
    fn value_sql(&self) -> String {
        let path = |field: &str| field.replace('.', ",");
        match (&self.search, self.sql_type.as_str()) {
            (Some(search), _) => {
                let parts: Vec<String> = search
                    .fields
                    .iter()
                    .map(|(field, weight)| {
                        format!(
                            "setweight(to_tsvector('{}'::regconfig, coalesce(r.doc #>> '{{{}}}', '')), '{weight}')",
                            search.language,
                            path(field)
                        )
                    })
                    .collect();
                parts.join(" || ")
            }
            // A stored JSON `null` is no value, as for the other columns.
            (None, "jsonb") => format!(
                "NULLIF(r.doc #> '{{{}}}', 'null'::jsonb)",
                path(&self.field)
            ),
            (None, sql_type) => format!("(r.doc #>> '{{{}}}')::{sql_type}", path(&self.field)),
        }
    }

    /// The DDL of its index on `table`, named `index`. Lists never show archived documents, so
    /// the indexes leave them out; the tenant leads the B-trees as every query is tenant-scoped.
    fn index_sql(&self, index: &str, table: &str) -> String {
        let method = if self.search.is_some() || self.sql_type == "jsonb" {
            format!("USING gin (\"{}\")", self.name)
        } else {
            format!("(tenant, \"{}\", id)", self.name)
        };
        format!("CREATE INDEX IF NOT EXISTS \"{index}\" ON {table} {method} WHERE NOT archived;\n")
    }
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
        // A password hash is never compared, ordered or shown: it needs no column.
        FieldKind::Object(_) | FieldKind::Password => return None,
    })
}

/// The columns a document's YAML asks for: typed ones in declaration order (nested fields
/// where their object is declared), then the search columns.
pub fn columns_of(schema: &DocumentSchema) -> Vec<Column> {
    let mut columns = Vec::new();
    let mut search = Vec::new();
    collect_columns(&schema.fields, "", false, &mut columns, &mut search);
    let weights = ['A', 'B', 'C', 'D'];
    let weighted: Vec<((String, char), bool)> = search
        .into_iter()
        .enumerate()
        .map(|(ordinal, (field, restricted))| {
            ((field, weights[ordinal.min(weights.len() - 1)]), restricted)
        })
        .collect();
    // Named by a digest of what they hold, so a query never reads an older version's column
    // that holds other fields (it is missing instead, until the new version serves).
    let search_column = |open: bool, fields: Vec<(String, char)>| {
        let search = Search {
            open,
            language: schema.search_language.clone(),
            fields,
        };
        let mut parts = vec![search.language.clone()];
        parts.extend(search.fields.iter().map(|(f, w)| format!("{f} {w}")));
        let parts: Vec<&[u8]> = parts.iter().map(String::as_bytes).collect();
        let role = if open { "open" } else { "all" };
        Column {
            field: String::new(),
            name: format!("search_{role}_{}", digest_hex(&parts)),
            sql_type: "tsvector".to_owned(),
            search: Some(search),
        }
    };
    if !weighted.is_empty() {
        let all = weighted.iter().map(|(f, _)| f.clone()).collect();
        columns.push(search_column(false, all));
    }
    if weighted.iter().any(|(_, restricted)| *restricted) {
        let open: Vec<(String, char)> = weighted
            .into_iter()
            .filter(|(_, restricted)| !restricted)
            .map(|(f, _)| f)
            .collect();
        if !open.is_empty() {
            columns.push(search_column(true, open));
        }
    }
    columns
}

/// Walks `fields`, pushing typed columns and `(path, has a read rule)` for search fields.
fn collect_columns(
    fields: &Fields,
    prefix: &str,
    restricted: bool,
    typed: &mut Vec<Column>,
    search: &mut Vec<(String, bool)>,
) {
    for (name, field) in fields {
        let path = format!("{prefix}{name}");
        let restricted = restricted || field.acl.read.is_some();
        if let FieldKind::Object(nested) = &field.kind {
            collect_columns(nested, &format!("{path}."), restricted, typed, search);
            continue;
        }
        if (field.filter || field.sort)
            && let Some(sql_type) = column_type(&field.kind)
        {
            typed.push(Column::typed(path.clone(), sql_type));
        }
        if field.search {
            search.push((path, restricted));
        }
    }
}

/// Bumped when the layout of every view table changes (its fixed columns or indexes), so each
/// projection builds a new version in the new layout.
const LAYOUT: &str = "2";

/// A stable digest of the layout and columns (not std's hasher, which may change between Rust
/// releases): a YAML change that alters it builds a new version.
pub fn shape_of(columns: &[Column]) -> String {
    let mut parts = vec![LAYOUT.to_owned()];
    for column in columns {
        parts.push(column.name.clone());
        parts.push(column.sql_type.clone());
        if let Some(search) = &column.search {
            parts.push(search.language.clone());
            for (field, weight) in &search.fields {
                parts.push(format!("{field} {weight}"));
            }
        }
    }
    let parts: Vec<&[u8]> = parts.iter().map(String::as_bytes).collect();
    digest_hex(&parts)
}

/// The first 8 bytes of the SHA-256 of `parts`, each ended by a NUL, as hex.
fn digest_hex(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
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

    /// The DDL creating the indexes of the columns and of the managed timestamps; safe to run
    /// again. A version being built gets them only once it has caught up: building an index
    /// once is far cheaper than maintaining it through every batch of a rebuild.
    pub fn index_sql(&self) -> String {
        // Short and unique in the schema: Postgres cuts identifiers at 63 bytes.
        let prefix = format!("ix_{:016x}", self.lease_key);
        let mut sql = String::new();
        for managed in ["created_at", "updated_at"] {
            let _ = writeln!(
                sql,
                "CREATE INDEX IF NOT EXISTS \"{prefix}_{managed}\" ON {} (tenant, {managed}, id) \
                 WHERE NOT archived;",
                self.table
            );
        }
        for (ordinal, column) in self.columns.iter().enumerate() {
            sql.push_str(&column.index_sql(&format!("{prefix}_{ordinal}"), &self.table));
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
            let _ = write!(values, ", {}", column.value_sql());
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
