//! Reads one `tasks.yaml` into [`TaskDecl`]s, checked against the declared documents. Like
//! document files, each mistake is reported at its node and parsing carries on, so one run
//! shows every mistake. Submodules: the [`trigger`] (`on`, `when`), the [`command`] of a
//! command task, and typed [`values`].

mod command;
#[cfg(test)]
mod tests;
mod trigger;
mod values;

use std::path::Path;
use std::time::Duration;

use herald_bus::ids::is_name;
use herald_bus::schema::LoadError;
use herald_bus::schema::format::format_problem;
use herald_bus::schema::load::Documents;
use herald_bus::schema::model::FieldKind;
use herald_bus::schema::yaml::{Entry, Reader, load_documents, reads_yaml, scalar_str};
use saphyr::{MarkedYaml, Scalar, YamlData};

use super::{DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, RetryPolicy, TaskDecl, TaskKind};

const TASK_KEYS: &str = "description, on, when, kind, url, secret, timeout_secs, retry, \
                         concurrency, command";
const KINDS: [&str; 3] = ["webhook", "command", "rust"];

/// Parses `text` as the `tasks.yaml` of `app`, pushing every mistake onto `errors`. Returns the
/// tasks only if the file had no mistakes; an empty file declares no tasks.
///
/// A task may name any declared document, but only the fields of those that parsed are
/// checked: a document's own mistakes are reported once, by its own file.
pub(super) fn parse_tasks(
    file: &Path,
    app: &str,
    text: &str,
    documents: &Documents,
    errors: &mut Vec<LoadError>,
) -> Vec<TaskDecl> {
    let Some(docs) = load_documents(file, text, errors) else {
        return Vec::new();
    };
    let before = errors.len();
    let mut parser = Parser {
        reader: Reader { file, errors },
        app,
        documents,
    };
    let tasks = match docs.as_slice() {
        [] => Vec::new(),
        [root] => parser.tasks(root),
        [_, extra, ..] => {
            parser.error(extra, "expected a single YAML document, found several");
            Vec::new()
        }
    };
    if errors.len() == before {
        tasks
    } else {
        Vec::new()
    }
}

struct Parser<'a> {
    reader: Reader<'a>,
    app: &'a str,
    documents: &'a Documents,
}

reads_yaml!(Parser);

/// The keys of one task spec as found, before the checks that need several of them.
#[derive(Default)]
struct Spec<'n, 'i> {
    on: Option<&'n MarkedYaml<'i>>,
    when: Option<Entry<'n, 'i>>,
    kind: Option<&'n MarkedYaml<'i>>,
    url: Option<&'n MarkedYaml<'i>>,
    secret: Option<&'n MarkedYaml<'i>>,
    command: Option<&'n MarkedYaml<'i>>,
}

impl Parser<'_> {
    fn tasks(&mut self, root: &MarkedYaml<'_>) -> Vec<TaskDecl> {
        if matches!(root.data, YamlData::Value(Scalar::Null)) {
            return Vec::new();
        }
        let Some(entries) = self.entries(root, "the tasks file") else {
            return Vec::new();
        };
        let mut tasks = Vec::with_capacity(entries.len());
        for entry in entries {
            if !is_name(entry.name) {
                let message = format!(
                    "invalid task name `{}`: must match ^[a-z][a-z0-9_]*$",
                    entry.name
                );
                self.error(entry.key, message);
                continue;
            }
            tasks.extend(self.task(&entry));
        }
        tasks
    }

    /// One task spec; `task.key` is where mistakes about the spec as a whole are reported.
    fn task(&mut self, task: &Entry<'_, '_>) -> Option<TaskDecl> {
        let what = format!("task `{}`", task.name);
        let entries = self.entries(task.value, &what)?;
        let before = self.errors.len();
        let kind_name = entries
            .iter()
            .find(|entry| entry.name == "kind")
            .and_then(|entry| scalar_str(entry.value))
            .filter(|name| KINDS.contains(name));
        let mut decl = TaskDecl {
            app: self.app.to_owned(),
            name: task.name.to_owned(),
            description: None,
            trigger: None,
            kind: TaskKind::Rust,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
        };
        let mut spec = Spec::default();
        for entry in entries {
            let only_for = match entry.name {
                "url" | "secret" => Some("webhook"),
                "command" => Some("command"),
                _ => None,
            };
            if let (Some(only_for), Some(kind)) = (only_for, kind_name)
                && only_for != kind
            {
                let message = format!("{what}: `{}` does not apply to kind `{kind}`", entry.name);
                self.error(entry.key, message);
                continue;
            }
            let key = format!("{what}: `{}`", entry.name);
            match entry.name {
                "description" => decl.description = self.string(entry.value, &key),
                "on" => spec.on = Some(entry.value),
                "when" => spec.when = Some(entry),
                "kind" => spec.kind = Some(entry.value),
                "url" => spec.url = Some(entry.value),
                "secret" => spec.secret = Some(entry.value),
                "command" => spec.command = Some(entry.value),
                "timeout_secs" => {
                    if let Some(secs) = self.number(entry.value, &key, 1, 3600) {
                        decl.timeout = Duration::from_secs(secs);
                    }
                }
                "concurrency" => {
                    if let Some(n) = self.number(entry.value, &key, 1, 1000) {
                        decl.concurrency = usize::try_from(n).unwrap_or(1000);
                    }
                }
                "retry" => decl.retry = self.retry(entry.value, &what),
                other => {
                    let message = format!("{what}: unknown key `{other}` (expected {TASK_KEYS})");
                    self.error(entry.key, message);
                }
            }
        }
        decl.trigger = self.trigger(&spec, &what);
        decl.kind = self.kind(&spec, task.key, &what)?;
        (self.errors.len() == before).then_some(decl)
    }

    /// `kind` and the keys that go with it; `task` is where missing keys are reported.
    fn kind(&mut self, spec: &Spec<'_, '_>, task: &MarkedYaml<'_>, what: &str) -> Option<TaskKind> {
        let Some(node) = spec.kind else {
            self.error(
                task,
                format!("{what}: missing `kind` ({})", KINDS.join(", ")),
            );
            return None;
        };
        match self.string(node, &format!("{what}: `kind`"))?.as_str() {
            "webhook" => {
                let url = self
                    .required(spec.url, task, what, "url")
                    .and_then(|node| self.url(node, what));
                let secret = self
                    .required(spec.secret, task, what, "secret")
                    .and_then(|node| self.secret(node, what));
                Some(TaskKind::Webhook {
                    url: url?,
                    secret: secret?,
                })
            }
            "command" => {
                let node = self.required(spec.command, task, what, "command")?;
                self.command(node, task, what).map(TaskKind::Command)
            }
            "rust" => Some(TaskKind::Rust),
            other => {
                let message = format!(
                    "{what}: unknown kind `{other}` (expected {})",
                    KINDS.join(", ")
                );
                self.error(node, message);
                None
            }
        }
    }

    /// The node of a key the task's kind needs, reporting it at the task if missing.
    fn required<'n, 'i>(
        &mut self,
        node: Option<&'n MarkedYaml<'i>>,
        task: &MarkedYaml<'_>,
        what: &str,
        name: &str,
    ) -> Option<&'n MarkedYaml<'i>> {
        if node.is_none() {
            self.error(task, format!("{what}: missing `{name}`"));
        }
        node
    }

    /// A webhook's `url`: absolute http or https, as a `url` field requires.
    fn url(&mut self, node: &MarkedYaml<'_>, what: &str) -> Option<String> {
        let url = self.string(node, &format!("{what}: `url`"))?;
        if let Some(problem) = format_problem(&FieldKind::Url, &url) {
            self.error(node, format!("{what}: `url` {problem}"));
            return None;
        }
        Some(url)
    }

    /// A webhook's `secret`: the name of a settings secret, never the secret itself.
    fn secret(&mut self, node: &MarkedYaml<'_>, what: &str) -> Option<String> {
        let name = scalar_str(node).filter(|name| is_name(name));
        if name.is_none() {
            let message = format!(
                "{what}: `secret` must name a signing secret in settings \
                 (webhooks.secrets.<name>) matching ^[a-z][a-z0-9_]*$"
            );
            self.error(node, message);
        }
        name.map(str::to_owned)
    }

    /// The `retry` mapping, defaults filled in.
    fn retry(&mut self, node: &MarkedYaml<'_>, what: &str) -> RetryPolicy {
        let mut retry = RetryPolicy::default();
        let Some(entries) = self.entries(node, &format!("{what}: `retry`")) else {
            return retry;
        };
        let mut backoff_node = None;
        let mut max_delay_node = None;
        for entry in entries {
            let key = format!("{what}: `retry.{}`", entry.name);
            match entry.name {
                "max_attempts" => {
                    if let Some(n) = self.number(entry.value, &key, 1, 100) {
                        retry.max_attempts = u32::try_from(n).unwrap_or(100);
                    }
                }
                "backoff_ms" => {
                    if let Some(ms) = self.number(entry.value, &key, 10, 3_600_000) {
                        retry.backoff = Duration::from_millis(ms);
                        backoff_node = Some(entry.value);
                    }
                }
                "max_delay_secs" => {
                    if let Some(secs) = self.number(entry.value, &key, 1, 86_400) {
                        retry.max_delay = Duration::from_secs(secs);
                        max_delay_node = Some(entry.value);
                    }
                }
                other => {
                    let message = format!(
                        "{what}: `retry`: unknown key `{other}` (expected max_attempts, \
                         backoff_ms, max_delay_secs)"
                    );
                    self.error(entry.key, message);
                }
            }
        }
        if retry.max_delay < retry.backoff
            && let Some(at) = max_delay_node.or(backoff_node)
        {
            let message = format!(
                "{what}: `retry.max_delay_secs` ({}s{}) must be at least `retry.backoff_ms` ({}ms)",
                retry.max_delay.as_secs(),
                if max_delay_node.is_some() {
                    ""
                } else {
                    ", the default"
                },
                retry.backoff.as_millis(),
            );
            self.error(at, message);
        }
        retry
    }
}
