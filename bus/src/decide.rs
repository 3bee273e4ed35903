//! The pure decision: given a document's current state and a command, the events to append,
//! or the reason to refuse. No I/O happens here, so every rule is testable in isolation;
//! what needs the store (references, unique values) is returned for the handler to check.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::access::Ownership;
use crate::command::{Action, CommandEnvelope, Effect, Rejection, RejectionCode};
use crate::document::{Change, DocumentState, Stamp, apply};
use crate::references::{RefCheck, references};
use crate::rust_command::Code;
use crate::schema::model::{CommandDecl, SetValue};
use crate::schema::validate::validate_fields;
use crate::schema::{
    AclAction, DocumentSchema, ErrorCode, FieldError, FieldKind, Fields, Mode, RoleSet, merge_patch,
};
use crate::store::UniqueValue;

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
    match (&command.action, state) {
        (Action::Create { fields }, None) => decide_create(schema, command, fields, now),
        (Action::Create { .. }, Some(_)) => Err(Rejection::new(
            RejectionCode::Conflict,
            "a document with this id already exists",
        )),
        (_, None) => Err(Rejection::not_found()),
        (action, Some(current)) => decide_change(schema, current, command, action, now),
    }
}

fn decide_create(
    schema: &DocumentSchema,
    command: &CommandEnvelope,
    fields: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let caller = &command.principal;
    let create = schema.acl.roles(&AclAction::Create);
    if !caller.may(create, Ownership::Creating) {
        return Err(
            if caller.may_some_document(schema.acl.roles(&AclAction::Read)) {
                Rejection::new(RejectionCode::Forbidden, "you may not create this document")
            } else {
                Rejection::not_found()
            },
        );
    }
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
        Action::Run { command: name, .. } => {
            Some(schema.commands.get(name).ok_or_else(no_such_command)?)
        }
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
            (
                Some(run_change(schema, current, command, declared, params)?),
                Effect::Changed,
            )
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
        return Ok(Decision {
            changes: Vec::new(),
            state: current.clone(),
            effect,
            reserve: Vec::new(),
            release: Vec::new(),
            refs: Vec::new(),
        });
    };
    let stamp = Stamp {
        version: current.version + 1,
        at: now,
        by: caller.actor_sub(),
    };
    let state = apply(Some(current.clone()), current.id, &change, stamp)
        .map_err(|e| Rejection::new(RejectionCode::Conflict, e.to_string()))?;
    let (reserve, release, refs) = match &change {
        Change::Updated(changed) | Change::Custom { set: changed, .. } => {
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

/// A declared command's event: its params valid, its guard passed, and the fields it sets
/// valid on the document. The command's ACL is the right to set them, whatever the fields'
/// own write rights.
fn no_such_command() -> Rejection {
    Rejection::new(RejectionCode::NotFound, "no such command")
}

fn run_change(
    schema: &DocumentSchema,
    current: &DocumentState,
    command: &CommandEnvelope,
    declared: &CommandDecl,
    params: &Map<String, Value>,
) -> Result<Change, Rejection> {
    let name = &declared.name;
    let params = validate_fields(
        &declared.params,
        &Value::Object(params.clone()),
        Mode::Create,
        &|_| true,
    )
    .map_err(|errors| Rejection {
        code: RejectionCode::ValidationFailed,
        detail: format!("the params of `{name}` are not valid"),
        errors,
    })?;
    if declared.rust {
        // Code is attached at start-up; a registry used without it cannot decide.
        let Some(code) = &declared.code else {
            return Err(Rejection::new(
                RejectionCode::Internal,
                "the command could not be decided",
            ));
        };
        return run_code(schema, current, command, declared, code, &params);
    }
    let document = Value::Object(current.fields.clone());
    if !declared
        .when
        .iter()
        .all(|condition| condition.holds(&document))
    {
        return Err(Rejection::new(
            RejectionCode::Refused(declared.reject.code.clone()),
            declared.reject.detail.clone(),
        ));
    }
    let set: Map<String, Value> = declared
        .set
        .iter()
        .filter_map(|(field, value)| {
            let value = match value {
                SetValue::Param(param) => params.get(param)?.clone(),
                SetValue::Literal(literal) => literal.clone(),
            };
            Some((field.clone(), value))
        })
        .collect();
    let (set, _) = checked_patch(schema, current, &set, Mode::Set, &|_| true)?;
    Ok(Change::Custom {
        verb: declared.emits.clone(),
        set,
        payload: None,
    })
}

/// A `kind: rust` command: its registered code decides from the document and the params.
fn run_code(
    schema: &DocumentSchema,
    current: &DocumentState,
    command: &CommandEnvelope,
    declared: &CommandDecl,
    code: &Code,
    params: &Value,
) -> Result<Change, Rejection> {
    let params = params.as_object().cloned().unwrap_or_default();
    let emit = match code.decide(current, &params, &command.principal) {
        Ok(Ok(emit)) => emit,
        Ok(Err(refusal)) => {
            return Err(Rejection::new(
                RejectionCode::Refused(refusal.code),
                refusal.detail,
            ));
        }
        Err(failure) => {
            tracing::error!(command.id = %command.id, %failure, name = %declared.name, "a command's code failed");
            return Err(Rejection::new(
                RejectionCode::Internal,
                "the command could not be decided",
            ));
        }
    };
    let (set, _) = checked_patch(schema, current, &emit.set, Mode::Set, &|_| true)?;
    Ok(Change::Custom {
        verb: declared.emits.clone(),
        set,
        payload: emit.data.as_object().cloned(),
    })
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
