//! The query string of `GET /v1/{app}/{doc}`: filters on `filter: true` fields, `order` on
//! `sort: true` fields with `id` breaking ties, full-text `q` over `search: true` fields,
//! `select`, and keyset pages with a signed cursor bound to the query. The view query language
//! and its SQL are the projector's (`herald_projector::query`); this reads the parameters,
//! names the one at fault, and signs cursors.

use std::collections::BTreeSet;

use deadpool_postgres::tokio_postgres::error::SqlState;
use herald_bus::access::Principal;
use herald_bus::document::DocumentState;
use herald_bus::position::LogPosition;
use herald_bus::schema::{DocumentSchema, MANAGED_FIELDS};
use herald_projector::query::{
    DocumentView, Filter, Key, PageQuery, ReadError, Search, Target, Use, Vocabulary, fetch_page,
};

use crate::error::ApiError;
use crate::extract::page_limit;
use crate::state::AppState;
use crate::views::CursorKey;

/// The parameters a list takes besides filters.
const RESERVED: [&str; 6] = ["limit", "cursor", "order", "select", "q", "min_position"];

/// The most keys `order` takes (`id` is added after them).
pub const MAX_ORDER_KEYS: usize = 4;

/// The longest `q` accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 500;

/// A parsed list query.
pub struct ListQuery {
    filters: Vec<Filter>,
    search: Option<Search>,
    /// The order's keys; `None` stands for the search rank (which needs the query's
    /// placeholder), then the `id` tie-breaker.
    keys: Vec<Option<Key>>,
    /// Top-level fields to return besides `id`; all when `None`.
    pub select: Option<Vec<String>>,
    pub limit: i64,
    cursor: Option<Vec<Option<String>>>,
    /// What a cursor is bound to: the collection, filters, order and search.
    scope: String,
    /// The parameters to repeat in the next page's link (all but `cursor`).
    pub link: Vec<(String, String)>,
}

impl ListQuery {
    /// Reads the query string of a list. Every mistake is a `400 invalid_query` naming its
    /// parameter.
    pub fn parse(
        vocabulary: &Vocabulary<'_>,
        pairs: &[(String, String)],
        cursors: &CursorKey,
    ) -> Result<ListQuery, ApiError> {
        let mut seen = BTreeSet::new();
        for (name, _) in pairs {
            if RESERVED.contains(&name.as_str()) && !seen.insert(name.as_str()) {
                return Err(ApiError::invalid_query(name, "is given more than once"));
            }
        }
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let mut filters = Vec::new();
        let mut bound: Vec<(&str, &str)> = Vec::new();
        for (name, value) in pairs
            .iter()
            .filter(|(n, _)| !RESERVED.contains(&n.as_str()))
        {
            let filter = vocabulary
                .target(name, Use::Filter)
                .and_then(|target| Filter::parse(&target, value))
                .map_err(|detail| ApiError::invalid_query(name, detail))?;
            filters.push(filter);
            bound.push((name, value));
        }
        bound.sort();
        let search = get("q")
            .map(|text| parse_search(vocabulary, text))
            .transpose()
            .map_err(|detail| ApiError::invalid_query("q", detail))?;
        let keys = match get("order") {
            Some(order) => parse_order(vocabulary, order)
                .map_err(|detail| ApiError::invalid_query("order", detail))?,
            None if search.is_some() => vec![None, Some(id_key(true))],
            None => vec![Some(id_key(false))],
        };
        let select = get("select")
            .map(|raw| parse_select(vocabulary.schema, raw))
            .transpose()
            .map_err(|detail| ApiError::invalid_query("select", detail))?;
        // JSON keeps the parts apart whatever they contain; the key types make a cursor from
        // before a declaration change (whose values may not cast to the new type) foreign.
        let types: Vec<&str> = keys
            .iter()
            .map(|k| k.as_ref().map_or("real", |k| k.sql_type.as_str()))
            .collect();
        let scope = serde_json::json!([
            "list",
            vocabulary.schema.collection(),
            bound,
            get("order"),
            get("q"),
            types
        ])
        .to_string();
        let cursor = get("cursor")
            .map(|raw| {
                cursors
                    .decode(&scope, raw)
                    .and_then(|bytes| serde_json::from_slice::<Vec<Option<String>>>(&bytes).ok())
                    .filter(|values| values.len() == keys.len())
                    .ok_or_else(|| {
                        ApiError::invalid_query(
                            "cursor",
                            "not a cursor this server issued for this query (its filters, order \
                             and q must stay the same)",
                        )
                    })
            })
            .transpose()?;
        Ok(ListQuery {
            filters,
            search,
            keys,
            select,
            limit: page_limit(get("limit"))?,
            cursor,
            scope,
            link: pairs
                .iter()
                .filter(|(name, _)| name != "cursor")
                .cloned()
                .collect(),
        })
    }
}

fn id_key(descending: bool) -> Key {
    Key {
        expr: "id".into(),
        sql_type: "uuid".into(),
        descending,
        nulls_first: descending,
        nullable: false,
    }
}

fn parse_search(vocabulary: &Vocabulary<'_>, text: &str) -> Result<Search, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if text.chars().count() > MAX_SEARCH_CHARS || text.contains('\0') {
        return Err(format!(
            "must be at most {MAX_SEARCH_CHARS} characters, without NUL"
        ));
    }
    let column = vocabulary.search_column()?;
    Ok(Search {
        text: text.to_owned(),
        language: column
            .search
            .as_ref()
            .map_or_else(|| "simple".to_owned(), |s| s.language.clone()),
        column: format!("\"{}\"", column.name),
    })
}

/// `order=price.desc,name.asc.nullsfirst`: fields with an optional direction and nulls
/// placement (nulls sort after values unless told otherwise: last ascending, first
/// descending). `id` is appended in the direction of the last key unless named, and ends the
/// order when named.
fn parse_order(vocabulary: &Vocabulary<'_>, order: &str) -> Result<Vec<Option<Key>>, String> {
    let mut keys: Vec<Option<Key>> = Vec::new();
    let mut named = BTreeSet::new();
    for item in order.split(',') {
        if named.contains("id") {
            return Err("`id` breaks every tie, so nothing may follow it".into());
        }
        let mut parts: Vec<&str> = item.split('.').collect();
        let nulls_first = match parts.last() {
            Some(&"nullsfirst") => parts.pop().map(|_| true),
            Some(&"nullslast") => parts.pop().map(|_| false),
            _ => None,
        };
        let descending = parts.last() == Some(&"desc");
        if matches!(parts.last(), Some(&"asc" | &"desc")) {
            parts.pop();
        }
        let path = parts.join(".");
        if path.is_empty() {
            return Err(format!(
                "`{item}` names no field (expected <field>[.asc|.desc][.nullsfirst|.nullslast])"
            ));
        }
        if path != "id" && named.len() == MAX_ORDER_KEYS {
            return Err(format!("takes at most {MAX_ORDER_KEYS} fields besides id"));
        }
        if !named.insert(path.clone()) {
            return Err(format!("`{path}` is named twice"));
        }
        let Target {
            expr,
            sql_type,
            nullable,
            ..
        } = vocabulary.target(&path, Use::Sort)?;
        keys.push(Some(Key {
            expr,
            sql_type,
            descending,
            nulls_first: nulls_first.unwrap_or(descending),
            nullable,
        }));
    }
    if named.contains("id") {
        return Ok(keys);
    }
    let descending = keys
        .last()
        .and_then(Option::as_ref)
        .is_some_and(|k| k.descending);
    keys.push(Some(id_key(descending)));
    Ok(keys)
}

/// `select=name,price`: top-level fields (declared or managed) to return besides `id`.
fn parse_select(schema: &DocumentSchema, raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(|name| {
            if schema.fields.contains_key(name) || MANAGED_FIELDS.contains(&name) {
                Ok(name.to_owned())
            } else {
                Err(format!(
                    "`{name}` is not a top-level field of {}",
                    schema.collection()
                ))
            }
        })
        .collect()
}

/// Which documents of a collection the caller lists.
pub struct Listing<'a> {
    pub view: &'a DocumentView,
    pub principal: &'a Principal,
    /// Only those it created (its read right is `owner`).
    pub own_only: bool,
    /// Count every match too (`Prefer: count=exact`).
    pub count: bool,
}

/// One page of a list.
pub struct Page {
    pub documents: Vec<DocumentState>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub total: Option<i64>,
    pub checkpoint: LogPosition,
}

impl ListQuery {
    /// Runs the query (see [`fetch_page`]).
    pub async fn run(&self, state: &AppState, listing: Listing<'_>) -> Result<Page, ApiError> {
        let query = PageQuery {
            view: listing.view,
            tenant: listing.principal.tenant.as_str(),
            created_by: listing.own_only.then(|| listing.principal.actor_sub()),
            filters: &self.filters,
            search: self.search.as_ref(),
            keys: &self.keys,
            cursor: self.cursor.as_deref(),
            limit: self.limit,
            count: listing.count,
            timeout_ms: state.settings.http.query_timeout_ms,
        };
        let mut client = state.db().await?;
        let page = match fetch_page(&mut client, &query).await {
            Ok(page) => page,
            Err(ReadError::Refused(error)) => return Err(query_failed(error, state)),
            Err(error) => return Err(error.into()),
        };
        let next_cursor = match &page.next {
            Some(values) => {
                let payload = serde_json::to_vec(values).map_err(ApiError::internal)?;
                Some(state.cursors.encode(&self.scope, &payload))
            }
            None => None,
        };
        Ok(Page {
            documents: page.documents,
            next_cursor,
            has_more: page.has_more,
            total: page.total,
            checkpoint: page.checkpoint,
        })
    }
}

/// A list query Postgres refused. A column the query names may be missing while the view's
/// new version (with it) is still being built, and a query may outrun the time limit: both are
/// `503`. A value Postgres cannot take (data exceptions, class 22) is the query's fault: `400`.
/// Never the driver's text.
fn query_failed(error: deadpool_postgres::tokio_postgres::Error, state: &AppState) -> ApiError {
    match error.code() {
        Some(code) if code.code().starts_with("22") => ApiError::invalid_query(
            "query",
            "a value of the query is out of range for its field",
        ),
        Some(code)
            if *code == SqlState::UNDEFINED_COLUMN || *code == SqlState::UNDEFINED_FUNCTION =>
        {
            ApiError::Unavailable(
                "this query needs the view version being built for the current declaration; \
                 retry once the rebuild is done"
                    .into(),
            )
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => ApiError::Unavailable(format!(
            "the query ran longer than {} ms; narrow it with filters",
            state.settings.http.query_timeout_ms
        )),
        _ => ApiError::store_unavailable(error),
    }
}

#[cfg(test)]
mod tests {
    use herald_bus::access::Principal;
    use herald_bus::ids::TenantId;
    use herald_bus::schema::Registry;
    use proptest::prelude::*;

    use super::*;

    const ITEM: &str = "search_language: english
fields:
  name: {type: string, filter: true, sort: true, search: true}
  price: {type: number, filter: true, sort: true}
  due: {type: date, filter: true, sort: true}
  kind: {type: string, enum: [a, b], filter: true}
  tags: {type: array, items: {type: integer}, filter: true}
  box: {type: object, fields: {w: {type: number, filter: true, sort: true}}}
  secret: {type: string, filter: true, acl: {read: admin, write: admin}}
acl: {read: user}
";

    fn parse(pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
        let registry =
            Registry::from_sources(&[("shop", "item", ITEM)]).unwrap_or_else(|e| panic!("{e}"));
        let schema = registry
            .get("shop", "item")
            .unwrap_or_else(|| unreachable!());
        let columns = herald_projector::columns_of(schema);
        let principal = Principal {
            sub: Some("u".into()),
            tenant: TenantId::parse("t").unwrap_or_else(|| unreachable!()),
            roles: Vec::new(),
        };
        let vocabulary = Vocabulary {
            schema,
            columns: &columns,
            principal: &principal,
            own_only: false,
        };
        let cursors = CursorKey::from_settings(&herald_bus::settings::AuthSettings::default());
        ListQuery::parse(&vocabulary, pairs, &cursors)
    }

    /// Parameter names and values near the language, so most inputs reach deep into the parser.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("name".to_owned()),
            Just("price".to_owned()),
            Just("due".to_owned()),
            Just("kind".to_owned()),
            Just("tags".to_owned()),
            Just("box.w".to_owned()),
            Just("secret".to_owned()),
            Just("order".to_owned()),
            Just("select".to_owned()),
            Just("q".to_owned()),
            Just("limit".to_owned()),
            Just("cursor".to_owned()),
            ".{0,12}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "(not\\.)?(eq|neq|gt|gte|lt|lte|in|like|ilike|is|cs)\\.[-0-9a-z.,(){}\"\\\\*%: ]{0,24}",
            "[a-z.]{0,10}(\\.(asc|desc))?(\\.(nullsfirst|nullslast))?(,[a-z.]{0,8}){0,5}",
            ".{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn any_query_string_parses_or_is_refused_without_panicking(
            pairs in proptest::collection::vec((name(), value()), 0..6)
        ) {
            match parse(&pairs) {
                Ok(query) => prop_assert!(query.limit >= 1 && query.limit <= 200),
                Err(ApiError::InvalidQuery { .. }) => {}
                Err(other) => prop_assert!(false, "not a 400: {other:?}"),
            }
        }
    }
}
