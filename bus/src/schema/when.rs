//! `when` in YAML: conditions on a document's fields, each with a value of the field's own type,
//! read for task triggers and command guards alike.

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Number, Value};

use super::condition::{Condition, ConditionOp};
use super::format::{expected, format_problem, has_type};
use super::model::{DocumentSchema, Field, FieldKind};
use super::query::field_path;
use super::validate::{display_value, same_value};
use super::yaml::Reader;

impl Reader<'_> {
    /// The `when` mapping: field path → value (meaning `eq`) or `{operator: value, …}`.
    pub fn when(
        &mut self,
        node: &MarkedYaml<'_>,
        schema: &DocumentSchema,
        what: &str,
    ) -> Vec<Condition> {
        let Some(entries) = self.entries(node, &format!("{what}: `when`")) else {
            return Vec::new();
        };
        let mut conditions = Vec::new();
        for entry in entries {
            let path = entry.name;
            let key = format!("{what}: `when.{path}`");
            let Some(field) =
                field_path(&schema.fields, path).and_then(|chain| chain.last().copied())
            else {
                let message = format!("{key}: `{}` has no field `{path}`", schema.collection());
                self.error(entry.key, message);
                continue;
            };
            if !matches!(entry.value.data, YamlData::Mapping(_)) {
                conditions.extend(self.condition(&key, path, field, ConditionOp::Eq, entry.value));
                continue;
            }
            let Some(ops) = self.entries(entry.value, &key) else {
                continue;
            };
            if ops.is_empty() {
                self.error(
                    entry.value,
                    format!("{key}: expected at least one operator"),
                );
            }
            for op in ops {
                let Some(parsed) = ConditionOp::parse(op.name) else {
                    let message = format!(
                        "{key}: unknown operator `{}` (expected {})",
                        op.name,
                        ConditionOp::NAMES.join(", ")
                    );
                    self.error(op.key, message);
                    continue;
                };
                let key = format!("{key}: `{}`", op.name);
                conditions.extend(self.condition(&key, path, field, parsed, op.value));
            }
        }
        conditions
    }

    /// One operator applied to `field`, with a value of the field's type.
    fn condition(
        &mut self,
        key: &str,
        path: &str,
        field: &Field,
        op: ConditionOp,
        node: &MarkedYaml<'_>,
    ) -> Option<Condition> {
        let condition = |value| Condition {
            path: path.to_owned(),
            op,
            value,
            datetime: matches!(field.kind, FieldKind::Datetime),
        };
        if op == ConditionOp::Exists {
            return self.boolean(node, key).map(|b| condition(Value::Bool(b)));
        }
        let kind = field.kind.name();
        if !field.is_scalar() {
            self.error(
                node,
                format!("{key}: only `exists` applies to {kind} fields"),
            );
            return None;
        }
        let ordered = matches!(
            field.kind,
            FieldKind::Integer
                | FieldKind::Number
                | FieldKind::Date
                | FieldKind::Datetime
                | FieldKind::String
        );
        if op.is_ordering() && !ordered {
            let message = format!(
                "{key}: does not apply to {kind} fields (only to integer, number, date, \
                 datetime and string fields)"
            );
            self.error(node, message);
            return None;
        }
        if op != ConditionOp::In {
            let check_enum = !op.is_ordering();
            return self
                .field_value(node, key, field, check_enum)
                .map(condition);
        }
        let items = match &node.data {
            YamlData::Sequence(items) if !items.is_empty() => items,
            _ => {
                self.error(node, format!("{key}: expected a non-empty list of values"));
                return None;
            }
        };
        let values: Vec<Option<Value>> = items
            .iter()
            .map(|item| self.field_value(item, key, field, true))
            .collect();
        let values: Option<Vec<Value>> = values.into_iter().collect();
        values.map(|values| condition(Value::Array(values)))
    }

    /// A scalar of `field`'s JSON type and format (and, with `check_enum`, one of its `enum`
    /// values: a condition no value can meet is a mistake).
    pub(crate) fn field_value(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        field: &Field,
        check_enum: bool,
    ) -> Option<Value> {
        let value = match &node.data {
            YamlData::Value(Scalar::Boolean(b)) => Some(Value::Bool(*b)),
            YamlData::Value(Scalar::Integer(n)) => Some(Value::from(*n)),
            YamlData::Value(Scalar::FloatingPoint(n)) => Number::from_f64(n.0).map(Value::Number),
            YamlData::Value(Scalar::String(s)) => Some(Value::String(s.to_string())),
            _ => None,
        };
        let Some(value) = value.filter(|value| has_type(&field.kind, value)) else {
            self.error(node, format!("{key}: {}", expected(&field.kind)));
            return None;
        };
        if let Some(problem) = value.as_str().and_then(|s| format_problem(&field.kind, s)) {
            self.error(node, format!("{key}: {problem}"));
            return None;
        }
        if check_enum
            && let Some(allowed) = &field.enum_values
            && !allowed
                .iter()
                .any(|candidate| same_value(candidate, &value))
        {
            let list: Vec<String> = allowed.iter().map(display_value).collect();
            self.error(node, format!("{key}: is not one of {}", list.join(", ")));
            return None;
        }
        Some(value)
    }
}
