//! Conditions on fields: a field and an operator with a value of the field's type. Task
//! triggers test an event's data with them, command guards a document's fields; `when`
//! (`schema::when`) reads them from YAML.

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::Value;

/// One test on a field of a JSON object (an event's `data`, a document's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Dotted for fields of nested objects (`dimensions.width`).
    pub path: String,
    pub op: ConditionOp,
    /// What the field is compared with: a list for `in`, a boolean for `exists`.
    pub value: Value,
    /// The field is a `datetime`: values are compared as instants, because RFC 3339 texts with
    /// different offsets (`…T10:00:00+02:00` and `…T09:00:00Z`) do not sort as strings.
    pub datetime: bool,
}

/// The YAML operators of a condition, in the order the docs list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    /// The field equals one of a list of values.
    In,
    /// The field is (`true`) or is not (`false`) in `data`; `null` counts as present, since
    /// in an update it means the field was cleared.
    Exists,
}

impl ConditionOp {
    /// Every operator as written in YAML, for error messages.
    pub const NAMES: [&'static str; 8] = ["eq", "neq", "lt", "lte", "gt", "gte", "in", "exists"];

    pub fn parse(name: &str) -> Option<ConditionOp> {
        let op = match name {
            "eq" => ConditionOp::Eq,
            "neq" => ConditionOp::Neq,
            "lt" => ConditionOp::Lt,
            "lte" => ConditionOp::Lte,
            "gt" => ConditionOp::Gt,
            "gte" => ConditionOp::Gte,
            "in" => ConditionOp::In,
            "exists" => ConditionOp::Exists,
            _ => return None,
        };
        Some(op)
    }

    /// `lt`, `lte`, `gt` and `gte`, which need values with an order.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            ConditionOp::Lt | ConditionOp::Lte | ConditionOp::Gt | ConditionOp::Gte
        )
    }
}

impl Condition {
    /// A condition on a field that is not a `datetime`.
    pub fn new(path: &str, op: ConditionOp, value: Value) -> Self {
        Self {
            path: path.to_owned(),
            op,
            value,
            datetime: false,
        }
    }

    /// Whether the condition holds on `data`.
    #[must_use]
    pub fn holds(&self, data: &Value) -> bool {
        let Some(actual) = lookup(data, &self.path) else {
            return self.op == ConditionOp::Exists && self.value == Value::Bool(false);
        };
        let order = || self.compare(actual, &self.value);
        match self.op {
            ConditionOp::Exists => self.value == Value::Bool(true),
            ConditionOp::Eq => order() == Some(Ordering::Equal),
            ConditionOp::Neq => order() != Some(Ordering::Equal),
            ConditionOp::Lt => order() == Some(Ordering::Less),
            ConditionOp::Lte => matches!(order(), Some(Ordering::Less | Ordering::Equal)),
            ConditionOp::Gt => order() == Some(Ordering::Greater),
            ConditionOp::Gte => matches!(order(), Some(Ordering::Greater | Ordering::Equal)),
            ConditionOp::In => self.value.as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|item| self.compare(actual, item) == Some(Ordering::Equal))
            }),
        }
    }

    /// How `actual` compares with `expected`; `None` when they cannot be compared (different
    /// JSON types, a datetime that does not parse), which no operator but `neq` accepts.
    fn compare(&self, actual: &Value, expected: &Value) -> Option<Ordering> {
        match (actual, expected) {
            (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
            },
            (Value::String(a), Value::String(b)) if self.datetime => {
                let a = DateTime::parse_from_rfc3339(a).ok()?;
                let b = DateTime::parse_from_rfc3339(b).ok()?;
                Some(a.cmp(&b))
            }
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (a, b) => (a == b).then_some(Ordering::Equal),
        }
    }
}

/// The value at a dotted path of nested objects, if every step is there.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(value, |current, step| current.as_object()?.get(step))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn condition(path: &str, op: ConditionOp, value: Value) -> Condition {
        Condition::new(path, op, value)
    }

    fn holds(op: ConditionOp, value: Value, data: Value) -> bool {
        condition("stock", op, value).holds(&data)
    }

    #[test]
    fn each_operator_compares_the_field_with_its_value() {
        use ConditionOp::*;
        let cases = [
            (Eq, json!(3), 3, true),
            (Eq, json!(3), 4, false),
            (Neq, json!(3), 4, true),
            (Neq, json!(3), 3, false),
            (Lt, json!(5), 4, true),
            (Lt, json!(5), 5, false),
            (Lte, json!(5), 5, true),
            (Lte, json!(5), 6, false),
            (Gt, json!(5), 6, true),
            (Gt, json!(5), 5, false),
            (Gte, json!(5), 5, true),
            (Gte, json!(5), 4, false),
            (In, json!([1, 3]), 3, true),
            (In, json!([1, 3]), 2, false),
            (Exists, json!(true), 0, true),
            (Exists, json!(false), 0, false),
        ];
        for (op, value, stock, expected) in cases {
            let data = json!({"stock": stock});
            assert_eq!(
                holds(op, value.clone(), data),
                expected,
                "{op:?} {value} on {stock}"
            );
        }
    }

    #[test]
    fn a_field_absent_from_data_fails_every_operator_but_exists_false() {
        use ConditionOp::*;
        let data = json!({"name": "Bowl"});
        for (op, value) in [
            (Eq, json!(1)),
            (Neq, json!(1)),
            (Lt, json!(1)),
            (Gte, json!(1)),
            (In, json!([1])),
            (Exists, json!(true)),
        ] {
            assert!(!holds(op, value, data.clone()), "{op:?}");
        }
        assert!(holds(Exists, json!(false), data));
        assert!(holds(Exists, json!(true), json!({"stock": null})));
        assert!(holds(Neq, json!(1), json!({"stock": null})));
        assert!(!holds(Lt, json!(1), json!({"stock": null})));
    }

    #[test]
    fn numbers_compare_by_value_and_strings_as_text() {
        assert!(holds(ConditionOp::Eq, json!(3), json!({"stock": 3.0})));
        assert!(holds(ConditionOp::Lt, json!(2.5), json!({"stock": 2})));
        let name = |op, value: &str, data: &str| {
            condition("name", op, json!(value)).holds(&json!({"name": data}))
        };
        assert!(name(ConditionOp::Lt, "b", "a"));
        assert!(name(ConditionOp::Gte, "2024-05-01", "2024-05-01"));
        assert!(!name(ConditionOp::Lt, "B", "a"));
        assert!(!name(ConditionOp::Eq, "3", "03"));
    }

    #[test]
    fn datetimes_compare_as_instants_whatever_their_offset() {
        let mut at = condition("at", ConditionOp::Lt, json!("2024-05-01T10:00:00Z"));
        let data = json!({"at": "2024-05-01T11:30:00+02:00"});
        assert!(!at.holds(&data), "as text, 11:30 sorts after 10:00");
        at.datetime = true;
        assert!(at.holds(&data));
        at.op = ConditionOp::Eq;
        assert!(at.holds(&json!({"at": "2024-05-01T12:00:00+02:00"})));
        assert!(!at.holds(&json!({"at": "not a time"})));
    }

    #[test]
    fn paths_descend_into_nested_objects() {
        let width = condition("dimensions.width", ConditionOp::Gt, json!(10));
        assert!(width.holds(&json!({"dimensions": {"width": 12}})));
        assert!(!width.holds(&json!({"dimensions": {"height": 12}})));
        assert!(!width.holds(&json!({"dimensions": null})));
    }
}
