//! The view table of one document. Its name carries a hash of its shape, so a YAML change that
//! alters the columns builds a fresh table (and checkpoint) from the start of the log.

use std::fmt::Write as _;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use herald_bus::position::LogPosition;
use herald_bus::schema::{DocumentSchema, FieldKind};
use herald_bus::store::{StoreError, parse_tx_id};
use sha2::{Digest, Sha256};

/// The schema holding every view table.
pub const VIEWS_SCHEMA: &str = "herald_views";

/// A typed copy of a top-level field, indexed for filters and sorting.
#[derive(Debug, Clone)]
pub struct Column {
    pub field: String,
    /// The column name: `f_<field>`.
    pub name: String,
    pub sql_type: &'static str,
}

#[derive(Debug, Clone)]
pub struct ViewTable {
    pub schema: Arc<DocumentSchema>,
    /// `herald_views."petstore.product.1a2b3c4d"`, ready to splice into SQL.
    pub table: String,
    /// The checkpoint name, also the projection's name for operators.
    pub projection: String,
    /// The advisory-lock key every writer of this view takes, so runners never interleave.
    pub lock_key: i64,
    pub columns: Vec<Column>,
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

impl ViewTable {
    pub fn new(schema: Arc<DocumentSchema>) -> Self {
        let columns: Vec<Column> = schema
            .fields
            .iter()
            .filter(|(_, f)| f.filter || f.sort)
            .filter_map(|(name, f)| {
                Some(Column {
                    field: name.clone(),
                    name: format!("f_{name}"),
                    sql_type: column_type(&f.kind)?,
                })
            })
            .collect();
        // A stable digest (not std's hasher, which may change between Rust releases).
        let mut digest = Sha256::new();
        for column in &columns {
            digest.update(column.name.as_bytes());
            digest.update([0]);
            digest.update(column.sql_type.as_bytes());
            digest.update([0]);
        }
        let shape: String = digest.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let projection = format!("{}.{shape}", schema.collection());
        let mut key = [0u8; 8];
        key.copy_from_slice(&Sha256::digest(projection.as_bytes())[..8]);
        Self {
            table: format!("{VIEWS_SCHEMA}.\"{projection}\""),
            projection,
            lock_key: i64::from_be_bytes(key),
            schema,
            columns,
        }
    }

    /// The DDL creating the table and its indexes; safe to run again.
    pub fn create_sql(&self) -> String {
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
        for (ordinal, column) in self.columns.iter().enumerate() {
            // Short and unique in the schema: Postgres cuts identifiers at 63 bytes.
            let index = format!("ix_{:016x}_{ordinal}", self.lock_key);
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

    /// Inserts or replaces one row; `$9` is the document's fields, the typed columns derive from it.
    pub fn upsert_sql(&self) -> String {
        let mut names = String::from(
            "tenant, id, version, archived, created_at, created_by, updated_at, updated_by, doc",
        );
        let mut values = String::from("$1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb");
        let mut updates = String::from(
            "version = EXCLUDED.version, archived = EXCLUDED.archived, \
             updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by, doc = EXCLUDED.doc",
        );
        for column in &self.columns {
            let _ = write!(names, ", \"{}\"", column.name);
            let _ = if column.sql_type == "jsonb" {
                write!(values, ", $9::jsonb -> '{}'", column.field)
            } else {
                write!(
                    values,
                    ", ($9::jsonb ->> '{}')::{}",
                    column.field, column.sql_type
                )
            };
            let _ = write!(updates, ", \"{0}\" = EXCLUDED.\"{0}\"", column.name);
        }
        format!(
            "INSERT INTO {} ({names}) SELECT {values}
             ON CONFLICT (tenant, id) DO UPDATE SET {updates}",
            self.table
        )
    }

    /// The columns a row is read back with, in [`crate::apply::row_state`] order.
    pub const ROW_COLUMNS: &'static str =
        "id, version, archived, created_at, created_by, updated_at, updated_by, doc";
}

/// Creates the view's table and indexes if they don't exist yet.
pub async fn ensure_view(client: &impl GenericClient, view: &ViewTable) -> Result<(), StoreError> {
    client.batch_execute(&view.create_sql()).await?;
    Ok(())
}

/// How far the view has read the log (the start when it has not read anything yet).
pub async fn view_checkpoint(
    client: &impl GenericClient,
    projection: &str,
) -> Result<LogPosition, StoreError> {
    let row = client
        .query_opt(
            "SELECT tx_id::text, position FROM herald.checkpoints WHERE name = $1",
            &[&projection],
        )
        .await?;
    let Some(row) = row else {
        return Ok(LogPosition::START);
    };
    let tx: &str = row.get(0);
    Ok(LogPosition {
        tx_id: parse_tx_id(tx)?,
        position: row.get(1),
    })
}
