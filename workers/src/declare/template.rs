//! Command tasks: the command to send, with `$event.<path>` templates filled in from the event
//! that started the task.

use serde_json::{Map, Value};
use uuid::Uuid;

use herald_bus::schema::condition::lookup;

/// The keys of the event JSON a template may start with (`stream` and `position` are left out:
/// they describe the log, not the change).
pub(super) const TEMPLATE_ROOTS: [&str; 8] = [
    "id",
    "type",
    "document_id",
    "version",
    "time",
    "actor",
    "data",
    "tenant",
];

const PREFIX: &str = "$event";

/// The command a `command` task sends.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandTemplate {
    /// The target collection's app.
    pub app: String,
    /// The target collection's document name.
    pub doc: String,
    pub action: TemplateAction,
    /// The target document: a UUID or a template. `None` only for `create`.
    pub id: Option<String>,
    /// The create body or merge patch; any string in it may be a template. Empty for
    /// `archive` and `restore`.
    pub body: Map<String, Value>,
    /// The roles of the actor the command is sent as (YAML default `[admin]`: a task is
    /// declared by whoever deploys the app, so it acts with full rights unless narrowed).
    pub roles: Vec<String>,
}

/// The command a template sends, one per document command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateAction {
    Create,
    Update,
    Archive,
    Restore,
}

impl TemplateAction {
    pub(super) const NAMES: [&'static str; 4] = ["create", "update", "archive", "restore"];

    pub(super) fn parse(name: &str) -> Option<TemplateAction> {
        let action = match name {
            "create" => TemplateAction::Create,
            "update" => TemplateAction::Update,
            "archive" => TemplateAction::Archive,
            "restore" => TemplateAction::Restore,
            _ => return None,
        };
        Some(action)
    }

    /// The name as written in YAML.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateAction::Create => "create",
            TemplateAction::Update => "update",
            TemplateAction::Archive => "archive",
            TemplateAction::Restore => "restore",
        }
    }

    /// Create and update carry a body; archive and restore only name a document.
    #[must_use]
    pub fn has_body(self) -> bool {
        matches!(self, TemplateAction::Create | TemplateAction::Update)
    }
}

impl CommandTemplate {
    /// The document id and body for one event, given as the JSON workers hand to tasks
    /// (`{"id", "type", "document_id", …, "data", "tenant"}`).
    ///
    /// # Errors
    /// A message naming the template when the event lacks a path a template names, or when the
    /// id is not a UUID: the event, not the declaration, is at fault, so the task run fails
    /// rather than start-up.
    pub fn render(&self, event: &Value) -> Result<(Option<Uuid>, Map<String, Value>), String> {
        let id = match &self.id {
            None => None,
            Some(id) => {
                let value = render_value(&Value::String(id.clone()), event)?;
                let parsed = value.as_str().and_then(|text| Uuid::try_parse(text).ok());
                let Some(parsed) = parsed else {
                    return Err(format!("`id`: {id} is {value}, not a UUID"));
                };
                Some(parsed)
            }
        };
        let mut body = Map::with_capacity(self.body.len());
        for (key, value) in &self.body {
            body.insert(key.clone(), render_value(value, event)?);
        }
        Ok((id, body))
    }
}

/// `value` with every template replaced by the event's value at its path.
fn render_value(value: &Value, event: &Value) -> Result<Value, String> {
    match value {
        Value::String(text) => match template_path(text) {
            Some(path) => lookup(event, path)
                .cloned()
                .ok_or_else(|| format!("{text}: the event has no `{path}`")),
            None => Ok(value.clone()),
        },
        Value::Array(items) => items
            .iter()
            .map(|item| render_value(item, event))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(key, item)| Ok((key.clone(), render_value(item, event)?)))
            .collect::<Result<_, String>>()
            .map(Value::Object),
        _ => Ok(value.clone()),
    }
}

/// The event path of a template string, `None` for any other string.
fn template_path(text: &str) -> Option<&str> {
    text.strip_prefix(PREFIX)?.strip_prefix('.')
}

/// Whether `text` is meant as a template (`$event` or `$event.…`); such strings are checked
/// at load time, so a typo cannot silently become literal text.
pub(super) fn is_template(text: &str) -> bool {
    text.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Why a string meant as a template is not a valid one, if it is not.
pub(super) fn template_problem(text: &str) -> Option<String> {
    let Some(path) = template_path(text) else {
        return Some(format!(
            "`{text}` needs a path: $event.<path>, e.g. $event.document_id"
        ));
    };
    if path.split('.').any(str::is_empty) {
        return Some(format!("`{text}` has an empty step in its path"));
    }
    let root = path.split('.').next().unwrap_or_default();
    if !TEMPLATE_ROOTS.contains(&root) {
        return Some(format!(
            "`{text}`: the event has no `{root}` (expected one of {})",
            TEMPLATE_ROOTS.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(id: Option<&str>, body: Value) -> CommandTemplate {
        let Value::Object(body) = body else {
            panic!("a body is an object")
        };
        CommandTemplate {
            app: "petstore".into(),
            doc: "product".into(),
            action: TemplateAction::Update,
            id: id.map(str::to_owned),
            body,
            roles: vec!["admin".into()],
        }
    }

    fn event() -> Value {
        json!({
            "id": "0190a0e2-0000-7000-8000-000000000001",
            "type": "petstore.product.updated",
            "document_id": "0190a0e2-0000-7000-8000-0000000000aa",
            "version": 3,
            "actor": {"sub": "alice", "roles": ["staff"]},
            "data": {"stock": 0, "dimensions": {"width": 4}},
            "tenant": "acme",
        })
    }

    #[test]
    fn templates_are_replaced_at_any_depth_with_their_json_value() {
        let update = template(
            Some("$event.document_id"),
            json!({
                "status": "retired",
                "stock": "$event.data.stock",
                "note": {"by": "$event.actor.sub", "tags": ["$event.tenant", "fixed"]},
                "width": "$event.data.dimensions.width",
                "text": "sold out: $event.data.stock",
            }),
        );
        let (id, body) = update.render(&event()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            id.map(|id| id.to_string()).as_deref(),
            Some("0190a0e2-0000-7000-8000-0000000000aa")
        );
        assert_eq!(
            Value::Object(body),
            json!({
                "status": "retired",
                "stock": 0,
                "note": {"by": "alice", "tags": ["acme", "fixed"]},
                "width": 4,
                "text": "sold out: $event.data.stock",
            })
        );
    }

    #[test]
    fn a_path_missing_from_the_event_or_an_id_that_is_no_uuid_fails_the_render() {
        let missing = template(None, json!({"price": "$event.data.price"}));
        assert_eq!(
            missing.render(&event()),
            Err("$event.data.price: the event has no `data.price`".to_owned())
        );
        let not_uuid = template(Some("$event.version"), json!({}));
        assert_eq!(
            not_uuid.render(&event()),
            Err("`id`: $event.version is 3, not a UUID".to_owned())
        );
        let literal = template(Some("0190a0e2-0000-7000-8000-0000000000bb"), json!({}));
        assert!(matches!(literal.render(&event()), Ok((Some(_), _))));
        let create = template(None, json!({}));
        assert_eq!(create.render(&event()), Ok((None, Map::new())));
    }

    #[test]
    fn template_paths_start_with_a_key_of_the_event() {
        assert_eq!(template_problem("$event.data.stock"), None);
        assert_eq!(template_problem("$event.tenant"), None);
        assert!(template_problem("$event.stream").is_some());
        assert!(template_problem("$event.data..x").is_some());
        assert!(template_problem("$event").is_some());
        assert!(is_template("$event") && is_template("$event.nope"));
        assert!(!is_template("$events.x") && !is_template("cost: $event.data"));
    }
}
