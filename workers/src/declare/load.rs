//! Loads an apps folder for Herald's processes: its documents, read by `herald-bus`, and each
//! app's `tasks.yaml`, checked against them. One run reports the mistakes of both, sorted by
//! file, line and column, so one start-up (or `herald check`) shows them all.

use std::path::Path;

use herald_bus::schema::load::{Documents, Source};
use herald_bus::schema::{LoadErrors, Registry};

use super::TaskDecl;
use super::parse::parse_tasks;

/// The stem of an app's tasks file, one of the names the apps folder reserves
/// ([`herald_bus::schema::RESERVED_STEMS`]) so that no document takes it.
const TASKS_FILE: &str = "tasks";

/// Every declared task, sorted by app, then in the order of its `tasks.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Tasks(Vec<TaskDecl>);

impl Tasks {
    /// Every task, sorted by app, then in the order of its `tasks.yaml`.
    #[must_use]
    pub fn all(&self) -> &[TaskDecl] {
        &self.0
    }

    /// Every task, in the order of [`Tasks::all`].
    pub fn iter(&self) -> std::slice::Iter<'_, TaskDecl> {
        self.0.iter()
    }

    /// The task named `<app>.<name>`.
    #[must_use]
    pub fn get(&self, full_name: &str) -> Option<&TaskDecl> {
        let (app, name) = full_name.split_once('.')?;
        self.0
            .iter()
            .find(|task| task.app == app && task.name == name)
    }
}

impl<'a> IntoIterator for &'a Tasks {
    type Item = &'a TaskDecl;
    type IntoIter = std::slice::Iter<'a, TaskDecl>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Loads every `<apps_dir>/<app>/<doc>.yaml` as [`Registry::load`] does, and each app's
/// `tasks.yaml` (or `tasks.yml`), which declares the app's tasks rather than a document.
///
/// # Errors
/// Every mistake of the documents and the tasks files: those [`Registry::load`] reports, and
/// invalid tasks (whose triggers, conditions and commands must name declared documents).
pub fn load(apps_dir: &Path) -> Result<(Registry, Tasks), LoadErrors> {
    declare(Documents::read(apps_dir))
}

/// Like [`load`], from in-memory `(app, doc, yaml)` sources; errors name the file
/// `<app>/<doc>.yaml`. A source whose doc is `tasks` is the app's `tasks.yaml`.
///
/// # Errors
/// As [`load`].
pub fn from_sources(sources: &[(&str, &str, &str)]) -> Result<(Registry, Tasks), LoadErrors> {
    declare(Documents::from_sources(sources))
}

/// Parses the tasks files against the documents, then ends the load with every mistake.
fn declare(documents: Documents) -> Result<(Registry, Tasks), LoadErrors> {
    let mut files: Vec<&Source> = documents
        .reserved()
        .iter()
        .filter(|file| file.stem == TASKS_FILE)
        .collect();
    // A folder is read by path, but in-memory sources come in any order.
    files.sort_by(|a, b| a.app.cmp(&b.app));
    let mut errors = Vec::new();
    let mut tasks = Vec::new();
    for file in files {
        let parsed = parse_tasks(&file.file, &file.app, &file.text, &documents, &mut errors);
        tasks.extend(parsed);
    }
    let registry = documents.into_registry(errors)?;
    Ok((registry, Tasks(tasks)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    /// A fresh, empty directory under the system temp dir, removed by the caller.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("herald-declare-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_tasks_file_is_a_stem_the_apps_folder_reserves() {
        assert!(herald_bus::schema::RESERVED_STEMS.contains(&TASKS_FILE));
    }

    #[test]
    fn a_tasks_file_declares_tasks_rather_than_a_document() {
        let dir = temp_dir("tasks");
        fs::create_dir_all(dir.join("shop")).unwrap();
        fs::write(
            dir.join("shop/order.yaml"),
            "fields: {total: {type: number}}",
        )
        .unwrap();
        fs::write(
            dir.join("shop/tasks.yaml"),
            "big_order:\n  on: shop.order.created\n  when: {total: {gte: 1000}}\n  kind: rust\n",
        )
        .unwrap();
        let loaded = load(&dir);
        fs::write(dir.join("shop/tasks.yml"), "other:\n  kind: rust\n").unwrap();
        let duplicate = load(&dir);
        fs::remove_dir_all(&dir).unwrap();

        let (registry, tasks) = loaded.unwrap();
        let names: Vec<String> = registry
            .documents()
            .map(|doc| doc.collection().to_string())
            .collect();
        assert_eq!(names, ["shop.order"]);
        let task = tasks.get("shop.big_order").unwrap();
        assert_eq!(
            task.trigger.as_ref().map(|t| t.event_type.as_str()),
            Some("shop.order.created")
        );
        let errors = duplicate.unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].file, dir.join("shop/tasks.yml"));
        assert!(
            errors[0]
                .message
                .starts_with("the tasks of `shop` are already declared in"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn mistakes_of_documents_and_tasks_come_in_one_list_sorted_by_file() {
        let errors = from_sources(&[
            ("shop", "tasks", "t:\n  kind: nope\n"),
            ("shop", "order", "fields: {total: {type: nubmer}}"),
            (
                "cart",
                "tasks",
                "t:\n  on: shop.missing.created\n  kind: rust\n",
            ),
        ])
        .unwrap_err()
        .0;
        let found: Vec<(String, Option<usize>)> = errors
            .iter()
            .map(|e| (e.file.display().to_string(), e.line))
            .collect();
        assert_eq!(
            found,
            [
                ("cart/tasks.yaml".to_owned(), Some(2)),
                ("shop/order.yaml".to_owned(), Some(1)),
                ("shop/tasks.yaml".to_owned(), Some(2)),
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn tasks_are_sorted_by_app_then_in_file_order() {
        let (_, tasks) = from_sources(&[
            ("shop", "order", "fields: {total: {type: number}}"),
            ("shop", "tasks", "b:\n  kind: rust\na:\n  kind: rust\n"),
            ("cart", "tasks", "z:\n  kind: rust\n"),
        ])
        .unwrap();
        let names: Vec<String> = tasks.iter().map(TaskDecl::full_name).collect();
        assert_eq!(names, ["cart.z", "shop.b", "shop.a"]);
        assert_eq!(tasks.all().len(), 3);
        assert!(tasks.get("shop.z").is_none());
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::from_sources;

    /// YAML-ish text built from the declarations' own words, so inputs get past the YAML
    /// parser into the document and task checks.
    fn yamlish() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("fields"),
            Just("acl"),
            Just("type"),
            Just("string"),
            Just("integer"),
            Just("array"),
            Just("object"),
            Just("items"),
            Just("ref"),
            Just("to"),
            Just("min"),
            Just("max"),
            Just("enum"),
            Just("filter"),
            Just("on"),
            Just("kind"),
            Just("webhook"),
            Just("command"),
            Just("when"),
            Just("retry"),
            Just("shop.item.created"),
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(":"),
            Just(","),
            Just("\n  "),
            Just("\n"),
            Just("- "),
            Just("1"),
            Just("-1"),
            Just("true"),
            Just("$event.data.a"),
        ];
        proptest::collection::vec(word, 0..40).prop_map(|words| words.join(" "))
    }

    proptest! {
        #[test]
        fn any_text_loads_or_is_refused_without_panicking(doc in yamlish(), tasks in yamlish()) {
            let sources = [("shop", "item", doc.as_str()), ("shop", "tasks", tasks.as_str())];
            let _ = from_sources(&sources);
        }
    }
}
