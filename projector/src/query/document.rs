//! Where a collection's reads go, and the read of one document by id.

use deadpool_postgres::GenericClient;
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use herald_bus::schema::DocumentSchema;
use herald_bus::store::reader::checkpoint_at;
use uuid::Uuid;

use super::ReadError;
use crate::apply::row_state;
use crate::{Column, ROW_COLUMNS, columns_of, read_relation};

/// Where a document's reads go: the SQL view of its active projection version.
#[derive(Debug, Clone)]
pub struct DocumentView {
    /// The projection (and collection) name, `petstore.product`.
    pub projection: String,
    /// `herald_views."petstore.product"`, ready to splice into SQL.
    pub relation: String,
    /// The typed and search columns the declaration gives it, which list queries use.
    pub columns: Vec<Column>,
    /// The statement of [`fetch_document`], built once: reads are the hottest path.
    read_sql: String,
}

impl DocumentView {
    pub fn new(schema: &DocumentSchema) -> Self {
        let projection = schema.collection().to_string();
        let relation = read_relation(&projection);
        let read_sql = format!(
            "SELECT c.tx_id::text, c.position, {cols}
             FROM (SELECT 1) AS one
             LEFT JOIN herald.projections p ON p.name = $3 AND p.state = 'active'
             LEFT JOIN herald.checkpoints c ON c.name = p.checkpoint
             LEFT JOIN {relation} v ON v.tenant = $1 AND v.id = $2 AND NOT v.archived",
            cols = prefixed_columns("v"),
        );
        Self {
            relation,
            projection,
            columns: columns_of(schema),
            read_sql,
        }
    }
}

/// One document (not archived) and the view's checkpoint, in one round trip.
///
/// # Errors
/// [`ReadError::Unavailable`] when the query fails, [`ReadError::Unreadable`] for a row that
/// does not decode.
pub async fn fetch_document(
    client: &impl GenericClient,
    view: &DocumentView,
    tenant: &str,
    id: Uuid,
) -> Result<(Option<DocumentState>, LogPosition), ReadError> {
    let statement = client
        .prepare_cached(&view.read_sql)
        .await
        .map_err(ReadError::Unavailable)?;
    let row = client
        .query_one(&statement, &[&tenant, &id, &view.projection])
        .await
        .map_err(ReadError::Unavailable)?;
    let checkpoint = checkpoint_at(Some(&row), 0).map_err(|e| ReadError::Unreadable(e.into()))?;
    let found: Option<Uuid> = row
        .try_get(2)
        .map_err(|e| ReadError::Unreadable(e.into()))?;
    let document = match found {
        Some(_) => Some(row_state(&row, 2).map_err(|e| ReadError::Unreadable(e.into()))?),
        None => None,
    };
    Ok((document, checkpoint))
}

fn prefixed_columns(alias: &str) -> String {
    ROW_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
