//! Turns one YAML declaration into a [`DocumentSchema`], reporting each mistake at its node's
//! line and column and carrying on, so all of a file's mistakes show at once. Submodules:
//! [`field`] specs, the [`keys`] that apply to each type, [`acl`] rules, typed [`values`].

mod acl;
mod commands;
mod field;
mod keys;
mod values;

use std::path::Path;

use indexmap::IndexMap;
use saphyr::MarkedYaml;

use super::error::LoadError;
use super::model::{Acl, DocumentSchema, Fields, SEARCH_LANGUAGES};
use super::yaml::{Reader, load_documents, reads_yaml};
use keys::Place;

/// A `ref` target to check once every file is parsed, with the error to report if it is not
/// declared.
pub(super) struct RefSite {
    pub app: String,
    pub doc: String,
    pub missing: LoadError,
}

/// Parses `text` as the declaration of `app.doc`, pushing every mistake onto `errors` and every
/// `ref` target onto `refs`. Returns the schema only if the file had no mistakes.
pub(super) fn parse_document(
    file: &Path,
    app: &str,
    doc: &str,
    text: &str,
    errors: &mut Vec<LoadError>,
    refs: &mut Vec<RefSite>,
) -> Option<DocumentSchema> {
    let docs = load_documents(file, text, errors)?;
    let before = errors.len();
    let mut parser = Parser {
        reader: Reader { file, errors },
        refs,
    };
    let schema = match docs.as_slice() {
        [] => {
            let message = "the file is empty; expected a mapping with `fields`";
            parser.errors.push(LoadError::file(file, message));
            None
        }
        [root] => parser.document(app, doc, root),
        [_, extra, ..] => {
            parser.error(extra, "expected a single YAML document, found several");
            None
        }
    };
    if errors.len() == before { schema } else { None }
}

struct Parser<'a> {
    reader: Reader<'a>,
    refs: &'a mut Vec<RefSite>,
}

reads_yaml!(Parser);

impl Parser<'_> {
    fn document(&mut self, app: &str, doc: &str, root: &MarkedYaml<'_>) -> Option<DocumentSchema> {
        let entries = self.entries(root, "the document")?;
        let mut schema = DocumentSchema {
            app: app.to_owned(),
            name: doc.to_owned(),
            description: None,
            fields: Fields::new(),
            acl: Acl::default(),
            require_if_match: false,
            search_language: "simple".to_owned(),
            commands: IndexMap::new(),
        };
        let mut has_fields = false;
        let mut commands = None;
        for entry in entries {
            match entry.name {
                "description" => schema.description = self.string(entry.value, "`description`"),
                "fields" => {
                    has_fields = true;
                    schema.fields = self.fields(entry.value, "", Place::Top).unwrap_or_default();
                }
                "acl" => schema.acl = self.acl(entry.value),
                "commands" => commands = Some(entry.value),
                "require_if_match" => {
                    schema.require_if_match = self
                        .boolean(entry.value, "`require_if_match`")
                        .unwrap_or(false);
                }
                "search_language" => {
                    if let Some(language) = self.string(entry.value, "`search_language`") {
                        if SEARCH_LANGUAGES.contains(&language.as_str()) {
                            schema.search_language = language;
                        } else {
                            self.error(
                                entry.value,
                                format!(
                                    "unknown search language `{language}` (expected one of {})",
                                    SEARCH_LANGUAGES.join(", ")
                                ),
                            );
                        }
                    }
                }
                other => self.error(
                    entry.key,
                    format!(
                        "unknown key `{other}` (expected description, fields, acl, commands, \
                         require_if_match, search_language)"
                    ),
                ),
            }
        }
        if !has_fields {
            self.error(root, "missing `fields`");
        }
        if let Some(commands) = commands {
            self.commands(commands, &mut schema);
        }
        Some(schema)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use crate::schema::{LoadError, Registry};

    /// Loads `yaml` as `shop/item.yaml` next to a valid `shop/customer.yaml`.
    pub(super) fn errors(yaml: &str) -> Vec<LoadError> {
        let customer = "fields: {name: {type: string}}";
        Registry::from_sources(&[("shop", "customer", customer), ("shop", "item", yaml)])
            .unwrap_err()
            .0
    }

    /// The only error, as `(line, column, message)`.
    pub(super) fn only(yaml: &str) -> (usize, usize, String) {
        let errors = errors(yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let error = &errors[0];
        assert_eq!(error.file, std::path::Path::new("shop/item.yaml"));
        (
            error.line.unwrap(),
            error.column.unwrap(),
            error.message.clone(),
        )
    }

    #[test]
    fn yaml_syntax_errors_carry_the_parser_position() {
        let (line, column, message) = only("fields:\n  a: {type: string\n  b: 1\n");
        assert_eq!((line, column), (3, 4));
        assert!(message.starts_with("invalid YAML: "), "{message}");
        let (line, _, message) = only("fields: {a: {type: string}}\nfields: {}\n");
        assert_eq!(line, 2);
        assert!(message.contains("duplicated key"), "{message}");
    }

    #[test]
    fn a_document_needs_non_empty_fields() {
        let (line, column, message) = only("description: nothing\n");
        assert_eq!((line, column, message.as_str()), (1, 1, "missing `fields`"));
        let (_, _, message) = only("fields: {}\n");
        assert_eq!(message, "`fields` must declare at least one field");
        let errors = errors("");
        assert_eq!(
            (errors[0].line, errors[0].message.as_str()),
            (None, "the file is empty; expected a mapping with `fields`")
        );
    }

    #[test]
    fn every_mistake_in_a_file_is_reported_in_position_order() {
        let yaml = "\
description: 3
fields:
  price: {type: nubmer}
  stock: {type: integer, min: 0, default: -1}
  sku: {type: string, pattern: '(', colour: red}
  supplier: {type: ref, to: shop.vendor}
owner: me
";
        let found: Vec<(Option<usize>, Option<usize>)> =
            errors(yaml).iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            found,
            [
                (Some(1), Some(14)),
                (Some(3), Some(17)),
                (Some(4), Some(43)),
                (Some(5), Some(32)),
                (Some(5), Some(37)),
                (Some(6), Some(29)),
                (Some(7), Some(1)),
            ]
        );
    }
}
