//! Typed values read from marked YAML nodes (strings, booleans, counts, numbers, JSON), each
//! mistake reported at the node.

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use super::Parser;
use crate::schema::yaml::scalar_str;

impl Parser<'_> {
    /// `min`/`max`: any number for numeric fields, a character count for text.
    pub(super) fn bound(&mut self, node: &MarkedYaml<'_>, key: &str, numeric: bool) -> Option<f64> {
        if !numeric {
            return self.count(node, key).map(|n| n as f64);
        }
        match &node.data {
            YamlData::Value(Scalar::Integer(n)) => Some(*n as f64),
            YamlData::Value(Scalar::FloatingPoint(n)) if n.0.is_finite() => Some(n.0),
            _ => {
                self.error(node, format!("{key} must be a number"));
                None
            }
        }
    }

    pub(super) fn count(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<usize> {
        let count = match &node.data {
            YamlData::Value(Scalar::Integer(n)) => usize::try_from(*n).ok(),
            _ => None,
        };
        if count.is_none() {
            self.error(node, format!("{key} must be a whole number, 0 or more"));
        }
        count
    }

    /// Converts a YAML value (for `default` and `enum`) to the JSON it stands for.
    pub(super) fn json(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<Value> {
        match &node.data {
            YamlData::Value(Scalar::Null) => Some(Value::Null),
            YamlData::Value(Scalar::Boolean(b)) => Some(Value::Bool(*b)),
            YamlData::Value(Scalar::Integer(n)) => Some(Value::from(*n)),
            YamlData::Value(Scalar::String(s)) => Some(Value::String(s.to_string())),
            YamlData::Value(Scalar::FloatingPoint(n)) => {
                let number = Number::from_f64(n.0);
                if number.is_none() {
                    self.error(node, format!("{key} must be a finite number"));
                }
                number.map(Value::Number)
            }
            YamlData::Sequence(items) => {
                let values: Vec<Option<Value>> =
                    items.iter().map(|item| self.json(item, key)).collect();
                values
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array)
            }
            YamlData::Mapping(map) => {
                let mut object = Map::new();
                let mut valid = true;
                for (name, value) in map {
                    match (scalar_str(name), self.json(value, key)) {
                        (Some(name), Some(value)) => {
                            object.insert(name.to_owned(), value);
                        }
                        (None, _) => {
                            self.error(name, format!("{key}: keys must be strings"));
                            valid = false;
                        }
                        (_, None) => valid = false,
                    }
                }
                valid.then_some(Value::Object(object))
            }
            _ => {
                self.error(
                    node,
                    format!("{key}: unsupported YAML value (tags are not allowed)"),
                );
                None
            }
        }
    }
}

pub(super) fn has_key(node: &MarkedYaml<'_>, key: &str) -> bool {
    match &node.data {
        YamlData::Mapping(map) => map.keys().any(|k| scalar_str(k) == Some(key)),
        _ => false,
    }
}
