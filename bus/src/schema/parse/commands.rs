//! A document's `commands`: business actions with their params, who may run them, what they act
//! on (a document, or the collection), the guard the document must pass, and the event they
//! append with the fields it sets.

use indexmap::IndexMap;
use saphyr::{MarkedYaml, YamlData};
use serde_json::Value;

use super::Parser;
use super::keys::Place;
use crate::document::VERBS;
use crate::ids::is_name;
use crate::schema::model::{AclAction, CommandDecl, DocumentSchema, On, Reject, SetValue};
use crate::schema::yaml::scalar_str;

/// Words a command cannot be named: the built-in actions, the routes beside a document's
/// (`/v1/{app}/{doc}/{id}/restore`, `/history`, `/events`) and the verbs of the operations'
/// names (`get_product`, `list_products`).
const RESERVED: [&str; 10] = [
    "create", "read", "get", "list", "update", "delete", "restore", "archive", "history", "events",
];

const COMMAND_KEYS: &str = "description, on, acl, kind, params, emits, when, reject, set";

impl Parser<'_> {
    /// `commands:`, read once the fields are known, since guards and `set` name them.
    pub(super) fn commands(&mut self, node: &MarkedYaml<'_>, schema: &mut DocumentSchema) {
        let Some(entries) = self.entries(node, "`commands`") else {
            return;
        };
        for entry in entries {
            let name = entry.name;
            if !is_name(name) || RESERVED.contains(&name) {
                let message = format!(
                    "`commands`: `{name}` cannot name a command (a name matching \
                     ^[a-z][a-z0-9_]*$, other than {})",
                    RESERVED.join(", ")
                );
                self.error(entry.key, message);
                continue;
            }
            if let Some(command) = self.command(entry.value, name, schema) {
                schema.commands.insert(name.to_owned(), command);
            }
        }
    }

    fn command(
        &mut self,
        node: &MarkedYaml<'_>,
        name: &str,
        schema: &mut DocumentSchema,
    ) -> Option<CommandDecl> {
        let key = format!("`commands.{name}`");
        let entries = self.entries(node, &key)?;
        let mut command = CommandDecl {
            name: name.to_owned(),
            description: None,
            on: On::Document,
            params: IndexMap::new(),
            emits: Vec::new(),
            when: Vec::new(),
            reject: Reject {
                code: String::new(),
                detail: String::new(),
            },
            set: IndexMap::new(),
            rust: false,
            code: None,
        };
        let (mut when, mut reject, mut set, mut emits) = (None, None, None, None);
        let mut valid = true;
        // `on` first: whether `owner` means anything in the `acl` depends on it.
        if let Some(on) = entries.iter().find(|e| e.name == "on") {
            match self.string(on.value, &format!("{key}: `on`")).as_deref() {
                Some("document") => {}
                Some("collection") => command.on = On::Collection,
                _ => {
                    let message =
                        format!("{key}: `on`: expected `document` (the default) or `collection`");
                    self.error(on.value, message);
                    valid = false;
                }
            }
        }
        for entry in &entries {
            let key = format!("{key}: `{}`", entry.name);
            match entry.name {
                "description" => command.description = self.string(entry.value, &key),
                "on" => {}
                "acl" => {
                    let owner = command.on == On::Document;
                    valid &= self.command_acl(entry.value, name, &key, owner, schema);
                }
                "params" => {
                    let params = self.fields(
                        entry.value,
                        &format!("commands.{name}.params"),
                        Place::Param,
                    );
                    valid &= params.is_some();
                    command.params = params.unwrap_or_default();
                }
                "emits" => emits = Some(entry.value),
                "kind" => match self.string(entry.value, &key).as_deref() {
                    Some("rust") => command.rust = true,
                    Some("declared") => {}
                    _ => {
                        let message = format!("{key}: expected `declared` (the default) or `rust`");
                        self.error(entry.value, message);
                        valid = false;
                    }
                },
                "when" => when = Some(entry.value),
                "reject" => reject = Some(entry.value),
                "set" => set = Some(entry.value),
                other => {
                    let message = format!("{key}: unknown key `{other}` (expected {COMMAND_KEYS})");
                    self.error(entry.key, message);
                    valid = false;
                }
            }
        }
        match emits {
            Some(emits) => match self.emits(emits, &key, command.rust) {
                Some(verbs) => command.emits = verbs,
                None => valid = false,
            },
            None if valid => {
                self.error(node, format!("{key}: missing `emits`"));
                valid = false;
            }
            None => {}
        }
        if command.rust {
            // The code decides: rules in the YAML as well would be a second, silent truth.
            for node in [when, reject, set].into_iter().flatten() {
                let message = format!(
                    "{key}: a `kind: rust` command decides in its code; remove `when`, \
                     `reject` and `set`"
                );
                self.error(node, message);
                valid = false;
            }
            return valid.then_some(command);
        }
        if command.on == On::Collection
            && let Some(node) = when.or(reject)
        {
            let message = format!(
                "{key}: a command `on: collection` creates its document, so there is no \
                 document for `when` to guard; remove `when` and `reject`"
            );
            self.error(node, message);
            return None;
        }
        match (when, reject) {
            (Some(when), Some(reject)) => {
                command.when = self.when(when, schema, &key);
                match self.reject(reject, &key) {
                    Some(parsed) => command.reject = parsed,
                    None => valid = false,
                }
            }
            (Some(when), None) => {
                let message =
                    format!("{key}: `when` needs `reject`: the code and detail to refuse with");
                self.error(when, message);
                valid = false;
            }
            (None, Some(reject)) => {
                let message = format!("{key}: `reject` needs `when`: the conditions it answers");
                self.error(reject, message);
                valid = false;
            }
            (None, None) => {}
        }
        if let Some(set) = set {
            command.set = self.set(set, &key, &command, schema)?;
        }
        if valid && command.on == On::Collection {
            valid = self.creates_whole(node, &key, &command, schema);
        }
        valid.then_some(command)
    }

    /// A declared command on the collection creates its document from its `set`: every required
    /// field without a default must come from a literal or a required param.
    fn creates_whole(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        command: &CommandDecl,
        schema: &DocumentSchema,
    ) -> bool {
        let missing: Vec<&str> = schema
            .fields
            .iter()
            .filter(|(_, field)| field.required && field.default.is_none())
            .filter(|(name, _)| match command.set.get(*name) {
                Some(SetValue::Literal(_)) => false,
                Some(SetValue::Param(param)) => {
                    !command.params.get(param).is_some_and(|p| p.required)
                }
                None => true,
            })
            .map(|(name, _)| name.as_str())
            .collect();
        if missing.is_empty() {
            return true;
        }
        let message = format!(
            "{key}: a command `on: collection` creates its document, so `set` must give every \
             required field from a literal or a required param; it does not give {}",
            missing.join(", ")
        );
        self.error(node, message);
        false
    }

    /// `emits`: the verb of the event, or for a `kind: rust` command a list of the verbs its
    /// code may choose from.
    fn emits(&mut self, node: &MarkedYaml<'_>, key: &str, rust: bool) -> Option<Vec<String>> {
        let key = format!("{key}: `emits`");
        let nodes: Vec<&MarkedYaml<'_>> = match &node.data {
            YamlData::Sequence(items) if rust && !items.is_empty() => items.iter().collect(),
            YamlData::Sequence(_) if !rust => {
                let message = format!(
                    "{key}: a declared command appends one event; name one verb (a `kind: \
                     rust` command may list several)"
                );
                self.error(node, message);
                return None;
            }
            _ => vec![node],
        };
        let mut verbs: Vec<String> = Vec::new();
        for node in nodes {
            match scalar_str(node) {
                Some(verb)
                    if is_name(verb)
                        && !VERBS.contains(&verb)
                        && !verbs.iter().any(|v| v == verb) =>
                {
                    verbs.push(verb.to_owned());
                }
                _ => {
                    let message = format!(
                        "{key}: expected the verb of the event, in the past tense, matching \
                         ^[a-z][a-z0-9_]*$, other than {} and named once",
                        VERBS.join(", ")
                    );
                    self.error(node, message);
                    return None;
                }
            }
        }
        Some(verbs)
    }

    /// A command's own `acl`: the roles that may run it, kept with the document's rights.
    fn command_acl(
        &mut self,
        node: &MarkedYaml<'_>,
        name: &str,
        key: &str,
        owner: bool,
        schema: &mut DocumentSchema,
    ) -> bool {
        let action = AclAction::Command(name.to_owned());
        if schema.acl.actions.contains_key(&action) {
            let message = format!("{key}: the document's `acl.{name}` already says who may run it");
            self.error(node, message);
            return false;
        }
        match self.roles(node, key, owner) {
            Some(roles) => {
                schema.acl.actions.insert(action, roles);
                true
            }
            None => false,
        }
    }

    /// `reject: {code, detail}`.
    fn reject(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<Reject> {
        let key = format!("{key}: `reject`");
        let entries = self.entries(node, &key)?;
        let (mut code, mut detail) = (None, None);
        for entry in entries {
            match entry.name {
                "code" => code = self.string(entry.value, &format!("{key}: `code`")),
                "detail" => detail = self.string(entry.value, &format!("{key}: `detail`")),
                other => {
                    let message = format!("{key}: unknown key `{other}` (expected code, detail)");
                    self.error(entry.key, message);
                    return None;
                }
            }
        }
        match (code, detail) {
            (Some(code), Some(detail)) if is_name(&code) => Some(Reject { code, detail }),
            _ => {
                let message =
                    format!("{key}: expected a `code` matching ^[a-z][a-z0-9_]*$ and a `detail`");
                self.error(node, message);
                None
            }
        }
    }

    /// `set`: each top-level field the event sets, to a literal of its type or `{param: name}`.
    fn set(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        command: &CommandDecl,
        schema: &DocumentSchema,
    ) -> Option<IndexMap<String, SetValue>> {
        let key = format!("{key}: `set`");
        let entries = self.entries(node, &key)?;
        let mut set = IndexMap::new();
        let mut valid = true;
        for entry in entries {
            let field_key = format!("{key}: `{}`", entry.name);
            let Some(field) = schema.fields.get(entry.name) else {
                let message = format!(
                    "{field_key}: `{}` has no top-level field `{}`",
                    schema.collection(),
                    entry.name
                );
                self.error(entry.key, message);
                valid = false;
                continue;
            };
            let value = match &entry.value.data {
                YamlData::Mapping(_) => self.param_reference(entry.value, &field_key, command),
                YamlData::Value(saphyr::Scalar::Null) if field.nullable || !field.required => {
                    Some(SetValue::Literal(Value::Null))
                }
                _ => self
                    .field_value(entry.value, &field_key, field, true)
                    .map(SetValue::Literal),
            };
            match value {
                Some(value) => {
                    set.insert(entry.name.to_owned(), value);
                }
                None => valid = false,
            }
        }
        valid.then_some(set)
    }

    /// `{param: name}`, naming one of the command's params.
    fn param_reference(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        command: &CommandDecl,
    ) -> Option<SetValue> {
        let entries = self.entries(node, key)?;
        match entries.as_slice() {
            [entry] if entry.name == "param" => {
                let param = self.string(entry.value, &format!("{key}: `param`"))?;
                if command.params.contains_key(&param) {
                    Some(SetValue::Param(param))
                } else {
                    let message = format!("{key}: `{}` has no param `{param}`", command.name);
                    self.error(entry.value, message);
                    None
                }
            }
            _ => {
                let message =
                    format!("{key}: expected a value of the field's type, or {{param: <name>}}");
                self.error(node, message);
                None
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::super::tests::{errors, only};
    use crate::schema::model::{AclAction, SetValue};
    use crate::schema::{Registry, Role, RoleSet};

    const FIELDS: &str = "fields:
  status: {type: string, enum: [draft, live], default: draft}
  note: {type: string, max: 10}
";

    #[test]
    fn a_declared_command_has_its_params_guard_event_and_rights() {
        let yaml = format!(
            "{FIELDS}commands:
  launch:
    description: Go live
    acl: [staff, owner]
    params:
      note: {{type: string, required: true}}
    emits: launched
    when: {{status: draft}}
    reject: {{code: not_draft, detail: Only drafts go live}}
    set: {{status: live, note: {{param: note}}}}
"
        );
        let registry = Registry::from_sources(&[("shop", "item", &yaml)]).unwrap();
        let item = registry.get("shop", "item").unwrap();
        let launch = &item.commands["launch"];
        assert_eq!(launch.emits, ["launched"]);
        assert!(launch.params["note"].required);
        assert_eq!(launch.reject.code, "not_draft");
        assert_eq!(launch.when.len(), 1);
        assert_eq!(launch.set["status"], SetValue::Literal(json!("live")));
        assert_eq!(launch.set["note"], SetValue::Param("note".into()));
        assert_eq!(
            item.acl.roles(&AclAction::Command("launch".into())),
            Some(&RoleSet(vec![Role::Staff, Role::Owner]))
        );
        let types: Vec<String> = item.event_types().iter().map(ToString::to_string).collect();
        assert!(
            types.contains(&"shop.item.launched".to_owned()),
            "{types:?}"
        );
    }

    #[test]
    fn command_mistakes_are_reported_at_their_node() {
        let cases = [
            (
                "commands:\n  update: {emits: changed}\n",
                (5, 3),
                "`commands`: `update` cannot name a command",
            ),
            (
                "commands:\n  launch: {acl: staff}\n",
                (5, 11),
                "`commands.launch`: missing `emits`",
            ),
            (
                "commands:\n  launch: {emits: created}\n",
                (5, 19),
                "`commands.launch`: `emits`: expected the verb of the event",
            ),
            (
                "commands:\n  launch: {emits: launched, when: {status: draft}}\n",
                (5, 35),
                "`commands.launch`: `when` needs `reject`",
            ),
            (
                "commands:\n  launch: {emits: launched, set: {colour: red}}\n",
                (5, 35),
                "`commands.launch`: `set`: `colour`: `shop.item` has no top-level field `colour`",
            ),
            (
                "commands:\n  launch: {emits: launched, set: {status: gone}}\n",
                (5, 43),
                "`commands.launch`: `set`: `status`: is not one of",
            ),
            (
                "commands:\n  launch: {emits: launched, set: {note: {param: why}}}\n",
                (5, 49),
                "`commands.launch`: `set`: `note`: `launch` has no param `why`",
            ),
            (
                "commands:\n  launch: {emits: launched, params: {why: {type: string, unique: true}}}\n",
                (5, 58),
                "field `commands.launch.params.why`: `unique` does not apply to command params",
            ),
            (
                "commands:\n  launch: {emits: [launched, lifted]}\n",
                (5, 19),
                "`commands.launch`: `emits`: a declared command appends one event",
            ),
            (
                "commands:\n  launch: {kind: rust, emits: [launched, launched]}\n",
                (5, 42),
                "`commands.launch`: `emits`: expected the verb of the event",
            ),
            (
                "commands:\n  launch: {on: table, emits: launched}\n",
                (5, 16),
                "`commands.launch`: `on`: expected `document` (the default) or `collection`",
            ),
            (
                "commands:\n  launch: {on: collection, acl: owner, emits: launched}\n",
                (5, 33),
                "`commands.launch`: `acl`: `owner` is meaningless here",
            ),
            (
                "commands:\n  launch: {on: collection, emits: launched, when: {status: draft}, reject: {code: a, detail: b}}\n",
                (5, 51),
                "`commands.launch`: a command `on: collection` creates its document",
            ),
        ];
        for (commands, at, start) in cases {
            let (line, column, message) = only(&format!("{FIELDS}{commands}"));
            assert!(message.starts_with(start), "{message}");
            assert_eq!((line, column), at, "{message}");
        }
        let partial = "fields:\n  title: {type: string, required: true}\ncommands:\n  \
                       open: {on: collection, emits: opened, params: {t: {type: string}}, set: {title: {param: t}}}\n";
        let (line, column, message) = only(partial);
        assert!(
            message.ends_with("from a literal or a required param; it does not give title"),
            "{message}"
        );
        assert_eq!((line, column), (4, 9));
        let both = format!(
            "{FIELDS}acl: {{launch: staff}}\ncommands:\n  launch: {{emits: launched, acl: user}}\n"
        );
        let found = errors(&both);
        assert!(
            found[0].message.contains("already says who may run it"),
            "{found:?}"
        );
    }
}
