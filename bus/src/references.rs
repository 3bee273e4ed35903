//! References: a `ref` value must name a document that exists, is not archived and that the
//! caller may read. Checking that needs the store, so it runs beside the pure decision, in the
//! handler (authoritative) and in the api (to report every problem of a bad request at once).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::access::{Ownership, Principal};
use crate::schema::{AclAction, ErrorCode, FieldError, FieldKind, Fields, Registry};
use crate::store::{EventStore, StoreError};

/// A `ref` the command sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCheck {
    pub pointer: String,
    pub app: String,
    pub doc: String,
    pub id: Uuid,
}

/// Every `ref` value in `values`, including inside nested objects and arrays.
pub fn references(fields: &Fields, values: &Map<String, Value>) -> Vec<RefCheck> {
    let mut out = Vec::new();
    collect_fields(fields, values, "", &mut out);
    out
}

fn collect_fields(
    fields: &Fields,
    values: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<RefCheck>,
) {
    for (name, field) in fields {
        if let Some(value) = values.get(name) {
            collect(&field.kind, value, &format!("{prefix}/{name}"), out);
        }
    }
}

fn collect(kind: &FieldKind, value: &Value, pointer: &str, out: &mut Vec<RefCheck>) {
    match (kind, value) {
        (FieldKind::Ref { app, doc }, Value::String(raw)) => {
            // A malformed id is a `format` error of the validator, not a missing reference.
            if let Ok(id) = Uuid::parse_str(raw) {
                out.push(RefCheck {
                    pointer: pointer.to_owned(),
                    app: app.clone(),
                    doc: doc.clone(),
                    id,
                });
            }
        }
        (FieldKind::Object(nested), Value::Object(map)) => {
            collect_fields(nested, map, pointer, out)
        }
        (FieldKind::Array(item), Value::Array(items)) => {
            for (i, item_value) in items.iter().enumerate() {
                collect(&item.kind, item_value, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The references of `refs` that do not resolve for `principal`, as `ref_not_found` errors.
/// All targets are loaded in one query per tenant, so a body full of ids costs one round trip.
pub async fn unresolved<S: EventStore>(
    store: &S,
    registry: &Registry,
    principal: &Principal,
    refs: &[RefCheck],
) -> Result<Vec<FieldError>, StoreError> {
    let targets: Vec<(
        Option<&std::sync::Arc<crate::schema::DocumentSchema>>,
        String,
    )> = refs
        .iter()
        .map(|check| {
            let target = registry.get(&check.app, &check.doc);
            let stream =
                target.map_or_else(String::new, |t| t.collection().stream(check.id).to_string());
            (target, stream)
        })
        .collect();
    let mut wanted: Vec<String> = targets
        .iter()
        .map(|(_, s)| s.clone())
        .filter(|s| !s.is_empty())
        .collect();
    wanted.sort();
    wanted.dedup();
    let found = if wanted.is_empty() {
        std::collections::HashMap::new()
    } else {
        store.load_streams(&principal.tenant, &wanted).await?
    };
    let errors = refs
        .iter()
        .zip(&targets)
        .filter(|(_, (target, stream))| {
            let readable = target.is_some_and(|target| {
                found.get(stream).is_some_and(|loaded| {
                    !loaded.state.archived
                        && principal.may(
                            target.acl.roles(&AclAction::Read),
                            Ownership::CreatedBy(&loaded.state.created_by),
                        )
                })
            });
            !readable
        })
        .map(|(check, _)| FieldError {
            pointer: check.pointer.clone(),
            code: ErrorCode::RefNotFound,
            detail: format!("no {}.{} with this id", check.app, check.doc),
        })
        .collect();
    Ok(errors)
}

/// `errors` plus the unresolved references among `values`.
pub async fn with_unresolved<S: EventStore>(
    store: &S,
    registry: &Registry,
    principal: &Principal,
    fields: &Fields,
    values: &Map<String, Value>,
    mut errors: Vec<FieldError>,
) -> Result<Vec<FieldError>, StoreError> {
    errors.extend(unresolved(store, registry, principal, &references(fields, values)).await?);
    Ok(errors)
}
