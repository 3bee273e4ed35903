//! Finds and loads every `<apps_dir>/<app>/<doc>.yaml` into a [`Registry`], collecting every
//! mistake with its file, line and column so one start-up (or `herald check`) shows them all.
//! An app folder's files named after a [`RESERVED_STEMS`] entry hold other declarations:
//! [`Documents`] hands them over with the documents, so their mistakes join the same report.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{LoadError, LoadErrors};
use super::model::{DocumentSchema, On};
use super::parse::{RefSite, parse_document};
use super::versions::{AppDocuments, AppVersions, FIRST_VERSION, VERSIONS_FILE, parse_versions};
use crate::ids::is_name;
use crate::rust_command::RustCommands;

/// Longest app or document name: both end up inside NATS subjects, table names and index
/// names, which have length limits of their own.
const MAX_NAME_LEN: usize = 30;

/// File stems an app folder reserves for declarations read by other parts of Herald (the
/// workers' `tasks.yaml`): such a file is not a document, so no document can take its name.
/// Each stem is the plural noun of what its file declares, as errors about it say.
pub const RESERVED_STEMS: [&str; 2] = ["tasks", VERSIONS_FILE];

/// The app of the built-in login's users (`auth.user`), when `identity.enabled` is set.
pub const IDENTITY_APP: &str = "auth";

/// The declaration of the built-in login's users.
const IDENTITY_USER: &str = include_str!("builtin/user.yaml");

/// Parsed documents by app, then name.
type Apps = BTreeMap<String, BTreeMap<String, Arc<DocumentSchema>>>;

/// Every declared document, keyed by app then document name.
#[derive(Debug, Clone)]
pub struct Registry {
    apps: Apps,
    /// The apps that declare their API versions (`versions.yaml`).
    versions: BTreeMap<String, AppVersions>,
}

/// One YAML file of an app folder and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file as found under the apps directory (`<app>/<stem>.yaml` for in-memory sources).
    pub file: PathBuf,
    /// The app folder it is in.
    pub app: String,
    /// The file name without its extension: the document's name, for a document.
    pub stem: String,
    /// The YAML text.
    pub text: String,
}

/// The documents of an apps folder as read, whether or not all are valid: which are declared,
/// which parsed, the mistakes found, and the files of [`RESERVED_STEMS`] left unparsed. Lets
/// the crate that reads those files check them against the documents and report every mistake
/// of the folder in one run, then finish with [`Documents::into_registry`].
#[derive(Debug)]
pub struct Documents {
    registry: Registry,
    /// Every declared `(app, doc)`, including those whose file has mistakes.
    declared: BTreeSet<(String, String)>,
    reserved: Vec<Source>,
    errors: Vec<LoadError>,
}

impl Registry {
    /// Loads every `<apps_dir>/<app>/<doc>.yaml` (also `.yml`); `apps_dir` holds one folder
    /// per app. Files named after a [`RESERVED_STEMS`] entry are not documents and are left
    /// out. Hidden entries (`.git`, editor swap folders) are skipped.
    ///
    /// # Errors
    /// Every mistake found: unreadable or misnamed files and folders, invalid YAML, invalid
    /// declarations, `ref`s to undeclared documents, or no documents at all.
    pub fn load(apps_dir: &Path) -> Result<Registry, LoadErrors> {
        Documents::read(apps_dir).into_registry(Vec::new())
    }

    /// Like [`Registry::load`], from in-memory `(app, doc, yaml)` sources; errors name the file
    /// `<app>/<doc>.yaml`.
    ///
    /// # Errors
    /// As [`Registry::load`].
    pub fn from_sources(sources: &[(&str, &str, &str)]) -> Result<Registry, LoadErrors> {
        Documents::from_sources(sources).into_registry(Vec::new())
    }

    /// Adds the built-in login's users, the document [`IDENTITY_APP`]`.user` (see
    /// `identity.enabled`).
    ///
    /// # Errors
    /// The apps folder already has an app of that name.
    pub fn with_identity(mut self) -> Result<Registry, String> {
        // The app name is reserved, so no apps folder declares it.
        let file = Path::new("<built-in>/auth/user.yaml");
        let (mut errors, mut refs) = (Vec::new(), Vec::new());
        let user = parse_document(
            file,
            IDENTITY_APP,
            "user",
            IDENTITY_USER,
            &mut errors,
            &mut refs,
        )
        .filter(|_| errors.is_empty() && refs.is_empty())
        .ok_or_else(|| {
            format!(
                "the built-in user document is not valid: {}",
                LoadErrors(errors)
            )
        })?;
        self.apps
            .entry(IDENTITY_APP.to_owned())
            .or_default()
            .insert("user".to_owned(), Arc::new(user));
        Ok(self)
    }

    /// The API versions `app` declares, when it has a `versions.yaml`.
    #[must_use]
    pub fn versions(&self, app: &str) -> Option<&AppVersions> {
        self.versions.get(app)
    }

    /// The documents as `version` shows them: the apps that serve it (an app without
    /// `versions.yaml` serves `v1` only), with each document's fields and commands under the
    /// version's names.
    #[must_use]
    pub fn version_view(&self, version: &str) -> Registry {
        let mut apps = Apps::new();
        for (app, docs) in &self.apps {
            let served = match self.versions.get(app) {
                None if version == FIRST_VERSION => None,
                None => continue,
                Some(versions) => match versions.get(version) {
                    Some(served) => Some(served),
                    None => continue,
                },
            };
            let docs = docs
                .iter()
                .map(|(name, schema)| {
                    let shown = match served.and_then(|v| v.document(name)) {
                        Some(changes) => Arc::new(changes.apply(schema)),
                        None => Arc::clone(schema),
                    };
                    (name.clone(), shown)
                })
                .collect();
            apps.insert(app.clone(), docs);
        }
        Registry {
            apps,
            versions: BTreeMap::new(),
        }
    }

    /// Whether any app declares its API versions.
    #[must_use]
    pub fn is_versioned(&self) -> bool {
        !self.versions.is_empty()
    }

    #[must_use]
    pub fn get(&self, app: &str, doc: &str) -> Option<&Arc<DocumentSchema>> {
        self.apps.get(app)?.get(doc)
    }

    /// Attaches the app's code to its `kind: rust` commands.
    ///
    /// # Errors
    /// Every `kind: rust` command with no code registered.
    pub fn attach(&mut self, code: &RustCommands) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for docs in self.apps.values_mut() {
            for schema in docs.values_mut() {
                let collection = schema.collection();
                let schema = Arc::make_mut(schema);
                for command in schema.commands.values_mut().filter(|c| c.rust) {
                    let name = format!("{collection}.{}", command.name);
                    let on_collection = command.on == On::Collection;
                    command.code = code.get(&name).cloned();
                    match &command.code {
                        None => problems.push(format!(
                            "`{name}` is declared with `kind: rust` but no code is registered for it"
                        )),
                        Some(code) if code.on_collection != on_collection => {
                            let (declared, trait_name) = if on_collection {
                                ("`on: collection`", "CollectionCommand")
                            } else {
                                ("on one document", "RustCommand")
                            };
                            problems.push(format!(
                                "`{name}` is declared {declared}, so its code must be a {trait_name}"
                            ));
                            command.code = None;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        problems.sort();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The registered code that no `kind: rust` command declares: harmless, since it never
    /// runs, but worth a warning (a command renamed in the YAML and not in the code).
    pub fn unused_code<'c>(&self, code: &'c RustCommands) -> Vec<&'c str> {
        let declared: BTreeSet<String> = self
            .documents()
            .flat_map(|schema| {
                let collection = schema.collection();
                schema
                    .commands
                    .values()
                    .filter(|c| c.rust)
                    .map(move |c| format!("{collection}.{}", c.name))
            })
            .collect();
        let mut unused: Vec<&str> = code.names().filter(|n| !declared.contains(*n)).collect();
        unused.sort_unstable();
        unused
    }

    /// The document of a collection name as stored and sent (`<app>.<doc>`).
    #[must_use]
    pub fn named(&self, collection: &str) -> Option<&Arc<DocumentSchema>> {
        let (app, doc) = collection.split_once('.')?;
        self.get(app, doc)
    }

    /// Every document, sorted by app then name.
    pub fn documents(&self) -> impl Iterator<Item = &Arc<DocumentSchema>> {
        self.apps.values().flat_map(BTreeMap::values)
    }
}

impl Documents {
    /// Reads and parses the documents of `apps_dir` as [`Registry::load`] does, keeping the
    /// mistakes for [`Documents::into_registry`].
    #[must_use]
    pub fn read(apps_dir: &Path) -> Documents {
        let mut errors = Vec::new();
        let sources = read_sources(apps_dir, &mut errors);
        build(apps_dir, sources, errors)
    }

    /// Like [`Documents::read`], from in-memory `(app, doc, yaml)` sources as
    /// [`Registry::from_sources`] takes them.
    #[must_use]
    pub fn from_sources(sources: &[(&str, &str, &str)]) -> Documents {
        let sources = sources
            .iter()
            .map(|(app, doc, text)| Source {
                file: PathBuf::from(format!("{app}/{doc}.yaml")),
                app: (*app).to_owned(),
                stem: (*doc).to_owned(),
                text: (*text).to_owned(),
            })
            .collect();
        build(Path::new("<sources>"), sources, Vec::new())
    }

    /// Whether `<app>.<doc>` is declared, even if its file has mistakes.
    #[must_use]
    pub fn is_declared(&self, app: &str, doc: &str) -> bool {
        self.declared.contains(&(app.to_owned(), doc.to_owned()))
    }

    /// The schema of `<app>.<doc>`, when its file parsed.
    #[must_use]
    pub fn parsed(&self, app: &str, doc: &str) -> Option<&Arc<DocumentSchema>> {
        self.registry.get(app, doc)
    }

    /// The files named after a [`RESERVED_STEMS`] entry in valid app folders, at most one per
    /// app and stem (the others are mistakes), in the order read: by path for a folder, as
    /// given for in-memory sources.
    #[must_use]
    pub fn reserved(&self) -> &[Source] {
        &self.reserved
    }

    /// The registry, or every mistake (those found reading the documents, then `more`) sorted
    /// by file, line and column.
    ///
    /// # Errors
    /// When either list of mistakes is not empty.
    pub fn into_registry(self, more: Vec<LoadError>) -> Result<Registry, LoadErrors> {
        let mut found = Vec::new();
        let mut versions = BTreeMap::new();
        let none = BTreeMap::new();
        for file in self
            .reserved
            .iter()
            .filter(|file| file.stem == VERSIONS_FILE)
        {
            let documents = AppDocuments {
                app: &file.app,
                parsed: self.registry.apps.get(&file.app).unwrap_or(&none),
                declared: self
                    .declared
                    .iter()
                    .filter(|(app, _)| *app == file.app)
                    .map(|(_, doc)| doc.as_str())
                    .collect(),
            };
            if let Some(parsed) = parse_versions(&file.file, &file.text, &documents, &mut found) {
                versions.insert(file.app.clone(), parsed);
            }
        }
        let mut registry = self.registry;
        registry.versions = versions;
        let mut errors = self.errors;
        errors.extend(more);
        errors.extend(found);
        if errors.is_empty() {
            Ok(registry)
        } else {
            // Stable, so errors at one position keep the order they were found in.
            errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            Err(LoadErrors(errors))
        }
    }
}

/// Parses the sources, then checks what needs all of them at once: duplicates and `ref`
/// targets.
fn build(root: &Path, sources: Vec<Source>, mut errors: Vec<LoadError>) -> Documents {
    let mut declared: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut valid = Vec::new();
    let mut reserved = Vec::new();
    for source in sources {
        if !is_collection_name(&source.app) {
            let message = format!("app name `{}` {}", source.app, NAME_RULE);
            errors.push(LoadError::file(&source.file, message));
        } else if RESERVED_APPS.contains(&source.app.as_str()) {
            let message = format!(
                "app name `{}` is reserved for Herald's own routes (/v1/{}/…)",
                source.app, source.app
            );
            errors.push(LoadError::file(&source.file, message));
        } else if RESERVED_STEMS.contains(&source.stem.as_str()) {
            let same = |other: &&Source| other.app == source.app && other.stem == source.stem;
            if let Some(first) = reserved.iter().find(same) {
                let message = format!(
                    "the {} of `{}` are already declared in {}",
                    source.stem,
                    source.app,
                    first.file.display()
                );
                errors.push(LoadError::file(&source.file, message));
            } else {
                reserved.push(source);
            }
        } else if !is_collection_name(&source.stem) {
            let message = format!("document name `{}` {}", source.stem, NAME_RULE);
            errors.push(LoadError::file(&source.file, message));
        } else if source.app.len() + source.stem.len() > MAX_COLLECTION_LEN {
            let message = format!(
                "`{}.{}` is too long: app and document names together may have at most {MAX_COLLECTION_LEN} characters",
                source.app, source.stem
            );
            errors.push(LoadError::file(&source.file, message));
        } else if let Some(first) = declared.get(&(source.app.clone(), source.stem.clone())) {
            let message = format!(
                "`{}.{}` is already declared in {}",
                source.app,
                source.stem,
                first.display()
            );
            errors.push(LoadError::file(&source.file, message));
        } else {
            let key = (source.app.clone(), source.stem.clone());
            declared.insert(key, source.file.clone());
            valid.push(source);
        }
    }
    if declared.is_empty() && errors.is_empty() {
        let message = "no documents found (expected <app>/<doc>.yaml files)";
        errors.push(LoadError::file(root, message));
    }

    let mut refs: Vec<RefSite> = Vec::new();
    let mut apps = Apps::new();
    for source in valid {
        let parsed = parse_document(
            &source.file,
            &source.app,
            &source.stem,
            &source.text,
            &mut errors,
            &mut refs,
        );
        if let Some(schema) = parsed {
            apps.entry(source.app)
                .or_default()
                .insert(source.stem, Arc::new(schema));
        }
    }
    // A target that exists but failed to parse is still declared: reporting it as missing
    // would only add noise to the real error.
    let declared: BTreeSet<(String, String)> = declared.into_keys().collect();
    for site in refs {
        if !declared.contains(&(site.app, site.doc)) {
            errors.push(site.missing);
        }
    }
    Documents {
        registry: Registry {
            apps,
            versions: BTreeMap::new(),
        },
        declared,
        reserved,
        errors,
    }
}

/// Names of Herald's own `/v1` route groups, which an app would shadow or be shadowed by.
pub const RESERVED_APPS: [&str; 6] = ["admin", "auth", "commands", "events", "openapi", "tasks"];

/// View tables are named `<app>.<doc>.<8 hex>`, and Postgres identifiers hold 63 bytes.
const MAX_COLLECTION_LEN: usize = 52;

const NAME_RULE: &str = "must match ^[a-z][a-z0-9_]*$ and be at most 30 characters";

fn is_collection_name(name: &str) -> bool {
    is_name(name) && name.len() <= MAX_NAME_LEN
}

/// Reads the YAML files of every app folder; names are checked later by [`build`].
fn read_sources(apps_dir: &Path, errors: &mut Vec<LoadError>) -> Vec<Source> {
    let mut sources = Vec::new();
    let Some(apps) = sorted_entries(apps_dir, errors) else {
        return sources;
    };
    for app_dir in apps.into_iter().filter(|path| path.is_dir()) {
        let app = file_name(&app_dir);
        if !is_collection_name(&app) {
            let message = format!("app folder name `{app}` {NAME_RULE}");
            errors.push(LoadError::file(&app_dir, message));
            continue;
        }
        let Some(files) = sorted_entries(&app_dir, errors) else {
            continue;
        };
        for file in files {
            let is_yaml = file
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
            if !is_yaml || !file.is_file() {
                continue;
            }
            let stem = file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            match fs::read_to_string(&file) {
                Ok(text) => sources.push(Source {
                    file,
                    app: app.clone(),
                    stem,
                    text,
                }),
                Err(e) => errors.push(LoadError::file(&file, format!("cannot read: {e}"))),
            }
        }
    }
    sources
}

/// The non-hidden entries of `dir`, sorted so errors and documents come in a stable order.
fn sorted_entries(dir: &Path, errors: &mut Vec<LoadError>) -> Option<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(LoadError::file(dir, format!("cannot read directory: {e}")));
            return None;
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) if !entry.file_name().to_string_lossy().starts_with('.') => {
                paths.push(entry.path());
            }
            Ok(_) => {}
            Err(e) => errors.push(LoadError::file(dir, format!("cannot read directory: {e}"))),
        }
    }
    paths.sort();
    Some(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `:line:column`, `:line` or nothing, to follow the file name.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
pub(super) mod tests {
    use super::*;
    use crate::schema::{AclAction, FieldKind, Role, RoleSet};

    /// The example app shipped in `examples/petstore`, which the docs quote.
    pub(crate) fn petstore() -> Registry {
        let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/petstore/apps");
        Registry::load(&apps).unwrap()
    }

    /// A fresh, empty directory under the system temp dir, removed by the caller.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-schema-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_builtin_user_document_loads_beside_apps() {
        let apps = Registry::from_sources(&[(
            "shop",
            "item",
            "fields: {name: {type: string}}\nacl: {read: user}\n",
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        let registry = apps.with_identity().unwrap_or_else(|e| panic!("{e}"));
        assert!(registry.get("shop", "item").is_some());
        let user = registry
            .get(IDENTITY_APP, "user")
            .unwrap_or_else(|| panic!("no user"));
        assert!(user.fields["username"].unique);
        let taken =
            Registry::from_sources(&[(IDENTITY_APP, "item", "fields: {name: {type: string}}\n")]);
        assert!(taken.is_err_and(|e| e.to_string().contains("reserved")));
    }

    #[test]
    fn a_password_is_a_top_level_field_nothing_can_query() {
        let valid = "fields: {secret: {type: password, required: true}}\n";
        let registry =
            Registry::from_sources(&[("shop", "account", valid)]).unwrap_or_else(|e| panic!("{e}"));
        let account = registry
            .get("shop", "account")
            .unwrap_or_else(|| panic!("loaded"));
        assert!(matches!(account.fields["secret"].kind, FieldKind::Password));

        for (yaml, problem) in [
            (
                "fields: {secret: {type: password, filter: true}}\n",
                "`filter` does not apply to type `password`",
            ),
            (
                "fields: {secret: {type: password, unique: true}}\n",
                "`unique` does not apply to type `password`",
            ),
            (
                "fields: {secret: {type: password, min: 12}}\n",
                "`min` does not apply to type `password`",
            ),
            (
                "fields: {secret: {type: password, default: x}}\n",
                "`default` does not apply to type `password`",
            ),
            (
                "fields: {login: {type: object, fields: {secret: {type: password}}}}\n",
                "a `password` must be a top-level field",
            ),
            (
                "fields: {secrets: {type: array, items: {type: password}}}\n",
                "a `password` must be a top-level field",
            ),
        ] {
            let errors = Registry::from_sources(&[("shop", "account", yaml)])
                .err()
                .unwrap_or_else(|| panic!("{yaml} loaded"))
                .to_string();
            assert!(errors.contains(problem), "{yaml}: {errors}");
        }
    }

    #[test]
    fn the_petstore_example_loads_with_its_fields_and_rights() {
        let registry = petstore();
        let names: Vec<String> = registry
            .documents()
            .map(|doc| doc.collection().to_string())
            .collect();
        assert_eq!(names, ["petstore.product", "petstore.supplier"]);

        let product = registry.get("petstore", "product").unwrap();
        assert_eq!(product.description.as_deref(), Some("Products for sale"));
        let order: Vec<&str> = product.fields.keys().map(String::as_str).collect();
        assert_eq!(
            order,
            [
                "name",
                "description",
                "price",
                "stock",
                "status",
                "tags",
                "sku",
                "supplier",
                "cost",
                "dimensions"
            ]
        );
        let name = &product.fields["name"];
        assert!(matches!(name.kind, FieldKind::String));
        assert!(name.required && name.unique && name.filter && name.sort && name.search);
        assert_eq!(name.max, Some(50.0));
        let stock = &product.fields["stock"];
        assert_eq!(stock.kind.name(), "integer");
        assert_eq!(
            (stock.min, stock.default.clone()),
            (Some(0.0), Some(serde_json::json!(0)))
        );
        let status = &product.fields["status"];
        assert_eq!(status.enum_values.as_ref().map(Vec::len), Some(3));
        assert_eq!(status.default, Some(serde_json::json!("draft")));
        let FieldKind::Array(item) = &product.fields["tags"].kind else {
            panic!("tags is an array")
        };
        assert_eq!((item.kind.name(), item.max), ("string", Some(20.0)));
        assert_eq!(product.fields["tags"].max_items, Some(10));
        assert!(product.fields["tags"].filter && !product.fields["tags"].is_scalar());
        let sku = &product.fields["sku"];
        assert!(sku.immutable);
        assert_eq!(
            sku.pattern.as_ref().map(regex::Regex::as_str),
            Some("^[A-Z0-9-]{4,20}$")
        );
        let FieldKind::Ref { app, doc } = &product.fields["supplier"].kind else {
            panic!("supplier is a ref")
        };
        assert_eq!((app.as_str(), doc.as_str()), ("petstore", "supplier"));
        let staff = Some(RoleSet(vec![Role::Staff]));
        assert_eq!(product.fields["cost"].acl.read, staff);
        assert_eq!(product.fields["cost"].acl.write, staff);
        let FieldKind::Object(dimensions) = &product.fields["dimensions"].kind else {
            panic!("dimensions is an object")
        };
        assert_eq!(dimensions.keys().collect::<Vec<_>>(), ["width", "height"]);
        assert_eq!(
            product.acl.roles(&AclAction::Update),
            Some(&RoleSet(vec![Role::Staff, Role::Owner]))
        );
        assert_eq!(
            product.acl.roles(&AclAction::History),
            Some(&RoleSet(vec![Role::Staff]))
        );
        assert_eq!(
            product.acl.roles(&AclAction::Command("restock".into())),
            Some(&RoleSet(vec![Role::Staff])),
            "a command's own `acl`"
        );
        assert!(product.commands["restock"].rust);
        assert!(!product.require_if_match);

        let supplier = registry.get("petstore", "supplier").unwrap();
        assert_eq!(supplier.fields["email"].kind.name(), "email");
        assert!(supplier.fields["country"].filter);
        assert_eq!(
            supplier.acl.roles(&AclAction::Delete),
            Some(&RoleSet(vec![Role::Admin]))
        );
    }

    #[test]
    fn yml_files_load_and_other_entries_are_ignored() {
        let dir = temp_dir("yml");
        fs::create_dir_all(dir.join("shop/.hidden")).unwrap();
        fs::create_dir_all(dir.join(".git")).unwrap();
        fs::write(
            dir.join("shop/order.yml"),
            "fields: {total: {type: number}}\nrequire_if_match: true\n",
        )
        .unwrap();
        fs::write(dir.join("shop/README.md"), "not yaml").unwrap();
        fs::write(dir.join("notes.txt"), "not an app").unwrap();
        let registry = Registry::load(&dir);
        fs::remove_dir_all(&dir).unwrap();
        let registry = registry.unwrap();
        assert!(registry.get("shop", "order").unwrap().require_if_match);
        assert_eq!(registry.documents().count(), 1);
    }

    #[test]
    fn files_of_reserved_stems_are_handed_over_rather_than_loaded_as_documents() {
        let stem = RESERVED_STEMS[0];
        let (yaml, yml) = (format!("shop/{stem}.yaml"), format!("shop/{stem}.yml"));
        let dir = temp_dir("reserved");
        fs::create_dir_all(dir.join("shop")).unwrap();
        fs::write(
            dir.join("shop/order.yaml"),
            "fields: {total: {type: number}}",
        )
        .unwrap();
        fs::write(dir.join(&yaml), "not: [a, document").unwrap();
        let documents = Documents::read(&dir);
        fs::write(dir.join(&yml), "other: {}\n").unwrap();
        let duplicate = Registry::load(&dir);
        fs::remove_dir_all(&dir).unwrap();

        let reserved: Vec<(&Path, &str, &str)> = documents
            .reserved()
            .iter()
            .map(|file| (file.file.as_path(), file.app.as_str(), file.stem.as_str()))
            .collect();
        assert_eq!(reserved, [(dir.join(&yaml).as_path(), "shop", stem)]);
        assert!(documents.is_declared("shop", "order"));
        assert!(!documents.is_declared("shop", stem));
        let registry = documents.into_registry(Vec::new()).unwrap();
        let names: Vec<String> = registry
            .documents()
            .map(|doc| doc.collection().to_string())
            .collect();
        assert_eq!(names, ["shop.order"]);
        let errors = duplicate.unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].file, dir.join(&yml));
        assert!(
            errors[0]
                .message
                .starts_with(&format!("the {stem} of `shop` are already declared in")),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn mistakes_handed_back_join_the_report_in_file_order() {
        let stem = RESERVED_STEMS[0];
        let documents = Documents::from_sources(&[
            ("shop", "order", "fields: {total: {type: nubmer}}"),
            ("shop", stem, ""),
        ]);
        assert!(documents.parsed("shop", "order").is_none());
        assert!(documents.is_declared("shop", "order"));
        assert_eq!(documents.reserved().len(), 1);
        let more = vec![
            LoadError::file(Path::new("shop/zz.yaml"), "last"),
            LoadError::file(Path::new("a/first.yaml"), "first"),
        ];
        let errors = documents.into_registry(more).unwrap_err().0;
        let files: Vec<&Path> = errors.iter().map(|e| e.file.as_path()).collect();
        assert_eq!(
            files,
            [
                Path::new("a/first.yaml"),
                Path::new("shop/order.yaml"),
                Path::new("shop/zz.yaml")
            ]
        );
    }

    #[test]
    fn misnamed_files_and_folders_are_reported_with_their_path() {
        let dir = temp_dir("names");
        fs::create_dir_all(dir.join("Shop")).unwrap();
        fs::create_dir_all(dir.join("shop")).unwrap();
        fs::write(
            dir.join("shop/Order-Line.yaml"),
            "fields: {a: {type: string}}",
        )
        .unwrap();
        fs::write(dir.join("shop/item.yaml"), "fields: {a: {type: string}}").unwrap();
        fs::write(dir.join("shop/item.yml"), "fields: {a: {type: string}}").unwrap();
        let errors = Registry::load(&dir).unwrap_err().0;
        fs::remove_dir_all(&dir).unwrap();
        let found: Vec<(PathBuf, Option<usize>)> =
            errors.iter().map(|e| (e.file.clone(), e.line)).collect();
        assert_eq!(
            found,
            [
                (dir.join("Shop"), None),
                (dir.join("shop/Order-Line.yaml"), None),
                (dir.join("shop/item.yml"), None),
            ]
        );
        assert!(errors[0].message.contains("app folder name `Shop`"));
        assert!(errors[2].message.contains("already declared in"));
    }

    #[test]
    fn a_missing_or_empty_apps_dir_is_an_error() {
        let dir = temp_dir("empty");
        let empty = Registry::load(&dir).unwrap_err().0;
        let missing = Registry::load(&dir.join("nope")).unwrap_err().0;
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(empty.len(), 1);
        assert!(empty[0].message.starts_with("no documents found"));
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].file, dir.join("nope"));
        assert!(missing[0].message.starts_with("cannot read directory"));
    }

    #[test]
    fn in_memory_sources_name_their_file_after_app_and_doc() {
        let errors =
            Registry::from_sources(&[("shop", "a_very_long_document_name_over_30", "fields: {}")])
                .unwrap_err()
                .0;
        assert_eq!(
            errors[0].file,
            Path::new("shop/a_very_long_document_name_over_30.yaml")
        );
        assert!(errors[0].message.contains("at most 30 characters"));
        assert!(Registry::from_sources(&[]).is_err());
    }

    #[test]
    fn errors_display_as_file_line_column_message_one_per_line() {
        let error = LoadError {
            file: PathBuf::from("apps/petstore/product.yaml"),
            line: Some(7),
            column: Some(18),
            message: "field `price`: unknown type `nubmer`".into(),
        };
        let whole_file = LoadError::file(Path::new("apps/x"), "cannot read");
        assert_eq!(
            error.to_string(),
            "apps/petstore/product.yaml:7:18: field `price`: unknown type `nubmer`"
        );
        assert_eq!(
            LoadErrors(vec![error, whole_file]).to_string(),
            "apps/petstore/product.yaml:7:18: field `price`: unknown type `nubmer`\napps/x: cannot read"
        );
    }

    #[test]
    fn apps_named_like_herald_routes_are_refused() {
        let errors =
            Registry::from_sources(&[("commands", "doc", "fields:\n  a: {type: string}\n")])
                .unwrap_err();
        assert!(errors.to_string().contains("reserved"), "{errors}");
    }

    #[test]
    fn rust_commands_need_code_and_code_without_a_command_is_reported() {
        use crate::access::Principal;
        use crate::document::DocumentState;
        use crate::rust_command::{Emit, Refusal, RustCommand, RustCommands};

        struct Noop;
        impl RustCommand for Noop {
            type Params = serde_json::Value;
            fn decide(
                &self,
                _: &DocumentState,
                _: serde_json::Value,
                _: &Principal,
            ) -> Result<Vec<Emit>, Refusal> {
                Ok(vec![Emit::new("pinged", serde_json::json!({}))])
            }
        }
        let yaml = "fields: {a: {type: string}}\ncommands:\n  ping: {kind: rust, emits: pinged}\n";
        let load = || Registry::from_sources(&[("s", "d", yaml)]).unwrap();
        let mut bare = load();
        assert_eq!(
            bare.attach(&RustCommands::default()),
            Err(vec![
                "`s.d.ping` is declared with `kind: rust` but no code is registered for it"
                    .to_owned()
            ])
        );
        let mut code = RustCommands::default();
        code.register("s.d.ping", Noop).register("s.d.pong", Noop);
        let mut registry = load();
        assert_eq!(registry.attach(&code), Ok(()));
        assert!(
            registry.get("s", "d").unwrap().commands["ping"]
                .code
                .is_some()
        );
        assert_eq!(registry.unused_code(&code), ["s.d.pong"]);
    }
}
