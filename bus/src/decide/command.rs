//! What a declared command decides: its params against their declaration, then its guard and
//! the event its YAML declares, or the events its Rust code emits.

use serde_json::{Map, Value};

use crate::command::{CommandEnvelope, Rejection, RejectionCode};
use crate::document::{Change, DocumentState};
use crate::rust_command::Code;
use crate::schema::Mode;
use crate::schema::model::{CommandDecl, SetValue};
use crate::schema::validate::validate_fields;

pub(super) fn no_such_command() -> Rejection {
    Rejection::new(RejectionCode::NotFound, "no such command")
}

/// A `kind: rust` command whose code is not attached: a registry used without it cannot decide.
pub(super) fn undecided() -> Rejection {
    Rejection::new(RejectionCode::Internal, "the command could not be decided")
}

/// The params against their declaration, normalized; `422` with every error.
fn checked_params(declared: &CommandDecl, params: &Map<String, Value>) -> Result<Value, Rejection> {
    let name = &declared.name;
    validate_fields(
        &declared.params,
        &Value::Object(params.clone()),
        Mode::Create,
        &|_| true,
    )
    .map_err(|errors| Rejection {
        code: RejectionCode::ValidationFailed,
        detail: format!("the params of `{name}` are not valid"),
        errors,
    })
}

/// A command on a document (`current`) or on the collection (`None`): its params valid, then
/// its guard and the event it declares, or the events its code emits.
pub(super) fn run_command(
    current: Option<&DocumentState>,
    command: &CommandEnvelope,
    declared: &CommandDecl,
    params: &Map<String, Value>,
) -> Result<Vec<Change>, Rejection> {
    let params = checked_params(declared, params)?;
    match (&declared.code, declared.rust) {
        (Some(code), _) => run_code(command, declared, code, current, &params),
        (None, true) => Err(undecided()),
        (None, false) => {
            let document = Value::Object(current.map(|c| c.fields.clone()).unwrap_or_default());
            if declared
                .when
                .iter()
                .all(|condition| condition.holds(&document))
            {
                Ok(vec![declared_event(declared, &params)])
            } else {
                Err(Rejection::new(
                    RejectionCode::Refused(declared.reject.code.clone()),
                    declared.reject.detail.clone(),
                ))
            }
        }
    }
}

/// The event of a declared command: the fields its `set` takes from the params and literals
/// (a param the request leaves out leaves its field as it is). Its data is what it sets.
fn declared_event(declared: &CommandDecl, params: &Value) -> Change {
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
    Change::Custom {
        verb: declared.emits.first().cloned().unwrap_or_default(),
        set,
        payload: None,
    }
}

/// A `kind: rust` command: its registered code decides from the document (`None` on the
/// collection) and the params. Each event's data is the code's own; what it sets is kept in its
/// metadata.
fn run_code(
    command: &CommandEnvelope,
    declared: &CommandDecl,
    code: &Code,
    document: Option<&DocumentState>,
    params: &Value,
) -> Result<Vec<Change>, Rejection> {
    let params = params.as_object().cloned().unwrap_or_default();
    match code.decide(document, &params, &command.principal, &declared.emits) {
        Ok(Ok(emitted)) => Ok(emitted
            .into_iter()
            .map(|emit| Change::Custom {
                verb: emit.verb,
                set: emit.set,
                payload: emit.data.as_object().cloned(),
            })
            .collect()),
        Ok(Err(refusal)) => Err(Rejection::new(
            RejectionCode::Refused(refusal.code),
            refusal.detail,
        )),
        Err(failure) => {
            tracing::error!(command.id = %command.id, %failure, name = %declared.name, "a command's code failed");
            Err(undecided())
        }
    }
}
