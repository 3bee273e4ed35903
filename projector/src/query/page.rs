//! The SQL of a list page: bind parameters, the order, and the keyset that starts a page after
//! the previous one's last row.
//!
//! A keyset page asks for the rows after the cursor's `(k0, k1, …, id)` in the query's order.
//! Written as one `OR` chain, Postgres could only filter an index scan from the first row on,
//! so deep pages would get slower and slower. The rows after the cursor are instead split on
//! the first key into at most three ranges, each an index range: the rows with the cursor's
//! `k0` and a later rest, the rows with a later `k0`, and the rows without `k0` where nulls sort
//! after values. Each range is read in order up to the page size and the union (at most three
//! pages) is sorted.

use deadpool_postgres::ClientWrapper;
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::{ToSql, Type};

use super::{DocumentView, Filter, ReadError};
use crate::ROW_COLUMNS;
use crate::apply::row_state;
use crate::catalog::active_checkpoint;

/// The values of a query, each bound as text (or a text array) and cast in SQL to the column's
/// type, exactly as the projector casts the document's value into that column.
#[derive(Debug, Default)]
pub struct Params {
    values: Vec<Param>,
}

#[derive(Debug)]
enum Param {
    Text(String),
    List(Vec<String>),
}

impl Params {
    /// Adds a value; returns its placeholder.
    pub fn text(&mut self, value: String) -> String {
        self.values.push(Param::Text(value));
        format!("${}", self.values.len())
    }

    /// Adds a list of values; returns its placeholder.
    pub fn list(&mut self, values: Vec<String>) -> String {
        self.values.push(Param::List(values));
        format!("${}", self.values.len())
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    /// The values with their declared types, which the statement is prepared with.
    pub fn typed(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values
            .iter()
            .map(|value| match value {
                Param::Text(text) => (text as &(dyn ToSql + Sync), Type::TEXT),
                Param::List(list) => (list as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
            })
            .collect()
    }
}

/// One key of the order.
#[derive(Debug, Clone)]
pub struct Key {
    /// The SQL expression sorted on.
    pub expr: String,
    pub sql_type: String,
    pub descending: bool,
    pub nulls_first: bool,
    pub nullable: bool,
}

impl Key {
    /// `s<i> ASC NULLS LAST` and so on: every placement written out, so the order is the same
    /// in each part of a keyset union and in the outer sort.
    fn order(&self, ordinal: usize) -> String {
        format!(
            "s{ordinal} {} NULLS {}",
            if self.descending { "DESC" } else { "ASC" },
            if self.nulls_first { "FIRST" } else { "LAST" }
        )
    }

    /// The conditions, one per index range, for rows whose value of this key comes after
    /// `value` (a placeholder, `None` for null).
    fn later(&self, value: Option<&str>) -> Vec<String> {
        let expr = &self.expr;
        let mut parts = Vec::new();
        match value {
            Some(value) => {
                let comparison = if self.descending { "<" } else { ">" };
                parts.push(format!("{expr} {comparison} {value}"));
                if self.nullable && !self.nulls_first {
                    parts.push(format!("{expr} IS NULL"));
                }
            }
            None if self.nullable && self.nulls_first => {
                parts.push(format!("{expr} IS NOT NULL"));
            }
            None => {}
        }
        parts
    }

    fn same(&self, value: Option<&str>) -> String {
        match value {
            Some(value) => format!("{} = {value}", self.expr),
            None => format!("{} IS NULL", self.expr),
        }
    }
}

/// The rows after the cursor on keys `from..`, as one condition (used past the first key).
fn after(keys: &[Key], values: &[Option<String>], from: usize) -> String {
    let key = &keys[from];
    let value = values[from].as_deref();
    let mut parts = key.later(value);
    if from + 1 < keys.len() {
        let rest = after(keys, values, from + 1);
        parts.push(format!("({} AND {rest})", key.same(value)));
    }
    match parts.len() {
        0 => "FALSE".to_owned(),
        1 => parts.remove(0),
        _ => format!("({})", parts.join(" OR ")),
    }
}

/// The SQL of one page: `limit + 1` rows (the extra one tells whether there is more) of the
/// rows matching `conditions`, in the order of `keys`, after `cursor` (one text value or null
/// per key). Each row has [`ROW_COLUMNS`], then per key `s<i>` (the value) and `t<i>` (as text,
/// for the next cursor).
pub fn page_sql(
    relation: &str,
    conditions: &str,
    keys: &[Key],
    cursor: Option<&[Option<String>]>,
    limit: i64,
    params: &mut Params,
) -> String {
    let mut columns = ROW_COLUMNS.to_owned();
    for (ordinal, key) in keys.iter().enumerate() {
        columns.push_str(&format!(
            ", {expr} AS s{ordinal}, ({expr})::text AS t{ordinal}",
            expr = key.expr
        ));
    }
    let order: Vec<String> = keys.iter().enumerate().map(|(i, k)| k.order(i)).collect();
    let order = order.join(", ");
    let fetch = limit + 1;
    let select = |range: &str| {
        format!(
            "SELECT {columns} FROM {relation} WHERE {conditions}{range} ORDER BY {order} LIMIT {fetch}"
        )
    };
    let Some(cursor) = cursor else {
        return select("");
    };
    let values: Vec<Option<String>> = keys
        .iter()
        .zip(cursor)
        .map(|(key, value)| {
            value
                .clone()
                .map(|v| format!("({}::text)::{}", params.text(v), key.sql_type))
        })
        .collect();
    let first = &keys[0];
    let mut ranges = Vec::new();
    if keys.len() > 1 {
        let rest = after(keys, &values, 1);
        ranges.push(format!("{} AND {rest}", first.same(values[0].as_deref())));
    }
    ranges.extend(first.later(values[0].as_deref()));
    match ranges.as_slice() {
        [] => select(" AND FALSE"),
        [range] => select(&format!(" AND {range}")),
        _ => {
            let parts: Vec<String> = ranges
                .iter()
                .map(|range| format!("({})", select(&format!(" AND {range}"))))
                .collect();
            format!(
                "SELECT * FROM ({}) AS page ORDER BY {order} LIMIT {fetch}",
                parts.join(" UNION ALL ")
            )
        }
    }
}

/// Prepared page statements a connection keeps before its cache starts afresh.
const MAX_PREPARED_PER_CONNECTION: usize = 200;

/// Full-text search over a view's `search` fields (`q`).
#[derive(Debug, Clone)]
pub struct Search {
    pub text: String,
    pub language: String,
    /// The `tsvector` column searched, quoted.
    pub column: String,
}

/// One page of a view to read.
pub struct PageQuery<'a> {
    pub view: &'a DocumentView,
    pub tenant: &'a str,
    /// Only the documents this subject created (the caller's read right is `owner`).
    pub created_by: Option<&'a str>,
    pub filters: &'a [Filter],
    pub search: Option<&'a Search>,
    /// The order's keys; `None` stands for the search rank, which needs the search's
    /// placeholder.
    pub keys: &'a [Option<Key>],
    /// Where the previous page ended: one text value or null per key.
    pub cursor: Option<&'a [Option<String>]>,
    pub limit: i64,
    /// Count every match too.
    pub count: bool,
    /// How long Postgres may run the page before cancelling it.
    pub timeout_ms: u64,
}

/// A page as read.
pub struct FetchedPage {
    pub documents: Vec<DocumentState>,
    pub has_more: bool,
    /// Where the page ends (its last row's key values) when more rows follow.
    pub next: Option<Vec<Option<String>>>,
    pub total: Option<i64>,
    pub checkpoint: LogPosition,
}

impl PageQuery<'_> {
    /// The `WHERE` conditions and the order's keys, with their values added to `params`.
    fn conditions(&self, params: &mut Params) -> (String, Vec<Key>) {
        let mut conditions = format!(
            "tenant = {} AND NOT archived",
            params.text(self.tenant.to_owned())
        );
        if let Some(sub) = self.created_by {
            let sub = params.text(sub.to_owned());
            conditions.push_str(&format!(" AND created_by = {sub}"));
        }
        for filter in self.filters {
            conditions.push_str(" AND ");
            conditions.push_str(&filter.sql(params));
        }
        let mut rank = String::new();
        if let Some(search) = self.search {
            let query = format!(
                "websearch_to_tsquery('{}'::regconfig, {}::text)",
                search.language,
                params.text(search.text.clone())
            );
            conditions.push_str(&format!(" AND {} @@ {query}", search.column));
            rank = format!("ts_rank({}, {query})", search.column);
        }
        let keys = self
            .keys
            .iter()
            .map(|key| {
                key.clone().unwrap_or_else(|| Key {
                    expr: rank.clone(),
                    sql_type: "real".into(),
                    descending: true,
                    nulls_first: true,
                    nullable: false,
                })
            })
            .collect();
        (conditions, keys)
    }
}

/// Reads a page: the view's checkpoint, the page and the count share one snapshot, pipelined
/// in one round trip, and Postgres cancels them past the query's timeout.
///
/// # Errors
/// [`ReadError::Refused`] when Postgres refuses the page or count query (a value out of range,
/// a column the active version lacks, the timeout), [`ReadError::Unavailable`] for the rest of
/// the database's failures, [`ReadError::Unreadable`] for a row that does not decode.
#[tracing::instrument(skip_all, fields(projection = %query.view.projection))]
pub async fn fetch_page(
    client: &mut ClientWrapper,
    query: &PageQuery<'_>,
) -> Result<FetchedPage, ReadError> {
    let mut params = Params::default();
    let (conditions, keys) = query.conditions(&mut params);
    let relation = &query.view.relation;
    let count_sql = format!("SELECT count(*) FROM {relation} WHERE {conditions}");
    let count_params = params.len();
    let page_sql = page_sql(
        relation,
        &conditions,
        &keys,
        query.cursor,
        query.limit,
        &mut params,
    );
    let typed = params.typed();
    let types: Vec<Type> = typed.iter().map(|(_, sql_type)| sql_type.clone()).collect();
    let values: Vec<&(dyn ToSql + Sync)> = typed.iter().map(|(value, _)| *value).collect();
    // Each shape of query is prepared once per connection and planned by Postgres's plan
    // cache, as PostgREST does: planning costs as much as running a page. The shapes a
    // client can make are many, so a connection's cache starts afresh past a bound.
    if client.statement_cache.size() > MAX_PREPARED_PER_CONNECTION {
        client.statement_cache.clear();
    }
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ReadError::Unavailable)?;
    let timeout = format!("SET LOCAL statement_timeout = {}", query.timeout_ms);
    // Sent first, so it bounds the queries pipelined after it.
    let limited = tx.batch_execute(&timeout);
    let checkpoint = active_checkpoint(&*tx, &query.view.projection);
    let rows = async {
        let statement = tx.prepare_typed_cached(&page_sql, &types).await?;
        tx.query(&statement, &values).await
    };
    let total = async {
        if query.count {
            let statement = tx
                .prepare_typed_cached(&count_sql, &types[..count_params])
                .await?;
            let row = tx.query(&statement, &values[..count_params]).await?;
            row.first().map(|r| r.try_get::<_, i64>(0)).transpose()
        } else {
            Ok(None)
        }
    };
    let (limited, checkpoint, rows, total) = tokio::join!(limited, checkpoint, rows, total);
    limited.map_err(ReadError::Unavailable)?;
    let checkpoint = checkpoint.map_err(|e| ReadError::Unreadable(e.into()))?;
    let rows = rows.map_err(ReadError::Refused)?;
    let total = total.map_err(ReadError::Refused)?;
    tx.commit().await.map_err(ReadError::Unavailable)?;
    let limit = usize::try_from(query.limit).unwrap_or(0);
    let has_more = rows.len() > limit;
    let last = limit.checked_sub(1).and_then(|i| rows.get(i));
    let next = match last.filter(|_| has_more) {
        Some(last) => {
            let offset = ROW_COLUMNS.split(", ").count();
            let values = (0..keys.len())
                .map(|i| last.try_get(offset + 2 * i + 1))
                .collect::<Result<_, _>>()
                .map_err(|e| ReadError::Unreadable(e.into()))?;
            Some(values)
        }
        None => None,
    };
    let documents = rows
        .iter()
        .take(limit)
        .map(|r| row_state(r, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| ReadError::Unreadable(e.into()))?;
    Ok(FetchedPage {
        documents,
        has_more,
        next,
        total,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expr: &str, descending: bool, nullable: bool) -> Key {
        Key {
            expr: expr.into(),
            sql_type: "bigint".into(),
            descending,
            nulls_first: descending,
            nullable,
        }
    }

    #[test]
    fn the_first_page_has_no_keyset() {
        let mut params = Params::default();
        let sql = page_sql(
            "v",
            "tenant = $1",
            &[key("id", false, false)],
            None,
            10,
            &mut params,
        );
        assert!(
            sql.ends_with("WHERE tenant = $1 ORDER BY s0 ASC NULLS LAST LIMIT 11"),
            "{sql}"
        );
        assert_eq!(params.len(), 0);
    }

    #[test]
    fn a_nullable_ascending_key_reads_three_ranges() {
        let mut params = Params::default();
        let keys = [key("f", false, true), key("id", false, false)];
        let cursor = [Some("5".to_owned()), Some("x".to_owned())];
        let sql = page_sql("v", "c", &keys, Some(&cursor), 10, &mut params);
        assert_eq!(params.len(), 2);
        assert!(
            sql.contains("WHERE c AND f = ($1::text)::bigint AND id > ($2::text)::bigint ORDER BY"),
            "{sql}"
        );
        assert!(
            sql.contains("WHERE c AND f > ($1::text)::bigint ORDER BY"),
            "{sql}"
        );
        assert!(sql.contains("WHERE c AND f IS NULL ORDER BY"), "{sql}");
        assert!(sql.starts_with("SELECT * FROM ((SELECT"), "{sql}");
    }

    #[test]
    fn a_descending_key_after_null_reads_the_values() {
        let mut params = Params::default();
        let keys = [key("f", true, true), key("id", true, false)];
        let cursor = [None, Some("x".to_owned())];
        let sql = page_sql("v", "c", &keys, Some(&cursor), 10, &mut params);
        assert_eq!(params.len(), 1);
        assert!(
            sql.contains("AND f IS NULL AND id < ($1::text)::bigint ORDER BY"),
            "{sql}"
        );
        assert!(sql.contains("AND f IS NOT NULL ORDER BY"), "{sql}");
    }

    #[test]
    fn later_keys_form_one_condition() {
        let keys = [
            key("a", false, true),
            key("b", true, true),
            key("id", true, false),
        ];
        let values = [Some("$1".to_owned()), None, Some("$2".to_owned())];
        assert_eq!(
            after(&keys, &values, 1),
            "(b IS NOT NULL OR (b IS NULL AND id < $2))"
        );
        let values = [None, Some("$3".to_owned()), Some("$2".to_owned())];
        assert_eq!(after(&keys, &values, 1), "(b < $3 OR (b = $3 AND id < $2))");
    }
}
