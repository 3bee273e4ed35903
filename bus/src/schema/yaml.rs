//! Reading marked YAML for every parser of the apps folder (the documents here, and the
//! declarations other crates keep beside them): typed values from nodes, each mistake reported
//! at its node's line and column.

use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::error::LoadError;

/// Where a parser reports: the file it reads and the mistakes found so far. Parsers hold one
/// and dereference to it, so `self.error(…)` and the readers below work on any of them.
pub struct Reader<'a> {
    /// The file being read, as errors name it.
    pub file: &'a Path,
    /// Where each mistake is pushed.
    pub errors: &'a mut Vec<LoadError>,
}

/// Lets a parser with a `reader: Reader` field use the reader's methods and fields as its own.
#[macro_export]
macro_rules! reads_yaml {
    ($parser:ident) => {
        impl<'a> std::ops::Deref for $parser<'a> {
            type Target = $crate::schema::yaml::Reader<'a>;

            fn deref(&self) -> &Self::Target {
                &self.reader
            }
        }

        impl std::ops::DerefMut for $parser<'_> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.reader
            }
        }
    };
}
pub use crate::reads_yaml;

/// A mapping entry whose key is a string.
pub struct Entry<'n, 'i> {
    /// The key's text.
    pub name: &'n str,
    /// The key's node, where mistakes about the entry as a whole are reported.
    pub key: &'n MarkedYaml<'i>,
    /// The value's node.
    pub value: &'n MarkedYaml<'i>,
}

impl Reader<'_> {
    /// Reports `message` at `node`'s line and column.
    pub fn error(&mut self, node: &MarkedYaml<'_>, message: impl Into<String>) {
        self.errors
            .push(LoadError::at(self.file, node.span.start, message));
    }

    /// The entries of a mapping, skipping (and reporting) keys that are not strings.
    pub fn entries<'n, 'i>(
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

    /// The text of a string scalar, or a report that `key` must be a string.
    pub fn string(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<String> {
        let text = scalar_str(node).map(str::to_owned);
        if text.is_none() {
            self.error(node, format!("{key} must be a string"));
        }
        text
    }

    /// A YAML boolean, or a report that `key` must be one.
    pub fn boolean(&mut self, node: &MarkedYaml<'_>, key: &str) -> Option<bool> {
        if let YamlData::Value(Scalar::Boolean(value)) = &node.data {
            return Some(*value);
        }
        self.error(node, format!("{key} must be true or false"));
        None
    }
}

/// The YAML documents of a file's text; `None` when it is not YAML, with the mistake pushed
/// to `errors` at its line and column.
pub fn load_documents<'i>(
    file: &Path,
    text: &'i str,
    errors: &mut Vec<LoadError>,
) -> Option<Vec<MarkedYaml<'i>>> {
    match MarkedYaml::load_from_str(text) {
        Ok(docs) => Some(docs),
        Err(e) => {
            let message = format!("invalid YAML: {}", e.info());
            errors.push(LoadError::at(file, *e.marker(), message));
            None
        }
    }
}

/// The text of a string scalar.
pub fn scalar_str<'n>(node: &'n MarkedYaml<'_>) -> Option<&'n str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        _ => None,
    }
}
