//! An app's API versions (`<app>/versions.yaml`): the versions it serves side by side
//! (`/v1/<app>/…`, `/v2/<app>/…`), each one a view of the same documents and event streams.
//! A version may show a field or a command under another name, or not at all, and may be
//! deprecated and then retired (sunset).
//!
//! ```yaml
//! v1:
//!   deprecated: 2026-12-01   # clients should move to the successor (Deprecation header)
//!   sunset: 2027-06-30       # from this day on the version answers 410 Gone
//! v2:
//!   product:
//!     rename: {name: title}  # v2 calls the field `name` `title`
//!     drop: [cost]           # and does not show `cost`
//!     rename_commands: {publish: release}
//!     drop_commands: [restock]
//! ```
//!
//! Without the file, an app is served as `v1` only, exactly as declared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use saphyr::{MarkedYaml, YamlData};

use super::error::LoadError;
use super::model::{DocumentSchema, MANAGED_FIELDS};
use super::yaml::{Entry, Reader, load_documents, reads_yaml, scalar_str};
use crate::ids::is_name;

/// The file stem of an app's versions, one of [`super::RESERVED_STEMS`].
pub const VERSIONS_FILE: &str = "versions";

/// The version every app has when it declares none.
pub const FIRST_VERSION: &str = "v1";

/// Path segments after a document's id that are routes, not commands.
const ROUTE_SEGMENTS: [&str; 3] = ["restore", "history", "events"];

/// The versions of one app, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersions(pub Vec<ApiVersion>);

/// One version of an app's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion {
    /// `v<N>`.
    pub name: String,
    /// From when clients are told to move on.
    pub deprecated: Option<NaiveDate>,
    /// From when the version answers `410 Gone`.
    pub sunset: Option<NaiveDate>,
    /// The version clients should move to: the one declared, or the next one.
    pub successor: Option<String>,
    /// How each document differs in this version, by document name.
    pub documents: BTreeMap<String, DocumentVersion>,
}

/// How one document looks in one version, compared with its declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentVersion {
    /// Declared field name → this version's name.
    pub rename: BTreeMap<String, String>,
    /// Declared fields this version does not show.
    pub drop: BTreeSet<String>,
    /// Declared command name → this version's name.
    pub rename_commands: BTreeMap<String, String>,
    /// Declared commands this version does not offer.
    pub drop_commands: BTreeSet<String>,
}

impl AppVersions {
    /// The version called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ApiVersion> {
        self.0.iter().find(|version| version.name == name)
    }
}

impl ApiVersion {
    /// The version an app without `versions.yaml` is served as.
    #[must_use]
    pub fn first() -> Self {
        Self {
            name: FIRST_VERSION.to_owned(),
            deprecated: None,
            sunset: None,
            successor: None,
            documents: BTreeMap::new(),
        }
    }

    /// How `doc` differs in this version (not at all when it is not named).
    #[must_use]
    pub fn document(&self, doc: &str) -> Option<&DocumentVersion> {
        self.documents.get(doc)
    }
}

impl DocumentVersion {
    /// The document as this version shows it: fields and commands renamed or left out.
    #[must_use]
    pub fn apply(&self, schema: &DocumentSchema) -> DocumentSchema {
        let mut shown = schema.clone();
        shown.fields = schema
            .fields
            .iter()
            .filter(|(name, _)| !self.drop.contains(*name))
            .map(|(name, field)| (self.rename.get(name).unwrap_or(name).clone(), field.clone()))
            .collect();
        shown.commands = schema
            .commands
            .iter()
            .filter(|(name, _)| !self.drop_commands.contains(*name))
            .map(|(name, command)| {
                let mut command = command.clone();
                command.name = self.rename_commands.get(name).unwrap_or(name).clone();
                (command.name.clone(), command)
            })
            .collect();
        shown
    }
}

/// Whether `name` is a version name: `v` and a number from 1, without leading zeros.
#[must_use]
pub fn is_version_name(name: &str) -> bool {
    version_number(name).is_some()
}

fn version_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?;
    if digits.starts_with('0') || digits.len() > 4 {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 1)
}

/// An app's documents as the versions file is checked against them.
pub(super) struct AppDocuments<'a> {
    pub app: &'a str,
    /// The documents whose files parsed, by name.
    pub parsed: &'a BTreeMap<String, Arc<DocumentSchema>>,
    /// Every declared document, with mistakes or not.
    pub declared: BTreeSet<&'a str>,
}

/// Parses `<app>/versions.yaml` against the app's documents; `None` when it has mistakes,
/// which are pushed to `errors`.
pub(super) fn parse_versions(
    file: &Path,
    text: &str,
    documents: &AppDocuments<'_>,
    errors: &mut Vec<LoadError>,
) -> Option<AppVersions> {
    let docs = load_documents(file, text, errors)?;
    let before = errors.len();
    let mut parser = Parser {
        reader: Reader { file, errors },
        documents,
    };
    let versions = match docs.as_slice() {
        [root] => parser.versions(root),
        [] => {
            parser
                .errors
                .push(LoadError::file(file, "declares no version"));
            None
        }
        [_, extra, ..] => {
            parser.error(extra, "expected a single YAML document, found several");
            None
        }
    };
    versions.filter(|_| errors.len() == before)
}

struct Parser<'a> {
    reader: Reader<'a>,
    documents: &'a AppDocuments<'a>,
}

reads_yaml!(Parser);

impl Parser<'_> {
    fn versions(&mut self, root: &MarkedYaml<'_>) -> Option<AppVersions> {
        let entries = self.entries(root, "the versions file")?;
        if entries.is_empty() {
            self.error(root, "declares no version");
            return None;
        }
        let mut versions: Vec<ApiVersion> = Vec::new();
        let mut successors = Vec::new();
        for entry in &entries {
            let Some(number) = version_number(entry.name) else {
                let message = format!("`{}` is not a version name: expected v1, v2, …", entry.name);
                self.error(entry.key, message);
                continue;
            };
            if let Some(last) = versions.last()
                && version_number(&last.name).is_some_and(|n| n >= number)
            {
                let message = format!(
                    "`{}` comes after `{}`: list versions oldest first",
                    entry.name, last.name
                );
                self.error(entry.key, message);
                continue;
            }
            let (version, successor) = self.version(entry)?;
            successors.push((entry.key, successor));
            versions.push(version);
        }
        let names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        for (index, (version, (node, declared))) in versions.iter_mut().zip(successors).enumerate()
        {
            let later = &names[index + 1..];
            version.successor = match declared {
                Some((_, name)) if later.contains(&name) => Some(name),
                Some((value, name)) => {
                    let message = format!(
                        "`successor` of `{}` must be a later version of this file, not `{name}`",
                        version.name
                    );
                    self.error(value, message);
                    None
                }
                None => later.first().cloned(),
            };
            let retiring = version.deprecated.is_some() || version.sunset.is_some();
            if retiring && version.successor.is_none() {
                let message = format!(
                    "`{}` is deprecated but has no later version for clients to move to",
                    version.name
                );
                self.error(node, message);
            }
        }
        Some(AppVersions(versions))
    }

    /// One version; its declared successor (node and name) is checked once all are read.
    #[allow(clippy::type_complexity)]
    fn version<'n, 'i>(
        &mut self,
        entry: &Entry<'n, 'i>,
    ) -> Option<(ApiVersion, Option<(&'n MarkedYaml<'i>, String)>)> {
        let mut version = ApiVersion {
            name: entry.name.to_owned(),
            ..ApiVersion::first()
        };
        let mut successor = None;
        if matches!(&entry.value.data, YamlData::Value(saphyr::Scalar::Null)) {
            return Some((version, successor));
        }
        let what = format!("version `{}`", entry.name);
        for key in self.entries(entry.value, &what)? {
            match key.name {
                "deprecated" => version.deprecated = self.date(key.value, &what, "deprecated"),
                "sunset" => version.sunset = self.date(key.value, &what, "sunset"),
                "successor" => {
                    successor = self
                        .string(key.value, &format!("{what}: `successor`"))
                        .map(|name| (key.value, name));
                }
                doc => {
                    if let Some(changes) = self.document(&what, doc, &key) {
                        version.documents.insert(doc.to_owned(), changes);
                    }
                }
            }
        }
        if let (Some(deprecated), Some(sunset)) = (version.deprecated, version.sunset)
            && sunset < deprecated
        {
            let message =
                format!("{what}: `sunset` ({sunset}) is before `deprecated` ({deprecated})");
            self.error(entry.key, message);
        }
        Some((version, successor))
    }

    fn date(&mut self, node: &MarkedYaml<'_>, what: &str, key: &str) -> Option<NaiveDate> {
        let date =
            scalar_str(node).and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok());
        if date.is_none() {
            self.error(
                node,
                format!("{what}: `{key}` must be a date, e.g. 2027-06-30"),
            );
        }
        date
    }

    /// How document `doc` differs in this version.
    fn document(
        &mut self,
        what: &str,
        doc: &str,
        entry: &Entry<'_, '_>,
    ) -> Option<DocumentVersion> {
        let Some(schema) = self.documents.parsed.get(doc).cloned() else {
            // A declared document with mistakes of its own is reported by its own file.
            if !self.documents.declared.contains(doc) {
                let message = format!(
                    "{what}: `{doc}` is neither `deprecated`, `sunset`, `successor` nor a document of `{}`",
                    self.documents.app
                );
                self.error(entry.key, message);
            }
            return None;
        };
        let what = format!("{what}, document `{doc}`");
        let mut changes = DocumentVersion::default();
        for key in self.entries(entry.value, &what)? {
            match key.name {
                "rename" => changes.rename = self.renames(key.value, &what, "rename"),
                "drop" => changes.drop = self.names(key.value, &what, "drop"),
                "rename_commands" => {
                    changes.rename_commands = self.renames(key.value, &what, "rename_commands");
                }
                "drop_commands" => {
                    changes.drop_commands = self.names(key.value, &what, "drop_commands")
                }
                other => {
                    let message = format!(
                        "{what}: unknown key `{other}` (expected rename, drop, rename_commands or drop_commands)"
                    );
                    self.error(key.key, message);
                }
            }
        }
        self.check_fields(&what, entry.key, &schema, &changes);
        self.check_commands(&what, entry.key, &schema, &changes);
        Some(changes)
    }

    fn renames(
        &mut self,
        node: &MarkedYaml<'_>,
        what: &str,
        key: &str,
    ) -> BTreeMap<String, String> {
        let mut renames = BTreeMap::new();
        for entry in self
            .entries(node, &format!("{what}: `{key}`"))
            .unwrap_or_default()
        {
            let Some(to) = self.string(entry.value, &format!("{what}: `{key}.{}`", entry.name))
            else {
                continue;
            };
            if !is_name(&to) {
                let message =
                    format!("{what}: `{to}` is not a valid name: must match ^[a-z][a-z0-9_]*$");
                self.error(entry.value, message);
                continue;
            }
            renames.insert(entry.name.to_owned(), to);
        }
        renames
    }

    fn names(&mut self, node: &MarkedYaml<'_>, what: &str, key: &str) -> BTreeSet<String> {
        let YamlData::Sequence(items) = &node.data else {
            self.error(node, format!("{what}: `{key}` must be a list of names"));
            return BTreeSet::new();
        };
        let mut names = BTreeSet::new();
        for item in items {
            if let Some(name) = self.string(item, &format!("{what}: each of `{key}`")) {
                names.insert(name);
            }
        }
        names
    }

    fn check_fields(
        &mut self,
        what: &str,
        at: &MarkedYaml<'_>,
        schema: &DocumentSchema,
        changes: &DocumentVersion,
    ) {
        let mut problems = Vec::new();
        for name in changes.rename.keys().chain(&changes.drop) {
            if !schema.fields.contains_key(name) {
                problems.push(format!(
                    "{what}: `{name}` is not a field of {}",
                    schema.collection()
                ));
            }
        }
        for name in &changes.drop {
            if changes.rename.contains_key(name) {
                problems.push(format!("{what}: `{name}` is both renamed and dropped"));
            }
            if let Some(field) = schema.fields.get(name)
                && field.required
                && field.default.is_none()
            {
                problems.push(format!(
                    "{what}: `{name}` is required and has no default, so this version could not create a document without it"
                ));
            }
        }
        let mut shown = BTreeSet::new();
        for name in schema
            .fields
            .keys()
            .filter(|name| !changes.drop.contains(*name))
        {
            let shown_as = changes.rename.get(name).unwrap_or(name);
            if MANAGED_FIELDS.contains(&shown_as.as_str()) {
                problems.push(format!(
                    "{what}: `{shown_as}` is set by the server and cannot name a field"
                ));
            } else if !shown.insert(shown_as.clone()) {
                problems.push(format!(
                    "{what}: two fields would both be called `{shown_as}`"
                ));
            }
        }
        for problem in problems {
            self.error(at, problem);
        }
    }

    fn check_commands(
        &mut self,
        what: &str,
        at: &MarkedYaml<'_>,
        schema: &DocumentSchema,
        changes: &DocumentVersion,
    ) {
        let mut problems = Vec::new();
        for name in changes.rename_commands.keys().chain(&changes.drop_commands) {
            if !schema.commands.contains_key(name) {
                problems.push(format!(
                    "{what}: `{name}` is not a command of {}",
                    schema.collection()
                ));
            }
        }
        let mut shown = BTreeSet::new();
        for name in schema
            .commands
            .keys()
            .filter(|name| !changes.drop_commands.contains(*name))
        {
            let shown_as = changes.rename_commands.get(name).unwrap_or(name);
            if ROUTE_SEGMENTS.contains(&shown_as.as_str()) {
                problems.push(format!(
                    "{what}: a command cannot be called `{shown_as}`, a route of its own"
                ));
            } else if !shown.insert(shown_as.clone()) {
                problems.push(format!(
                    "{what}: two commands would both be called `{shown_as}`"
                ));
            }
        }
        for problem in problems {
            self.error(at, problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use crate::schema::Registry;

    const PRODUCT: &str = "fields:
  name: {type: string, required: true}
  price: {type: number, required: true}
  cost: {type: number}
  label: {type: string}
commands:
  publish: {acl: staff, emits: published, set: {label: published}}
";

    fn load(versions: &str) -> Result<Registry, String> {
        Registry::from_sources(&[("shop", "product", PRODUCT), ("shop", "versions", versions)])
            .map_err(|errors| errors.to_string())
    }

    #[test]
    fn versions_are_read_with_their_changes_and_successors() {
        let registry = load(
            "v1:\n  deprecated: 2026-01-01\n  sunset: 2027-01-01\nv2:\n  product:\n    rename: {name: title}\n    drop: [cost]\n    rename_commands: {publish: release}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let versions = registry
            .versions("shop")
            .unwrap_or_else(|| panic!("declared"));
        let v1 = versions.get("v1").unwrap_or_else(|| panic!("v1"));
        assert_eq!(v1.successor.as_deref(), Some("v2"));
        assert_eq!(v1.sunset, NaiveDate::from_ymd_opt(2027, 1, 1));
        let v2 = versions.get("v2").unwrap_or_else(|| panic!("v2"));
        assert_eq!(v2.successor, None);
        let view = registry.version_view("v2");
        let product = view
            .get("shop", "product")
            .unwrap_or_else(|| panic!("in v2"));
        let fields: Vec<&str> = product.fields.keys().map(String::as_str).collect();
        assert_eq!(fields, ["title", "price", "label"]);
        assert!(product.commands.contains_key("release"));
        assert!(registry.version_view("v3").get("shop", "product").is_none());
    }

    #[test]
    fn mistakes_in_versions_are_reported_at_their_place() {
        for (yaml, problem) in [
            ("version1: {}\n", "`version1` is not a version name"),
            (
                "v2: {}\nv1: {}\n",
                "`v1` comes after `v2`: list versions oldest first",
            ),
            (
                "v1:\n  deprecated: soon\nv2:\n",
                "`deprecated` must be a date",
            ),
            ("v1:\n  deprecated: 2026-01-01\n", "has no later version"),
            (
                "v1:\n  deprecated: 2027-01-01\n  sunset: 2026-01-01\nv2:\n",
                "is before `deprecated`",
            ),
            ("v1:\n  order: {}\n", "`order` is neither"),
            (
                "v1:\n  product: {drop: [name]}\n",
                "`name` is required and has no default",
            ),
            (
                "v1:\n  product: {drop: [nope]}\n",
                "`nope` is not a field of shop.product",
            ),
            (
                "v1:\n  product: {rename: {label: price}}\n",
                "two fields would both be called `price`",
            ),
            (
                "v1:\n  product: {rename: {label: id}}\n",
                "`id` is set by the server",
            ),
            (
                "v1:\n  product: {rename_commands: {publish: history}}\n",
                "a command cannot be called `history`",
            ),
            (
                "v1:\n  product: {drop_commands: [ship]}\n",
                "`ship` is not a command of shop.product",
            ),
            ("v1:\n  product: {renames: {}}\n", "unknown key `renames`"),
            ("v1:\n  successor: v1\nv2:\n", "must be a later version"),
        ] {
            let errors = load(yaml).err().unwrap_or_else(|| panic!("{yaml} loaded"));
            assert!(errors.contains(problem), "{yaml}: {errors}");
            assert!(errors.contains("shop/versions.yaml:"), "{errors}");
        }
    }
}
