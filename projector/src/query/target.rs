//! What a list query may name: the fields declared `filter`, `sort` or `search` that the caller
//! may read on every document it lists, plus `id`, `created_at` and `updated_at`.

use crate::Column;
use herald_bus::access::{Ownership, Principal};
use herald_bus::schema::query::field_path;
use herald_bus::schema::{DocumentSchema, Field, FieldKind};

/// A field as a query uses it: its SQL expression and type.
#[derive(Debug, Clone)]
pub struct Target {
    /// The column, quoted where needed, ready for SQL.
    pub expr: String,
    pub sql_type: String,
    /// The declared field, for reading values with its type.
    pub field: Field,
    /// Whether some documents may lack a value (a YAML change can leave old documents
    /// without a field that is now required, so only the managed columns are never null).
    pub nullable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Filter,
    Sort,
}

/// The fields of one collection as one caller may query them.
pub struct Vocabulary<'a> {
    pub schema: &'a DocumentSchema,
    pub columns: &'a [Column],
    pub principal: &'a Principal,
    /// The caller lists only the documents it created (its read right is `owner`).
    pub own_only: bool,
}

impl Vocabulary<'_> {
    /// The field `path` names, if it may be used as `usage`; otherwise why not.
    pub fn target(&self, path: &str, usage: Use) -> Result<Target, String> {
        if let Some(target) = managed(path) {
            return Ok(target);
        }
        let collection = self.schema.collection();
        let chain = field_path(&self.schema.fields, path)
            .ok_or_else(|| format!("`{path}` is not a field of {collection}"))?;
        let field = chain
            .last()
            .ok_or_else(|| format!("`{path}` is not a field of {collection}"))?;
        let (declared, verb) = match usage {
            Use::Filter => (field.filter, "filter"),
            Use::Sort => (field.sort, "sort"),
        };
        if !declared {
            return Err(format!("`{path}` is not declared `{verb}: true`"));
        }
        if !self.readable(&chain) {
            return Err(format!(
                "you may not read `{path}`, so you cannot {verb} on it"
            ));
        }
        let column = self
            .columns
            .iter()
            .find(|c| c.search.is_none() && c.field == path)
            .ok_or_else(|| format!("`{path}` has no column to {verb} on"))?;
        Ok(Target {
            expr: format!("\"{}\"", column.name),
            sql_type: column.sql_type.clone(),
            field: (*field).clone(),
            nullable: true,
        })
    }

    /// The search column for the caller: the one over every `search` field when it may read
    /// them all, else the one over those without a read rule.
    pub fn search_column(&self) -> Result<&Column, String> {
        let covering = |open: bool| {
            self.columns
                .iter()
                .find(|c| c.search.as_ref().is_some_and(|s| s.open == open))
        };
        let all = covering(false).ok_or_else(|| {
            format!(
                "{} declares no `search: true` fields",
                self.schema.collection()
            )
        })?;
        let readable = all.search.iter().flat_map(|s| &s.fields).all(|(path, _)| {
            field_path(&self.schema.fields, path).is_some_and(|chain| self.readable(&chain))
        });
        if readable {
            return Ok(all);
        }
        covering(true).ok_or_else(|| "you may not read the fields search covers".to_owned())
    }

    /// Whether the caller may read every field of `chain` on every document it lists: a
    /// filter, order or search on a field it cannot read would reveal the hidden values.
    fn readable(&self, chain: &[&Field]) -> bool {
        chain.iter().all(|field| match &field.acl.read {
            None => true,
            Some(roles) => {
                self.principal.may_any_document(Some(roles))
                    || (self.own_only
                        && self.principal.may(
                            Some(roles),
                            Ownership::CreatedBy(self.principal.actor_sub()),
                        ))
            }
        })
    }
}

/// `id`, `created_at` and `updated_at`: every document has them, each with its own index.
pub const MANAGED_QUERY_FIELDS: [&str; 3] = ["id", "created_at", "updated_at"];

/// The target of a managed field, if `path` is one of [`MANAGED_QUERY_FIELDS`].
pub fn managed(path: &str) -> Option<Target> {
    let (sql_type, kind) = match path {
        "id" => ("uuid", FieldKind::Uuid),
        "created_at" | "updated_at" => ("timestamptz", FieldKind::Datetime),
        _ => return None,
    };
    Some(Target {
        expr: path.to_owned(),
        sql_type: sql_type.to_owned(),
        field: Field::new(kind),
        nullable: false,
    })
}
