//! The `command` of a command task: its target collection, action, id, body and roles.

use herald_bus::schema::format::format_problem;
use herald_bus::schema::model::{DocumentSchema, FieldKind, Role};
use herald_bus::schema::yaml::scalar_str;
use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use super::Parser;
use crate::declare::template::{is_template, template_problem};
use crate::declare::{CommandTemplate, TemplateAction};

impl Parser<'_> {
    /// The `command` mapping of a command task.
    pub(super) fn command(
        &mut self,
        node: &MarkedYaml<'_>,
        task: &MarkedYaml<'_>,
        what: &str,
    ) -> Option<CommandTemplate> {
        let entries = self.entries(node, &format!("{what}: `command`"))?;
        let before = self.errors.len();
        let mut target = None;
        let mut action = None;
        let mut id = None;
        let mut body = None;
        let mut roles = vec!["admin".to_owned()];
        for entry in &entries {
            let key = format!("{what}: `command.{}`", entry.name);
            match entry.name {
                "target" => {
                    target = self.string(entry.value, &key).and_then(|collection| {
                        let schema = self.document(entry.value, &key, &collection)?;
                        let (app, doc) = collection.split_once('.')?;
                        Some((app.to_owned(), doc.to_owned(), schema))
                    });
                }
                "action" => {
                    action = self.string(entry.value, &key).and_then(|name| {
                        let action = TemplateAction::parse(&name);
                        if action.is_none() {
                            let message = format!(
                                "{key}: unknown action `{name}` (expected {})",
                                TemplateAction::NAMES.join(", ")
                            );
                            self.error(entry.value, message);
                        }
                        action
                    });
                }
                "id" => id = self.id(entry.value, &key),
                "body" => body = Some(entry),
                "roles" => roles = self.roles(entry.value, &key).unwrap_or_default(),
                other => {
                    let message = format!(
                        "{what}: `command`: unknown key `{other}` (expected target, action, id, \
                         body, roles)"
                    );
                    self.error(entry.key, message);
                }
            }
        }
        let has = |name: &str| entries.iter().any(|entry| entry.name == name);
        for name in ["target", "action"] {
            if !has(name) {
                self.error(task, format!("{what}: missing `command.{name}`"));
            }
        }
        let action = action?;
        if action != TemplateAction::Create && !has("id") {
            let message = format!("{what}: `command.id` is required for `{}`", action.as_str());
            self.error(task, message);
        }
        let body = match (body, action.has_body()) {
            (Some(entry), true) => {
                let schema = target.as_ref().and_then(|(_, _, schema)| *schema);
                self.body(entry.value, schema, what)
            }
            (Some(entry), false) => {
                let message = format!(
                    "{what}: `command.body` does not apply to `{}`",
                    action.as_str()
                );
                self.error(entry.key, message);
                None
            }
            (None, true) => {
                let message = format!(
                    "{what}: `command.body` is required for `{}`",
                    action.as_str()
                );
                self.error(task, message);
                None
            }
            (None, false) => Some(Map::new()),
        };
        let (app, doc, _) = target?;
        let template = CommandTemplate {
            app,
            doc,
            action,
            id,
            body: body?,
            roles,
        };
        (self.errors.len() == before).then_some(template)
    }

    /// `command.id`: a literal UUID or a template.
    fn id(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<String> {
        let id = self.string(node, key)?;
        let problem = if is_template(&id) {
            template_problem(&id)
        } else {
            format_problem(&FieldKind::Uuid, &id)
                .map(|_| "must be a UUID or a template $event.<path>".to_owned())
        };
        if let Some(problem) = problem {
            self.error(node, format!("{key}: {problem}"));
            return None;
        }
        Some(id)
    }

    /// `command.body`: a mapping whose top-level keys are fields of the target (when it parsed)
    /// and whose values are any YAML, templates checked.
    fn body(
        &mut self,
        node: &MarkedYaml<'_>,
        target: Option<&DocumentSchema>,
        what: &str,
    ) -> Option<Map<String, Value>> {
        let entries = self.entries(node, &format!("{what}: `command.body`"))?;
        let mut body = Map::new();
        let mut valid = true;
        for entry in entries {
            let key = format!("{what}: `command.body.{}`", entry.name);
            if let Some(schema) = target
                && !schema.fields.contains_key(entry.name)
            {
                let message = format!(
                    "{key}: `{}` has no field `{}`",
                    schema.collection(),
                    entry.name
                );
                self.error(entry.key, message);
                valid = false;
                continue;
            }
            match self.json(entry.value, &key) {
                Some(value) => {
                    body.insert(entry.name.to_owned(), value);
                }
                None => valid = false,
            }
        }
        valid.then_some(body)
    }

    /// A body value as JSON, every string that looks like a template checked.
    fn json(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<Value> {
        match &node.data {
            YamlData::Value(Scalar::Null) => Some(Value::Null),
            YamlData::Value(Scalar::Boolean(b)) => Some(Value::Bool(*b)),
            YamlData::Value(Scalar::Integer(n)) => Some(Value::from(*n)),
            YamlData::Value(Scalar::FloatingPoint(n)) => {
                let number = Number::from_f64(n.0);
                if number.is_none() {
                    self.error(node, format!("{key}: must be a finite number"));
                }
                number.map(Value::Number)
            }
            YamlData::Value(Scalar::String(s)) => {
                if is_template(s)
                    && let Some(problem) = template_problem(s)
                {
                    self.error(node, format!("{key}: {problem}"));
                    return None;
                }
                Some(Value::String(s.to_string()))
            }
            YamlData::Sequence(items) => {
                let values: Vec<Option<Value>> =
                    items.iter().map(|item| self.json(item, key)).collect();
                values.into_iter().collect::<Option<_>>().map(Value::Array)
            }
            YamlData::Mapping(_) => {
                let entries = self.entries(node, key)?;
                let mut object = Map::new();
                let mut valid = true;
                for entry in entries {
                    match self.json(entry.value, key) {
                        Some(value) => {
                            object.insert(entry.name.to_owned(), value);
                        }
                        None => valid = false,
                    }
                }
                valid.then_some(Value::Object(object))
            }
            _ => {
                let message = format!("{key}: unsupported YAML value (tags are not allowed)");
                self.error(node, message);
                None
            }
        }
    }

    /// `command.roles`: a role or a list of roles a token can carry.
    fn roles(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<Vec<String>> {
        let nodes: Vec<&MarkedYaml<'_>> = match &node.data {
            YamlData::Sequence(items) => items.iter().collect(),
            _ => vec![node],
        };
        if nodes.is_empty() {
            self.error(node, format!("{key}: expected at least one role"));
            return None;
        }
        let mut roles = Vec::with_capacity(nodes.len());
        for role_node in nodes {
            match scalar_str(role_node).and_then(Role::parse) {
                // These describe a caller, not a claim a token holds, so the actor cannot hold
                // them.
                Some(role @ (Role::Public | Role::User | Role::Owner)) => {
                    let message = format!(
                        "{key}: `{}` is not a role a token carries (use staff, admin or a custom role)",
                        role.as_str()
                    );
                    self.error(role_node, message);
                }
                Some(role) => roles.push(role.as_str().to_owned()),
                None => {
                    let message = format!(
                        "{key}: expected a role (staff, admin or a custom role matching \
                         ^[a-z][a-z0-9_-]*$) or a list of roles"
                    );
                    self.error(role_node, message);
                }
            }
        }
        Some(roles)
    }
}
