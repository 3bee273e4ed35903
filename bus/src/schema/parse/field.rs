//! Field specs: a field's type, the keys that apply to it, and the checks that need the whole
//! spec (bounds in order, `enum` and `default` values that pass the field itself).

use saphyr::{MarkedYaml, YamlData};
use serde_json::Value;

use super::keys::{Place, key_problem};
use super::values::has_key;
use super::{Parser, RefSite};
use crate::ids::is_name;
use crate::schema::error::LoadError;
use crate::schema::model::{Field, FieldKind, Fields, MANAGED_FIELDS};
use crate::schema::validate::{FieldError, check_field_value};
use crate::schema::yaml::{Entry, scalar_str};

/// A field spec as read so far: the parts whose checks need the whole spec keep their node,
/// so errors point at them.
struct Spec<'n, 'i> {
    /// Every plain property; the kind is set once the type's parts are read.
    field: Field,
    nested: Option<Fields>,
    items: Option<Field>,
    target: Option<(String, String)>,
    min: Option<(&'n MarkedYaml<'i>, f64)>,
    max: Option<(&'n MarkedYaml<'i>, f64)>,
    min_items: Option<(&'n MarkedYaml<'i>, usize)>,
    max_items: Option<(&'n MarkedYaml<'i>, usize)>,
    enum_values: Vec<(&'n MarkedYaml<'i>, Value)>,
    default: Option<&'n MarkedYaml<'i>>,
    read_only: Option<&'n MarkedYaml<'i>>,
}

impl Default for Spec<'_, '_> {
    fn default() -> Self {
        Spec {
            field: Field::new(FieldKind::String),
            nested: None,
            items: None,
            target: None,
            min: None,
            max: None,
            min_items: None,
            max_items: None,
            enum_values: Vec::new(),
            default: None,
            read_only: None,
        }
    }
}

impl Parser<'_> {
    /// The fields of a document or of an `object` field; `parent` is the dotted path of the
    /// object (empty at the top).
    pub(super) fn fields(
        &mut self,
        node: &MarkedYaml<'_>,
        parent: &str,
        place: Place,
    ) -> Option<Fields> {
        let what = if parent.is_empty() {
            "`fields`".to_owned()
        } else {
            format!("field `{parent}`: `fields`")
        };
        let entries = self.entries(node, &what)?;
        if entries.is_empty() {
            self.error(node, format!("{what} must declare at least one field"));
            return None;
        }
        let mut fields = Fields::new();
        for entry in entries {
            let path = if parent.is_empty() {
                entry.name.to_owned()
            } else {
                format!("{parent}.{}", entry.name)
            };
            if !is_name(entry.name) {
                let message = format!("invalid field name `{path}`: must match ^[a-z][a-z0-9_]*$");
                self.error(entry.key, message);
                continue;
            }
            if place == Place::Top && MANAGED_FIELDS.contains(&entry.name) {
                let message = format!("field name `{path}` is reserved: the server sets it");
                self.error(entry.key, message);
                continue;
            }
            if let Some(field) = self.field(entry.value, &path, place) {
                fields.insert(entry.name.to_owned(), field);
            }
        }
        Some(fields)
    }

    /// One field spec; `path` names it in messages (`dimensions.width`, `tags[]`).
    fn field(&mut self, node: &MarkedYaml<'_>, path: &str, place: Place) -> Option<Field> {
        let entries = self.entries(node, &format!("field `{path}`"))?;
        let type_name = if let Some(entry) = entries.iter().find(|entry| entry.name == "type") {
            self.type_name(entry.value, path)
        } else {
            self.error(node, format!("field `{path}`: missing `type`"));
            None
        };
        if type_name == Some("password") && place != Place::Top {
            // The api hashes the top-level fields of a write; a password anywhere else would
            // travel and be stored in clear.
            let message = format!("field `{path}`: a `password` must be a top-level field");
            self.error(node, message);
        }
        let mut spec = Spec::default();
        for entry in entries.iter().filter(|entry| entry.name != "type") {
            match key_problem(entry.name, type_name, place) {
                Some(problem) => self.error(entry.key, format!("field `{path}`: {problem}")),
                None => self.read_key(&mut spec, entry, path, type_name),
            }
        }
        let kind = match type_name? {
            "string" => FieldKind::String,
            "integer" => FieldKind::Integer,
            "number" => FieldKind::Number,
            "boolean" => FieldKind::Boolean,
            "datetime" => FieldKind::Datetime,
            "date" => FieldKind::Date,
            "uuid" => FieldKind::Uuid,
            "email" => FieldKind::Email,
            "url" => FieldKind::Url,
            "password" => FieldKind::Password,
            "object" => {
                FieldKind::Object(self.needed(node, path, "object", "fields", spec.nested)?)
            }
            "array" => FieldKind::Array(Box::new(
                self.needed(node, path, "array", "items", spec.items)?,
            )),
            _ => {
                let (app, doc) = self.needed(node, path, "ref", "to", spec.target)?;
                FieldKind::Ref { app, doc }
            }
        };
        let mut field = spec.field;
        field.kind = kind;
        self.check_order(path, ("min", "max"), spec.min, spec.max);
        self.check_order(
            path,
            ("min_items", "max_items"),
            spec.min_items,
            spec.max_items,
        );
        field.min = spec.min.map(|(_, n)| n);
        field.max = spec.max.map(|(_, n)| n);
        field.min_items = spec.min_items.map(|(_, n)| n);
        field.max_items = spec.max_items.map(|(_, n)| n);
        self.check_enum(&mut field, path, &spec.enum_values);
        if let Some(node) = spec.default {
            self.check_default(&mut field, path, node);
        }
        if let Some(node) = spec.read_only
            && field.read_only
            && field.required
            && field.default.is_none()
        {
            let message = format!(
                "field `{path}`: a `read_only` field cannot be `required` without a `default`, \
                 since clients may not send it"
            );
            self.error(node, message);
        }
        Some(field)
    }

    /// Reads one key of a field spec (already known to apply to its type) into `spec`.
    fn read_key<'n, 'i>(
        &mut self,
        spec: &mut Spec<'n, 'i>,
        entry: &Entry<'n, 'i>,
        path: &str,
        type_name: Option<&str>,
    ) {
        let key = format!("field `{path}`: `{}`", entry.name);
        let node = entry.value;
        let field = &mut spec.field;
        match entry.name {
            "required" => field.required = self.boolean(node, &key).unwrap_or(false),
            "nullable" => field.nullable = self.boolean(node, &key).unwrap_or(false),
            "unique" => field.unique = self.boolean(node, &key).unwrap_or(false),
            "immutable" => field.immutable = self.boolean(node, &key).unwrap_or(false),
            "filter" => field.filter = self.boolean(node, &key).unwrap_or(false),
            "sort" => field.sort = self.boolean(node, &key).unwrap_or(false),
            "search" => field.search = self.boolean(node, &key).unwrap_or(false),
            "read_only" => {
                field.read_only = self.boolean(node, &key).unwrap_or(false);
                spec.read_only = Some(entry.key);
            }
            "pattern" => field.pattern = self.pattern(node, &key),
            "description" => field.description = self.string(node, &key),
            "acl" => field.acl = self.field_acl(node, path),
            "min" | "max" => {
                let numeric = matches!(type_name, Some("integer" | "number"));
                let bound = self.bound(node, &key, numeric).map(|n| (node, n));
                if entry.name == "min" {
                    spec.min = bound;
                } else {
                    spec.max = bound;
                }
            }
            "min_items" => spec.min_items = self.count(node, &key).map(|n| (node, n)),
            "max_items" => spec.max_items = self.count(node, &key).map(|n| (node, n)),
            "enum" => spec.enum_values = self.enum_values(node, &key),
            "default" => spec.default = Some(node),
            "fields" => spec.nested = self.fields(node, path, Place::Nested),
            "items" => spec.items = self.field(node, &format!("{path}[]"), Place::Item),
            "to" => spec.target = self.target(node, &key),
            // `key_problem` has already refused every other key.
            _ => {}
        }
    }

    /// Reports a lower bound above its upper bound, at the upper bound.
    fn check_order<T: PartialOrd + std::fmt::Display>(
        &mut self,
        path: &str,
        (low_key, high_key): (&str, &str),
        low: Option<(&MarkedYaml<'_>, T)>,
        high: Option<(&MarkedYaml<'_>, T)>,
    ) {
        if let (Some((_, low)), Some((node, high))) = (low, high)
            && low > high
        {
            let message = format!(
                "field `{path}`: `{low_key}` ({low}) is greater than `{high_key}` ({high})"
            );
            self.error(node, message);
        }
    }

    /// Reports a missing `fields` / `items` / `to` that the type needs (unless its value was
    /// present but invalid, which is already reported).
    fn needed<T>(
        &mut self,
        node: &MarkedYaml<'_>,
        path: &str,
        kind: &str,
        key: &str,
        value: Option<T>,
    ) -> Option<T> {
        if value.is_none() && !has_key(node, key) {
            self.error(node, format!("field `{path}`: type `{kind}` needs `{key}`"));
        }
        value
    }

    fn type_name(&mut self, node: &MarkedYaml<'_>, path: &str) -> Option<&'static str> {
        let Some(name) = scalar_str(node) else {
            self.error(node, format!("field `{path}`: `type` must be a string"));
            return None;
        };
        let found = FieldKind::NAMES
            .iter()
            .copied()
            .find(|known| *known == name);
        if found.is_none() {
            let message = format!(
                "field `{path}`: unknown type `{name}` (expected one of {})",
                FieldKind::NAMES.join(", ")
            );
            self.error(node, message);
        }
        found
    }

    fn enum_values<'n, 'i>(
        &mut self,
        node: &'n MarkedYaml<'i>,
        key: &str,
    ) -> Vec<(&'n MarkedYaml<'i>, Value)> {
        let values = match &node.data {
            YamlData::Sequence(values) if !values.is_empty() => values,
            _ => {
                self.error(node, format!("{key} must be a non-empty list"));
                return Vec::new();
            }
        };
        values
            .iter()
            .filter_map(|value| self.json(value, key).map(|json| (value, json)))
            .collect()
    }

    /// Compiles the pattern as written: anchoring is the author's choice, and the docs tell
    /// them to anchor.
    fn pattern(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<regex::Regex> {
        let Some(pattern) = scalar_str(node) else {
            self.error(node, format!("{key} must be a string"));
            return None;
        };
        match regex::Regex::new(pattern) {
            Ok(regex) => Some(regex),
            Err(e) => {
                // The regex error spans several lines with a caret diagram; its last line says
                // what is wrong.
                let text = e.to_string();
                let reason = text.lines().last().unwrap_or_default().trim().to_owned();
                let reason = reason.strip_prefix("error: ").unwrap_or(&reason).to_owned();
                self.error(
                    node,
                    format!("{key} is not a valid regular expression: {reason}"),
                );
                None
            }
        }
    }

    /// `to: <app>.<doc>`; whether the target exists is checked once every file is loaded.
    fn target(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<(String, String)> {
        let parts = scalar_str(node).and_then(|to| to.split_once('.'));
        let Some((app, doc)) = parts.filter(|(app, doc)| is_name(app) && is_name(doc)) else {
            self.error(node, format!("{key} must name a document as `<app>.<doc>`"));
            return None;
        };
        let message = format!("{key} names `{app}.{doc}`, which is not a declared document");
        self.refs.push(RefSite {
            app: app.to_owned(),
            doc: doc.to_owned(),
            missing: LoadError::at(self.file, node.span.start, message),
        });
        Some((app.to_owned(), doc.to_owned()))
    }

    /// Each `enum` value must itself be a valid value of the field (type, format, bounds).
    fn check_enum(&mut self, field: &mut Field, path: &str, nodes: &[(&MarkedYaml<'_>, Value)]) {
        if nodes.is_empty() {
            return;
        }
        let mut values = Vec::with_capacity(nodes.len());
        for (node, value) in nodes {
            if let Some(problem) = check_field_value(field, value).first() {
                let message = format!("field `{path}`: `enum` value {}", describe(problem));
                self.error(node, message);
            }
            values.push(value.clone());
        }
        field.enum_values = Some(values);
    }

    /// The default must pass the field's own validation, or every create relying on it would
    /// fail.
    fn check_default(&mut self, field: &mut Field, path: &str, node: &MarkedYaml<'_>) {
        let Some(value) = self.json(node, &format!("field `{path}`: `default`")) else {
            return;
        };
        for problem in check_field_value(field, &value) {
            let message = format!("field `{path}`: `default` {}", describe(&problem));
            self.error(node, message);
        }
        field.default = Some(value);
    }
}

/// A validation problem inside a `default` or `enum` value, as a message tail.
fn describe(problem: &FieldError) -> String {
    if problem.pointer.is_empty() {
        problem.detail.clone()
    } else {
        format!("at {}: {}", problem.pointer, problem.detail)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::super::tests::only;

    #[test]
    fn an_unknown_type_lists_the_known_ones() {
        let (line, column, message) = only("fields:\n  price:  {type: nubmer}\n");
        assert_eq!((line, column), (2, 18));
        assert_eq!(
            message,
            "field `price`: unknown type `nubmer` (expected one of string, integer, number, \
             boolean, datetime, date, uuid, email, url, password, object, array, ref)"
        );
    }

    #[test]
    fn unknown_keys_are_reported_at_the_key() {
        let (line, column, message) = only("fields: {a: {type: string}}\nacls: {}\n");
        assert_eq!((line, column), (2, 1));
        assert!(message.starts_with("unknown key `acls`"), "{message}");
        let (line, column, message) = only("fields:\n  a: {type: string, requird: true}\n");
        assert_eq!(
            (line, column, message.as_str()),
            (2, 21, "field `a`: unknown key `requird`")
        );
        let (_, _, message) = only("fields:\n  a: {type: string, acl: {reed: staff}}\n");
        assert_eq!(
            message,
            "field `a`: `acl`: unknown key `reed` (expected read, write)"
        );
    }

    #[test]
    fn wrong_value_types_and_missing_parts_are_errors() {
        let cases = [
            (
                "{type: string, required: yes}",
                "field `a`: `required` must be true or false",
            ),
            (
                "{type: string, max: -1}",
                "field `a`: `max` must be a whole number, 0 or more",
            ),
            (
                "{type: number, min: ten}",
                "field `a`: `min` must be a number",
            ),
            (
                "{type: number, min: 5, max: 2}",
                "field `a`: `min` (5) is greater than `max` (2)",
            ),
            ("{required: true}", "field `a`: missing `type`"),
            ("{type: object}", "field `a`: type `object` needs `fields`"),
            ("{type: array}", "field `a`: type `array` needs `items`"),
            (
                "{type: ref, to: customer}",
                "field `a`: `to` must name a document as `<app>.<doc>`",
            ),
            (
                "{type: string, enum: []}",
                "field `a`: `enum` must be a non-empty list",
            ),
            (
                "{type: integer, enum: [1, two]}",
                "field `a`: `enum` value must be an integer",
            ),
            (
                "{type: string, read_only: true, required: true}",
                "field `a`: a `read_only` field cannot be `required` without a `default`, since clients may not send it",
            ),
            ("string", "field `a` must be a mapping"),
        ];
        for (spec, expected) in cases {
            let (_, _, message) = only(&format!("fields:\n  a: {spec}\n"));
            assert_eq!(message, expected, "{spec}");
        }
    }

    #[test]
    fn a_bad_pattern_is_reported_at_the_pattern() {
        let (line, column, message) = only("fields:\n  sku: {type: string, pattern: \"^[A-Z\"}\n");
        assert_eq!((line, column), (2, 32));
        assert_eq!(
            message,
            "field `sku`: `pattern` is not a valid regular expression: unclosed character class"
        );
    }

    #[test]
    fn a_ref_to_an_undeclared_document_points_at_to() {
        let yaml = "fields:\n  owner: {type: ref, to: shop.customer}\n  seller:\n    type: ref\n    to: shop.vendor\n";
        let (line, column, message) = only(yaml);
        assert_eq!((line, column), (5, 9));
        assert_eq!(
            message,
            "field `seller`: `to` names `shop.vendor`, which is not a declared document"
        );
    }

    #[test]
    fn a_default_must_pass_its_own_field() {
        let (line, column, message) =
            only("fields:\n  stock: {type: integer, min: 0, default: -1}\n");
        assert_eq!((line, column), (2, 43));
        assert_eq!(message, "field `stock`: `default` must be at least 0");
        let (_, _, message) = only("fields:\n  s: {type: string, enum: [a, b], default: c}\n");
        assert_eq!(message, "field `s`: `default` is not one of a, b");
        let yaml = "fields:\n  d:\n    type: object\n    default: {w: x}\n    fields: {w: {type: number}}\n";
        let (line, _, message) = only(yaml);
        assert_eq!(line, 4);
        assert_eq!(message, "field `d`: `default` at /w: must be a number");
    }

    #[test]
    fn field_names_must_be_lowercase_and_not_managed() {
        let (line, column, message) =
            only("fields:\n  a: {type: string}\n  Price: {type: number}\n");
        assert_eq!((line, column), (3, 3));
        assert_eq!(
            message,
            "invalid field name `Price`: must match ^[a-z][a-z0-9_]*$"
        );
        let (_, _, message) = only("fields:\n  created_at: {type: datetime}\n");
        assert_eq!(
            message,
            "field name `created_at` is reserved: the server sets it"
        );
        let (_, _, message) = only("fields:\n  d: {type: object, fields: {Bad: {type: string}}}\n");
        assert_eq!(
            message,
            "invalid field name `d.Bad`: must match ^[a-z][a-z0-9_]*$"
        );
    }
}
