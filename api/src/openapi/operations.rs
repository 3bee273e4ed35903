//! Stable `operationId`s and the `links` between operations, which let a client (or a fuzzer's
//! stateful phase) follow a created document's `id` to the operations on it.
//!
//! A document's operations are named `<verb>_<doc>` (`create_product`, `get_product`,
//! `list_products`, `update_product`, `delete_product`, `restore_product`, `product_history`,
//! `product_events`, `product_stream_events`). When another loaded app declares a document of the
//! same name, or the name would clash with an operation outside the documents (`list_events`,
//! `get_command`, ...), the app comes first: `create_petstore_product`.

use std::collections::HashMap;

use herald_bus::schema::{DocumentSchema, Registry};
use serde_json::{Map, Value, json};

/// The operations that belong to no document.
pub const LIST_EVENTS: &str = "list_events";
pub const GET_COMMAND: &str = "get_command";
pub const GET_TASK: &str = "get_task";
pub const LIST_PROJECTIONS: &str = "list_projections";
pub const GET_PROJECTION: &str = "get_projection";
pub const REBUILD_PROJECTION: &str = "rebuild_projection";
pub const LIST_DEAD_TASKS: &str = "list_dead_tasks";
pub const RETRY_DEAD_TASK: &str = "retry_dead_task";
pub const REPLAY_PARKED_EVENTS: &str = "replay_parked_events";
pub const CHECK_HEALTH: &str = "check_health";
pub const CHECK_READINESS: &str = "check_readiness";
pub const CREATE_API_KEY: &str = "create_api_key";
pub const LIST_API_KEYS: &str = "list_api_keys";
pub const REVOKE_API_KEY: &str = "revoke_api_key";
pub const ISSUE_TOKEN: &str = "issue_token";
pub const REVOKE_TOKEN: &str = "revoke_token";
pub const SIGNING_KEYS: &str = "signing_keys";

/// Document names whose ids could equal one above.
const RESERVED: [&str; 9] = [
    "event",
    "command",
    "task",
    "projection",
    "dead_task",
    "parked_events",
    "readiness",
    "api_key",
    "token",
];

/// The `operationId`s of one document's operations.
pub struct DocumentOperations {
    stem: String,
}

impl DocumentOperations {
    /// Names `doc`'s operations, with its app when the name alone would not be unique.
    pub fn of(registry: &Registry, doc: &DocumentSchema) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for other in registry.documents() {
            *counts.entry(other.name.as_str()).or_default() += 1;
        }
        let shared = counts.get(doc.name.as_str()).copied().unwrap_or_default() > 1;
        let stem = if shared || RESERVED.contains(&doc.name.as_str()) {
            format!("{}_{}", doc.app, doc.name)
        } else {
            doc.name.clone()
        };
        Self { stem }
    }

    pub fn create(&self) -> String {
        format!("create_{}", self.stem)
    }

    pub fn list(&self) -> String {
        if self.stem.ends_with('s') {
            format!("list_{}", self.stem)
        } else {
            format!("list_{}s", self.stem)
        }
    }

    pub fn get(&self) -> String {
        format!("get_{}", self.stem)
    }

    pub fn update(&self) -> String {
        format!("update_{}", self.stem)
    }

    pub fn delete(&self) -> String {
        format!("delete_{}", self.stem)
    }

    pub fn restore(&self) -> String {
        format!("restore_{}", self.stem)
    }

    /// A declared command: `publish_product`.
    pub fn run(&self, command: &str) -> String {
        format!("{command}_{}", self.stem)
    }

    pub fn history(&self) -> String {
        format!("{}_history", self.stem)
    }

    pub fn events(&self) -> String {
        format!("{}_events", self.stem)
    }

    pub fn stream_events(&self) -> String {
        format!("{}_stream_events", self.stem)
    }

    /// From a response that carries the document (`201`, `200`): every operation on it, by the
    /// `id` in the body; a change is conditional on the version it was given (`ETag`).
    pub fn links_from_document(&self) -> Value {
        let by_id = json!({"id": "$response.body#/id"});
        let conditional =
            json!({"id": "$response.body#/id", "header.If-Match": "$response.header.ETag"});
        let mut links = Map::new();
        for (name, operation, parameters) in [
            ("get", self.get(), &by_id),
            ("update", self.update(), &conditional),
            ("delete", self.delete(), &conditional),
            ("history", self.history(), &by_id),
            ("events", self.stream_events(), &by_id),
        ] {
            links.insert(
                name.to_owned(),
                json!({"operationId": operation, "parameters": parameters}),
            );
        }
        Value::Object(links)
    }

    /// From an archive (`204`, no body): restoring it, by the `id` of the request's path.
    pub fn links_from_archive(&self) -> Value {
        json!({
            "restore": {"operationId": self.restore(), "parameters": {"id": "$request.path.id"}},
            "get": {"operationId": self.get(), "parameters": {"id": "$request.path.id"}},
        })
    }
}

/// From a `202`: the command's status, by the `id` in the body.
pub fn links_from_accepted() -> Value {
    json!({"status": {"operationId": GET_COMMAND, "parameters": {"id": "$response.body#/id"}}})
}
