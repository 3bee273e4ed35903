//! The pure decision: given a document's current state and a command, the events to append,
//! or the reason to refuse. No I/O happens here, so every rule is testable in isolation;
//! what needs the store (references, unique values) is returned for the handler to check.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::access::Ownership;
use crate::command::{Action, CommandEnvelope, Effect, Rejection, RejectionCode};
use crate::document::{Change, DocumentState, Stamp, apply};
use crate::references::{RefCheck, references};
use crate::schema::model::On;
use crate::schema::{
    AclAction, DocumentSchema, ErrorCode, FieldError, FieldKind, Fields, Mode, RoleSet, merge_patch,
};
use crate::store::UniqueValue;

mod command;

use command::{no_such_command, run_command, undecided};

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Empty when an update changes nothing.
    pub changes: Vec<Change>,
    pub state: DocumentState,
    pub effect: Effect,
    pub reserve: Vec<UniqueValue>,
    pub release: Vec<UniqueValue>,
    pub refs: Vec<RefCheck>,
}

pub fn decide(
    schema: &DocumentSchema,
    state: Option<&DocumentState>,
    command: &CommandEnvelope,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let creating = creates(schema, &command.action);
    match (&command.action, state) {
        (_, Some(_)) if creating => Err(Rejection::new(
            RejectionCode::Conflict,
            "a document with this id already exists",
        )),
        (Action::Create { fields }, None) => decide_create(schema, command, fields, now),
        (
            Action::Run {
                command: name,
                params,
            },
            None,
        ) if creating => decide_collection_run(schema, command, name, params, now),
        (_, None) => Err(Rejection::not_found()),
        (action, Some(current)) => decide_change(schema, current, command, action, now),
    }
}

/// Whether `action` makes its document (a create, or a command on the collection), so that no
/// document exists before it and no version can be named in `If-Match`.
pub fn creates(schema: &DocumentSchema, action: &Action) -> bool {
    match action {
        Action::Create { .. } => true,
        Action::Run { command, .. } => schema.command(command, On::Collection).is_some(),
        _ => false,
    }
}

/// Who may create: `403` for a caller who may read the collection, `404` for one who may not
/// even see it.
fn may_create(
    schema: &DocumentSchema,
    command: &CommandEnvelope,
    what: &str,
) -> Result<(), Rejection> {
    let caller = &command.principal;
    if caller.may(
        schema.acl.roles(&command.action.acl_action()),
        Ownership::Creating,
    ) {
        Ok(())
    } else if caller.may_some_document(schema.acl.roles(&AclAction::Read)) {
        Err(Rejection::new(
            RejectionCode::Forbidden,
            format!("you may not {what}"),
        ))
    } else {
        Err(Rejection::not_found())
    }
}

fn decide_create(
    schema: &DocumentSchema,
    command: &CommandEnvelope,
    fields: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let caller = &command.principal;
    may_create(schema, command, "create this document")?;
    let may_write = |roles: &_| caller.may(Some(roles), Ownership::Creating);
    let body = Value::Object(fields.clone());
    let normalized = schema
        .validate(&body, Mode::Create, &may_write)
        .map_err(Rejection::validation)?;
    let Value::Object(created) = normalized else {
        return Err(Rejection::validation(Vec::new()));
    };
    let stamp = Stamp {
        version: 1,
        at: now,
        by: caller.actor_sub(),
    };
    let change = Change::Created(created.clone());
    let state = apply(None, command.document_id, &change, stamp)
        .map_err(|e| Rejection::new(RejectionCode::Conflict, e.to_string()))?;
    Ok(Decision {
        reserve: unique_values(&schema.fields, &created),
        release: Vec::new(),
        refs: references(&schema.fields, &created),
        changes: vec![change],
        state,
        effect: Effect::Created,
    })
}

/// A command `on: collection`: its params valid, then its events, the first of which creates
/// the document with every field the document needs.
fn decide_collection_run(
    schema: &DocumentSchema,
    command: &CommandEnvelope,
    name: &str,
    params: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let declared = schema
        .command(name, On::Collection)
        .ok_or_else(no_such_command)?;
    may_create(schema, command, &format!("run `{name}` on this collection"))?;
    let emitted = run_command(None, command, declared, params)?;
    let (changes, state) = fold_emitted(schema, None, command, emitted, now)?;
    let Some(state) = state else {
        return Err(undecided());
    };
    Ok(Decision {
        reserve: unique_values(&schema.fields, &state.fields),
        release: Vec::new(),
        refs: references(&schema.fields, &state.fields),
        changes,
        state,
        effect: Effect::Created,
    })
}

fn decide_change(
    schema: &DocumentSchema,
    current: &DocumentState,
    command: &CommandEnvelope,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let caller = &command.principal;
    let owner = Ownership::CreatedBy(&current.created_by);
    // A command the document does not declare is not there, whatever the caller's rights.
    let declared = match action {
        Action::Run { command: name, .. } => Some(
            schema
                .command(name, On::Document)
                .ok_or_else(no_such_command)?,
        ),
        _ => None,
    };
    let restoring = matches!(action, Action::Restore);
    if !caller.may(schema.acl.roles(&AclAction::Read), owner) || (current.archived && !restoring) {
        return Err(Rejection::not_found());
    }
    if !caller.may(schema.acl.roles(&action.acl_action()), owner) {
        return Err(Rejection::new(
            RejectionCode::Forbidden,
            format!("you may not {} this document", action.acl_action()),
        ));
    }
    check_expected_version(schema, current, command.expected_version)?;
    let (change, effect) = match action {
        Action::Update { patch } => (
            update_change(schema, current, command, patch)?,
            Effect::Changed,
        ),
        Action::Run { params, .. } => {
            let declared = declared.ok_or_else(no_such_command)?;
            let emitted = run_command(Some(current), command, declared, params)?;
            return changed_by(schema, current, command, emitted, now);
        }
        Action::Archive => (Some(Change::Archived), Effect::Archived),
        Action::Restore if current.archived => (Some(Change::Restored), Effect::Changed),
        Action::Restore => {
            return Err(Rejection::new(
                RejectionCode::Conflict,
                "the document is not archived",
            ));
        }
        Action::Create { .. } => {
            return Err(Rejection::new(
                RejectionCode::Conflict,
                "the document already exists",
            ));
        }
    };
    let Some(change) = change else {
        return Ok(unchanged(current, effect));
    };
    let stamp = Stamp {
        version: current.version + 1,
        at: now,
        by: caller.actor_sub(),
    };
    let state = apply(Some(current.clone()), current.id, &change, stamp)
        .map_err(|e| Rejection::new(RejectionCode::Conflict, e.to_string()))?;
    let (reserve, release, refs) = match &change {
        Change::Updated(changed) => value_changes(schema, current, changed),
        _ => (Vec::new(), Vec::new(), Vec::new()),
    };
    Ok(Decision {
        changes: vec![change],
        state,
        effect,
        reserve,
        release,
        refs,
    })
}

/// A decision that appends nothing and leaves the document as it is.
fn unchanged(current: &DocumentState, effect: Effect) -> Decision {
    Decision {
        changes: Vec::new(),
        state: current.clone(),
        effect,
        reserve: Vec::new(),
        release: Vec::new(),
        refs: Vec::new(),
    }
}

/// The unique values a change of top-level fields takes and frees, and the references it
/// makes, for the handler to check.
fn value_changes(
    schema: &DocumentSchema,
    current: &DocumentState,
    changed: &Map<String, Value>,
) -> (Vec<UniqueValue>, Vec<UniqueValue>, Vec<RefCheck>) {
    let changed: Map<String, Value> = changed
        .iter()
        .filter(|(name, value)| current.fields.get(*name) != Some(*value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let set: Map<String, Value> = changed
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let before: Map<String, Value> = changed
        .keys()
        .filter_map(|k| current.fields.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    (
        unique_values(&schema.fields, &set),
        unique_values(&schema.fields, &before),
        references(&schema.fields, &set),
    )
}

/// The decision of a command on a document from the events it emitted.
fn changed_by(
    schema: &DocumentSchema,
    current: &DocumentState,
    command: &CommandEnvelope,
    emitted: Vec<Change>,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let (changes, state) = fold_emitted(schema, Some(current), command, emitted, now)?;
    let Some(state) = state.filter(|_| !changes.is_empty()) else {
        return Ok(unchanged(current, Effect::Changed));
    };
    // What the events set together, for the unique values and references to check.
    let mut set = Map::new();
    for change in &changes {
        if let Change::Custom { set: fields, .. } = change {
            set.extend(fields.clone());
        }
    }
    let (reserve, release, refs) = value_changes(schema, current, &set);
    Ok(Decision {
        changes,
        state,
        effect: Effect::Changed,
        reserve,
        release,
        refs,
    })
}

/// Checks each emitted event's fields against the document as the events before it left it
/// (a whole new document for the first event of a command on the collection), and folds them.
/// Returns the changes and the state after the last one (`None` when nothing was emitted on
/// the collection).
fn fold_emitted(
    schema: &DocumentSchema,
    current: Option<&DocumentState>,
    command: &CommandEnvelope,
    emitted: Vec<Change>,
    now: DateTime<Utc>,
) -> Result<(Vec<Change>, Option<DocumentState>), Rejection> {
    let mut state = current.cloned();
    let mut changes = Vec::with_capacity(emitted.len());
    for change in emitted {
        let change = match change {
            Change::Custom { verb, set, payload } => Change::Custom {
                set: checked_set(schema, state.as_ref(), set)?,
                verb,
                payload,
            },
            other => other,
        };
        let stamp = Stamp {
            version: state.as_ref().map_or(0, |s| s.version) + 1,
            at: now,
            by: command.principal.actor_sub(),
        };
        let id = state.as_ref().map_or(command.document_id, |s| s.id);
        state = Some(
            apply(state, id, &change, stamp)
                .map_err(|e| Rejection::new(RejectionCode::Conflict, e.to_string()))?,
        );
        changes.push(change);
    }
    Ok((changes, state))
}

fn check_expected_version(
    schema: &DocumentSchema,
    current: &DocumentState,
    expected: Option<i64>,
) -> Result<(), Rejection> {
    match expected {
        None if schema.require_if_match => Err(Rejection::new(
            RejectionCode::PreconditionRequired,
            "this collection requires If-Match with the document's version",
        )),
        Some(expected) if expected != current.version => Err(Rejection::new(
            RejectionCode::VersionMismatch,
            format!(
                "the document is at version {}, not {expected}",
                current.version
            ),
        )),
        _ => Ok(()),
    }
}

/// Validates a merge patch against the current state; `None` when it changes nothing.
fn update_change(
    schema: &DocumentSchema,
    current: &DocumentState,
    command: &CommandEnvelope,
    patch: &Map<String, Value>,
) -> Result<Option<Change>, Rejection> {
    let caller = &command.principal;
    let owner = Ownership::CreatedBy(&current.created_by);
    let may_write = |roles: &_| caller.may(Some(roles), owner);
    let (patch, merged) = checked_patch(schema, current, patch, Mode::Patch, &may_write)?;
    let changed: Map<String, Value> = patch
        .into_iter()
        .filter(|(name, _)| current.fields.get(name) != merged.get(name.as_str()))
        .collect();
    Ok((!changed.is_empty()).then_some(Change::Updated(changed)))
}

/// The fields an event sets, checked against the document as it stands: a merge patch of it,
/// or with no document yet, the whole new document (defaults filled in).
fn checked_set(
    schema: &DocumentSchema,
    state: Option<&DocumentState>,
    set: Map<String, Value>,
) -> Result<Map<String, Value>, Rejection> {
    match state {
        Some(before) => Ok(checked_patch(schema, before, &set, Mode::Set, &|_| true)?.0),
        None => match schema.validate(&Value::Object(set), Mode::SetNew, &|_| true) {
            Ok(created) => Ok(created.as_object().cloned().unwrap_or_default()),
            Err(errors) => Err(Rejection::validation(errors)),
        },
    }
}

/// A merge patch checked against the current document: its own values (in `mode`, with the
/// write rights `may_write` gives), the `immutable` fields it would change, and the merged
/// document. Returns the normalized patch and the merged fields.
fn checked_patch(
    schema: &DocumentSchema,
    current: &DocumentState,
    patch: &Map<String, Value>,
    mode: Mode,
    may_write: &dyn Fn(&RoleSet) -> bool,
) -> Result<(Map<String, Value>, Value), Rejection> {
    // Every problem at once: the patch's own, and the immutable fields it would change.
    let (patch, mut errors) = match schema.validate(&Value::Object(patch.clone()), mode, may_write)
    {
        // A validated object is returned as an object, normalized.
        Ok(normalized) => (
            normalized.as_object().cloned().unwrap_or_default(),
            Vec::new(),
        ),
        Err(errors) => (patch.clone(), errors),
    };
    let before = Value::Object(current.fields.clone());
    let mut merged = before.clone();
    merge_patch(&mut merged, &Value::Object(patch.clone()));
    immutable_changes(&schema.fields, &before, &merged, "", &mut errors);
    // The merged document is checked only for a valid patch: an invalid value would be
    // reported twice.
    if errors.is_empty()
        && let Err(invalid) = schema.validate(&merged, Mode::Stored, &|_| true)
    {
        errors.extend(invalid);
    }
    if errors.is_empty() {
        Ok((patch, merged))
    } else {
        Err(Rejection::validation(errors))
    }
}

/// An `immutable` field (at any depth) whose value the merge would change.
fn immutable_changes(
    fields: &Fields,
    before: &Value,
    after: &Value,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) {
    for (name, field) in fields {
        let pointer = format!("{prefix}/{name}");
        let (old, new) = (
            before.get(name).unwrap_or(&Value::Null),
            after.get(name).unwrap_or(&Value::Null),
        );
        if field.immutable && old != new {
            errors.push(FieldError {
                pointer,
                code: ErrorCode::Immutable,
                detail: "can only be set when the document is created".into(),
            });
        } else if let FieldKind::Object(nested) = &field.kind {
            immutable_changes(nested, old, new, &pointer, errors);
        }
    }
}

fn unique_values(fields: &Fields, values: &Map<String, Value>) -> Vec<UniqueValue> {
    fields
        .iter()
        .filter(|(_, field)| field.unique)
        .filter_map(|(name, _)| {
            let value = match values.get(name)? {
                Value::Null => return None,
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Some(UniqueValue {
                field: name.clone(),
                value,
            })
        })
        .collect()
}
