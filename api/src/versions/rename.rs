//! Field and command names between one version of a document and its declaration: requests
//! are turned into the declared names, answers into the version's.

use std::collections::{BTreeMap, BTreeSet};

use herald_bus::schema::versions::DocumentVersion;
use serde_json::{Map, Value};

/// The names one document uses in one version.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Declared field → this version's name; only fields with another name.
    to_version: BTreeMap<String, String>,
    /// This version's name → declared field; only fields with another name.
    to_declared: BTreeMap<String, String>,
    /// Declared names a client of this version may not use: dropped fields, and the declared
    /// names of renamed ones.
    hidden: BTreeSet<String>,
    /// Declared fields this version does not show.
    dropped: BTreeSet<String>,
    commands_to_declared: BTreeMap<String, String>,
    /// Declared names of commands this version does not offer under that name.
    hidden_commands: BTreeSet<String>,
}

impl Names {
    pub fn of(version: &DocumentVersion) -> Self {
        let to_version = version.rename.clone();
        let to_declared = to_version
            .iter()
            .map(|(declared, shown)| (shown.clone(), declared.clone()))
            .collect();
        let renamed = to_version
            .keys()
            .filter(|declared| !version.rename.values().any(|shown| shown == *declared));
        let hidden = version.drop.iter().chain(renamed).cloned().collect();
        let commands_to_declared = version
            .rename_commands
            .iter()
            .map(|(declared, shown)| (shown.clone(), declared.clone()))
            .collect();
        let renamed_commands = version.rename_commands.keys().filter(|declared| {
            !version
                .rename_commands
                .values()
                .any(|shown| shown == *declared)
        });
        let hidden_commands = version
            .drop_commands
            .iter()
            .chain(renamed_commands)
            .cloned()
            .collect();
        Self {
            to_version,
            to_declared,
            hidden,
            dropped: version.drop.clone(),
            commands_to_declared,
            hidden_commands,
        }
    }

    /// Whether the version shows the document exactly as declared.
    pub fn is_identity(&self) -> bool {
        self.to_version.is_empty() && self.dropped.is_empty() && self.hidden_commands.is_empty()
    }

    /// The declared name of the version's field `name`; `None` when the version has no field
    /// of that name but the declaration does (a client of this version may not use it).
    pub fn declared_field<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        match self.to_declared.get(name) {
            Some(declared) => Some(declared),
            None if self.hidden.contains(name) => None,
            None => Some(name),
        }
    }

    /// The version's name of the declared field `name`, `None` when the version drops it.
    pub fn version_field<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if self.dropped.contains(name) {
            return None;
        }
        Some(self.to_version.get(name).map_or(name, String::as_str))
    }

    /// The declared name of the version's command `name`, `None` when the version has no
    /// command of that name.
    pub fn declared_command<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        match self.commands_to_declared.get(name) {
            Some(declared) => Some(declared),
            None if self.hidden_commands.contains(name) => None,
            None => Some(name),
        }
    }

    /// A request body (or a patch) in declared names; `Err` with the first name this version
    /// does not have.
    pub fn body_to_declared(&self, body: Map<String, Value>) -> Result<Map<String, Value>, String> {
        body.into_iter()
            .map(|(name, value)| match self.declared_field(&name) {
                Some(declared) => Ok((declared.to_owned(), value)),
                None => Err(name),
            })
            .collect()
    }

    /// A document's fields (or an event's data, or a history entry's changes) in this version's
    /// names, without what it drops. Keys that are no field (`id`, `version`…) stay.
    pub fn fields_to_version(&self, fields: &mut Map<String, Value>) {
        if self.to_version.is_empty() && self.dropped.is_empty() {
            return;
        }
        let taken = std::mem::take(fields);
        for (name, value) in taken {
            if let Some(shown) = self.version_field(&name) {
                fields.insert(shown.to_owned(), value);
            }
        }
    }

    /// A field path (`dimensions.width`) whose first segment is in the version's names, in
    /// declared names; `None` when the version has no such field.
    pub fn path_to_declared(&self, path: &str) -> Option<String> {
        let (head, rest) = path
            .split_once('.')
            .map_or((path, None), |(h, r)| (h, Some(r)));
        let declared = self.declared_field(head)?;
        Some(rest.map_or_else(|| declared.to_owned(), |rest| format!("{declared}.{rest}")))
    }

    /// A declared field path in the version's names (unchanged when the field is dropped,
    /// which no answer to this version names anyway).
    pub fn path_to_version(&self, path: &str) -> String {
        let (head, rest) = path
            .split_once('.')
            .map_or((path, None), |(h, r)| (h, Some(r)));
        let shown = self.version_field(head).unwrap_or(head);
        rest.map_or_else(|| shown.to_owned(), |rest| format!("{shown}.{rest}"))
    }

    /// A JSON pointer (`/name/0`) from a declared-name error, in the version's names.
    pub fn pointer_to_version(&self, pointer: &str) -> String {
        let Some(rest) = pointer.strip_prefix('/') else {
            return pointer.to_owned();
        };
        let (head, tail) = rest
            .split_once('/')
            .map_or((rest, None), |(h, t)| (h, Some(t)));
        let shown = self.version_field(head).unwrap_or(head);
        tail.map_or_else(|| format!("/{shown}"), |tail| format!("/{shown}/{tail}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use herald_bus::schema::versions::DocumentVersion;
    use serde_json::{Value, json};

    use super::Names;

    fn names() -> Names {
        Names::of(&DocumentVersion {
            rename: BTreeMap::from([("name".into(), "title".into())]),
            drop: BTreeSet::from(["cost".into()]),
            rename_commands: BTreeMap::from([("publish".into(), "release".into())]),
            drop_commands: BTreeSet::from(["restock".into()]),
        })
    }

    fn object(value: Value) -> serde_json::Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn requests_are_turned_into_declared_names_and_answers_back() {
        let names = names();
        assert_eq!(
            names.body_to_declared(object(json!({"title": "Kite", "price": 3}))),
            Ok(object(json!({"name": "Kite", "price": 3})))
        );
        assert_eq!(
            names.body_to_declared(object(json!({"name": "Kite"}))),
            Err("name".to_owned()),
            "the declared name of a renamed field is not this version's"
        );
        assert_eq!(
            names.body_to_declared(object(json!({"cost": 1}))),
            Err("cost".to_owned())
        );
        let mut document = object(json!({"id": "x", "name": "Kite", "cost": 2, "price": 3}));
        names.fields_to_version(&mut document);
        assert_eq!(
            document,
            object(json!({"id": "x", "title": "Kite", "price": 3}))
        );
        assert_eq!(names.path_to_declared("title"), Some("name".to_owned()));
        assert_eq!(
            names.path_to_declared("dimensions.width").as_deref(),
            Some("dimensions.width")
        );
        assert_eq!(names.path_to_declared("cost"), None);
        assert_eq!(names.pointer_to_version("/name"), "/title");
        assert_eq!(names.pointer_to_version("/tags/0"), "/tags/0");
        assert_eq!(names.declared_command("release"), Some("publish"));
        assert_eq!(names.declared_command("publish"), None);
        assert_eq!(names.declared_command("restock"), None);
        assert_eq!(names.declared_command("archive"), Some("archive"));
    }

    #[test]
    fn swapped_names_stay_apart() {
        let names = Names::of(&DocumentVersion {
            rename: BTreeMap::from([("a".into(), "b".into()), ("b".into(), "a".into())]),
            ..DocumentVersion::default()
        });
        assert_eq!(
            names.body_to_declared(object(json!({"a": 1, "b": 2}))),
            Ok(object(json!({"b": 1, "a": 2})))
        );
        let mut document = object(json!({"a": 1, "b": 2}));
        names.fields_to_version(&mut document);
        assert_eq!(document, object(json!({"b": 1, "a": 2})));
    }
}
