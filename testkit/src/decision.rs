//! Given/when/then for commands' decisions, with no service running: the events a document
//! already has, the command a caller sends, and the events it appends or the problem it is
//! refused with. Decisions are the same code the handler runs (YAML rules and Rust code alike),
//! before the checks that need the store (`unique` values, references), which the integration
//! harness ([`crate::TestApp`]) covers.
//!
//! ```no_run
//! use herald_testkit::decision::{Decisions, Event, staff};
//! use serde_json::json;
//!
//! let petstore = Decisions::load("apps", &herald_cli::App::new()).expect("the app loads");
//! petstore
//!     .given("petstore.product", [Event::new("created", json!({"name": "Kite", "price": 3}))])
//!     .when(&staff("sam"), "publish", json!({}))
//!     .then([Event::new("published", json!({"status": "published"}))]);
//! ```

use std::path::Path;

use chrono::Utc;
use herald_api::error::ApiError;
use herald_bus::access::Principal;
use herald_bus::command::{Action, CommandEnvelope, Rejection};
use herald_bus::decide::{Decision, decide};
use herald_bus::document::{Change, DocumentState, Stamp, apply};
use herald_bus::ids::{CommandId, TenantId};
use herald_bus::schema::{DocumentSchema, Registry};
use herald_cli::App;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::harness::TENANT;

/// An app's documents with its Rust code attached, ready to decide.
pub struct Decisions {
    registry: Registry,
}

impl Decisions {
    /// The YAML in `apps` (the folder `herald serve --apps` takes) with `app`'s code.
    ///
    /// # Errors
    /// The YAML's mistakes, or a `kind: rust` command without its code.
    pub fn load(apps: impl AsRef<Path>, app: &App) -> Result<Self, String> {
        let (registry, _) =
            herald_workers::declare::load(apps.as_ref()).map_err(|errors| errors.to_string())?;
        Self::with_code(registry, app)
    }

    /// Documents from `(app, doc, yaml)` sources, for a test's own small app.
    ///
    /// # Errors
    /// As [`Decisions::load`].
    pub fn from_sources(sources: &[(&str, &str, &str)], app: &App) -> Result<Self, String> {
        let registry = Registry::from_sources(sources).map_err(|errors| errors.to_string())?;
        Self::with_code(registry, app)
    }

    fn with_code(mut registry: Registry, app: &App) -> Result<Self, String> {
        registry
            .attach(&app.commands)
            .map_err(|problems| problems.join("\n"))?;
        Ok(Self { registry })
    }

    /// A document of `collection` (`petstore.product`) that has had `history`; an empty history
    /// is a document that does not exist yet (for a create, or a command on the collection).
    ///
    /// # Panics
    /// When the collection is not declared or the history does not fold (the test is wrong).
    #[track_caller]
    pub fn given(&self, collection: &str, history: impl IntoIterator<Item = Event>) -> Given<'_> {
        let Some(schema) = self.registry.named(collection) else {
            panic!("`{collection}` is not declared");
        };
        let id = Uuid::now_v7();
        let mut state: Option<DocumentState> = None;
        for (version, event) in (1..).zip(history) {
            let type_name = format!("{collection}.{}", event.verb);
            let sets = event.sets.as_ref().and_then(Value::as_object);
            let Some(change) = Change::from_stored(&type_name, &event.data, sets) else {
                panic!(
                    "given `{type_name}` with data {} is not an event",
                    event.data
                );
            };
            let stamp = Stamp {
                version,
                at: Utc::now(),
                by: "given",
            };
            state = match apply(state, id, &change, stamp) {
                Ok(next) => Some(next),
                Err(error) => panic!("given history does not fold: {error}"),
            };
        }
        Given { schema, id, state }
    }
}

/// An event, as given or as expected: its verb (`created`, `published`), its data, and for an
/// event of Rust code whose data says something else, the fields it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub verb: String,
    pub data: Value,
    pub sets: Option<Value>,
}

impl Event {
    pub fn new(verb: &str, data: Value) -> Self {
        Self {
            verb: verb.to_owned(),
            data,
            sets: None,
        }
    }

    /// The fields the event sets, when its data is the code's own (`{"quantity": 5}` sets
    /// `{"stock": 12}`).
    #[must_use]
    pub fn sets(mut self, fields: Value) -> Self {
        self.sets = Some(fields);
        self
    }

    fn of(change: &Change) -> Self {
        Self {
            verb: change.verb().to_owned(),
            data: change.data(),
            sets: change.sets().map(|set| Value::Object(set.clone())),
        }
    }
}

/// A document with its past, waiting for a command.
pub struct Given<'r> {
    schema: &'r DocumentSchema,
    id: Uuid,
    state: Option<DocumentState>,
}

impl Given<'_> {
    /// `caller` sends `command` with `body`: `create`, `update` (a merge patch), `archive`,
    /// `restore`, or a command the document declares (its params).
    pub fn when(&self, caller: &Principal, command: &str, body: Value) -> Then {
        let body = match body {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => panic!("a command's body is a JSON object, not {other}"),
        };
        let action = match command {
            "create" => Action::Create { fields: body },
            "update" => Action::Update { patch: body },
            "archive" => Action::Archive,
            "restore" => Action::Restore,
            name => Action::Run {
                command: name.to_owned(),
                params: body,
            },
        };
        let id = CommandId::generate();
        let envelope = CommandEnvelope {
            id,
            app: self.schema.app.clone(),
            doc: self.schema.name.clone(),
            document_id: self.id,
            action,
            expected_version: None,
            principal: caller.clone(),
            idempotency_key: None,
            request_hash: String::new(),
            correlation_id: id.0,
            causation_id: None,
            traceparent: None,
            submitted_at: Utc::now(),
        };
        Then {
            decided: decide(self.schema, self.state.as_ref(), &envelope, Utc::now()),
        }
    }
}

/// What a command decided.
#[derive(Debug)]
pub struct Then {
    pub decided: Result<Decision, Rejection>,
}

impl Then {
    /// Asserts the command appends exactly `expected` (verbs and data, and what an event of
    /// Rust code sets when the expectation names it), and returns the document after them.
    #[track_caller]
    pub fn then(&self, expected: impl IntoIterator<Item = Event>) -> DocumentState {
        let decision = match &self.decided {
            Ok(decision) => decision,
            Err(rejection) => panic!("expected events, the command was refused: {rejection:?}"),
        };
        let appended: Vec<Event> = decision.changes.iter().map(Event::of).collect();
        let expected: Vec<Event> = expected
            .into_iter()
            .zip(
                appended
                    .iter()
                    .map(|event| event.sets.clone())
                    .chain(std::iter::repeat(None)),
            )
            .map(|(event, sets)| match event.sets {
                Some(_) => event,
                // An expectation that does not say what the event sets does not check it.
                None => Event { sets, ..event },
            })
            .collect();
        assert_eq!(appended, expected, "the events the command appends");
        decision.state.clone()
    }

    /// Asserts the command is refused with the problem `code` a client would get (the app's
    /// own, such as `product_retired`, or `validation_failed`, `forbidden`, `not_found`, …), and
    /// returns the refusal.
    #[track_caller]
    pub fn then_refused(&self, code: &str) -> Rejection {
        match &self.decided {
            Err(rejection) => {
                // The problem a client gets: the api renders refusals in one place.
                let problem = ApiError::from(rejection.clone()).problem();
                assert_eq!(problem["code"], code, "{rejection:?}");
                rejection.clone()
            }
            Ok(decision) => panic!(
                "expected `{code}`, the command appended {:?}",
                decision.changes
            ),
        }
    }
}

/// A caller `sub` with `roles` in [`TENANT`].
pub fn caller(sub: &str, roles: &[&str]) -> Principal {
    Principal {
        sub: Some(sub.to_owned()),
        tenant: TenantId::parse(TENANT).unwrap_or_else(|| unreachable!("a valid tenant")),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

pub fn user(sub: &str) -> Principal {
    caller(sub, &["user"])
}

pub fn staff(sub: &str) -> Principal {
    caller(sub, &["staff"])
}

pub fn admin(sub: &str) -> Principal {
    caller(sub, &["admin"])
}
