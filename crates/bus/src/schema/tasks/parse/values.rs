//! Typed values read from marked YAML nodes, each mistake reported at the node. The document
//! parser has helpers of the same shape; these stay separate because they report through the
//! task parser.

use saphyr::{MarkedYaml, Scalar, YamlData};

use super::Parser;
use crate::schema::load::LoadError;

/// A mapping entry whose key is a string.
pub(super) struct Entry<'n, 'i> {
    pub name: &'n str,
    pub key: &'n MarkedYaml<'i>,
    pub value: &'n MarkedYaml<'i>,
}

impl Parser<'_> {
    pub(super) fn error(&mut self, node: &MarkedYaml<'_>, message: impl Into<String>) {
        self.errors
            .push(LoadError::at(self.file, node.span.start, message));
    }

    /// The entries of a mapping, skipping (and reporting) keys that are not strings.
    pub(super) fn entries<'n, 'i>(
        &mut self,
        node: &'n MarkedYaml<'i>,
        what: &str,
    ) -> Option<Vec<Entry<'n, 'i>>> {
        let YamlData::Mapping(map) = &node.data else {
            self.error(node, format!("{what} must be a mapping"));
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            match scalar_str(key) {
                Some(name) => entries.push(Entry { name, key, value }),
                None => self.error(key, format!("{what}: keys must be strings")),
            }
        }
        Some(entries)
    }

    pub(super) fn string(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<String> {
        let text = scalar_str(node).map(str::to_owned);
        if text.is_none() {
            self.error(node, format!("{key} must be a string"));
        }
        text
    }

    pub(super) fn boolean(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<bool> {
        if let YamlData::Value(Scalar::Boolean(value)) = &node.data {
            return Some(*value);
        }
        self.error(node, format!("{key} must be true or false"));
        None
    }

    /// A whole number within `min..=max`.
    pub(super) fn number(
        &mut self,
        node: &MarkedYaml<'_>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let number = match &node.data {
            YamlData::Value(Scalar::Integer(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        let number = number.filter(|n| (min..=max).contains(n));
        if number.is_none() {
            self.error(
                node,
                format!("{key} must be a whole number from {min} to {max}"),
            );
        }
        number
    }
}

pub(super) fn scalar_str<'n>(node: &'n MarkedYaml<'_>) -> Option<&'n str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        _ => None,
    }
}
