//! Commands decided by Rust code (`kind: rust` in a document's YAML). The YAML keeps what the
//! api needs before any code runs — the params, who may run the command, the events it may
//! emit — and the app registers the decision: from the document and the typed params, the
//! events to append (each with its data and the fields it sets) or a refusal with a code of its
//! own. A command `on: collection` has no document yet: its code is a [`CollectionCommand`],
//! and its first event creates the document.
//!
//! ```no_run
//! use herald_bus::access::Principal;
//! use herald_bus::document::DocumentState;
//! use herald_bus::rust_command::{Emit, Refusal, RustCommand, RustCommands};
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct Params {
//!     quantity: i64,
//! }
//!
//! struct Restock;
//!
//! impl RustCommand for Restock {
//!     type Params = Params;
//!
//!     fn decide(
//!         &self,
//!         product: &DocumentState,
//!         params: Params,
//!         _caller: &Principal,
//!     ) -> Result<Vec<Emit>, Refusal> {
//!         if product.fields["status"] == "retired" {
//!             return Err(Refusal::new("product_retired", "A retired product is not restocked"));
//!         }
//!         let stock = product.fields["stock"].as_i64().unwrap_or(0);
//!         Ok(vec![
//!             Emit::new("restocked", json!({"quantity": params.quantity}))
//!                 .set("stock", stock + params.quantity),
//!         ])
//!     }
//! }
//!
//! let mut commands = RustCommands::default();
//! commands.register("petstore.product.restock", Restock);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::access::Principal;
use crate::document::DocumentState;
use crate::ids::is_name;

/// A command on one document whose decision is code; `Params` is its body, already checked
/// against the YAML's `params` and then read with serde.
pub trait RustCommand: Send + Sync + 'static {
    type Params: DeserializeOwned;

    /// Decides from the document as it stands. Deciding only decides: it must not do I/O, so
    /// a redelivered command decides the same. No events leave the document as it is.
    ///
    /// # Errors
    /// A [`Refusal`] answers `409` with its code, and nothing is appended.
    fn decide(
        &self,
        document: &DocumentState,
        params: Self::Params,
        caller: &Principal,
    ) -> Result<Vec<Emit>, Refusal>;
}

/// A command `on: collection` whose decision is code: there is no document yet, and the first
/// event it emits creates one (its `set` is the new document's fields, defaults filled in).
///
/// ```no_run
/// use herald_bus::access::Principal;
/// use herald_bus::rust_command::{CollectionCommand, Emit, Refusal, RustCommands};
/// use serde::Deserialize;
/// use serde_json::json;
///
/// #[derive(Deserialize)]
/// struct Form {
///     title: String,
/// }
///
/// /// `POST /v1/desk/ticket/file {"title": "…"}` files a ticket.
/// struct File;
///
/// impl CollectionCommand for File {
///     type Params = Form;
///
///     fn decide(&self, form: Form, caller: &Principal) -> Result<Vec<Emit>, Refusal> {
///         if form.title.trim().is_empty() {
///             return Err(Refusal::new("blank_title", "A ticket needs a title"));
///         }
///         Ok(vec![
///             Emit::new("filed", json!({"by": caller.actor_sub()})).set("title", form.title.trim()),
///         ])
///     }
/// }
///
/// let mut commands = RustCommands::default();
/// commands.register_collection("desk.ticket.file", File);
/// ```
pub trait CollectionCommand: Send + Sync + 'static {
    type Params: DeserializeOwned;

    /// Decides from the params and the caller alone, without I/O.
    ///
    /// # Errors
    /// A [`Refusal`] answers `409` with its code, and nothing is created.
    fn decide(&self, params: Self::Params, caller: &Principal) -> Result<Vec<Emit>, Refusal>;
}

/// An event a command appends: its verb (one the YAML's `emits` lists), its data (what
/// happened, e.g. `{"quantity": 5}`) and the top-level fields it sets on the document (e.g.
/// the stock that results).
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub verb: String,
    pub data: Value,
    pub set: Map<String, Value>,
}

impl Emit {
    /// The event `<app>.<doc>.<verb>` with `data`, which must be a JSON object.
    pub fn new(verb: &str, data: Value) -> Self {
        Self {
            verb: verb.to_owned(),
            data,
            set: Map::new(),
        }
    }

    /// The event also sets `field` to `value`.
    #[must_use]
    pub fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.set.insert(field.to_owned(), value.into());
        self
    }
}

/// A refusal with the app's own code (`product_retired`), answered as `409`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: &str, detail: &str) -> Self {
        Self {
            code: code.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// Why running a command's code gave no decision: the app's code is at fault, so the command is
/// rejected as an internal error and nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeFailure {
    #[error("the params do not read as the command's Params type: {0}")]
    Params(String),
    #[error("the data of `{0}` is not a JSON object")]
    DataNotObject(String),
    #[error("the code emitted `{0}`, which the command's `emits` does not list")]
    UndeclaredEvent(String),
    #[error("a command on the collection emitted no event, so no document was created")]
    NothingCreated,
    #[error(
        "the code is registered for a command on {registered}, but the command acts on {declared}"
    )]
    WrongTarget {
        registered: &'static str,
        declared: &'static str,
    },
    #[error("the command's code panicked")]
    Panicked,
    #[error("the refusal's code `{0}` does not match ^[a-z][a-z0-9_]*$")]
    RefusalCode(String),
}

/// What the registry keeps of a command: its decision over JSON params, on a document or (as
/// `None`) on the collection.
trait Decide: Send + Sync {
    fn decide_json(
        &self,
        document: Option<&DocumentState>,
        params: Value,
        caller: &Principal,
    ) -> Result<Result<Vec<Emit>, Refusal>, CodeFailure>;
}

fn read_params<P: DeserializeOwned>(params: Value) -> Result<P, CodeFailure> {
    serde_json::from_value(params).map_err(|e| CodeFailure::Params(e.to_string()))
}

/// A [`RustCommand`], kept apart from a [`CollectionCommand`] with the same `Params`.
struct OnDocument<C>(C);

impl<C: RustCommand> Decide for OnDocument<C> {
    fn decide_json(
        &self,
        document: Option<&DocumentState>,
        params: Value,
        caller: &Principal,
    ) -> Result<Result<Vec<Emit>, Refusal>, CodeFailure> {
        let document = document.ok_or(CodeFailure::WrongTarget {
            registered: "a document",
            declared: "the collection",
        })?;
        Ok(self.0.decide(document, read_params(params)?, caller))
    }
}

struct OnCollection<C>(C);

impl<C: CollectionCommand> Decide for OnCollection<C> {
    fn decide_json(
        &self,
        document: Option<&DocumentState>,
        params: Value,
        caller: &Principal,
    ) -> Result<Result<Vec<Emit>, Refusal>, CodeFailure> {
        if document.is_some() {
            return Err(CodeFailure::WrongTarget {
                registered: "the collection",
                declared: "a document",
            });
        }
        let emitted = self.0.decide(read_params(params)?, caller);
        if matches!(&emitted, Ok(events) if events.is_empty()) {
            return Err(CodeFailure::NothingCreated);
        }
        Ok(emitted)
    }
}

/// A registered command's code, as attached to its declaration.
#[derive(Clone)]
pub struct Code {
    decide: Arc<dyn Decide>,
    /// Whether it is a [`CollectionCommand`].
    pub on_collection: bool,
}

impl Code {
    /// Runs the decision (on `document`, or on the collection when `None`) and checks what it
    /// emits against `emits`; a panic in the app's code is caught and becomes a failure.
    ///
    /// # Errors
    /// [`CodeFailure`] when the code gave no usable decision.
    pub fn decide(
        &self,
        document: Option<&DocumentState>,
        params: &Map<String, Value>,
        caller: &Principal,
        emits: &[String],
    ) -> Result<Result<Vec<Emit>, Refusal>, CodeFailure> {
        let params = Value::Object(params.clone());
        let decided = catch_unwind(AssertUnwindSafe(|| {
            self.decide.decide_json(document, params, caller)
        }))
        .map_err(|_| CodeFailure::Panicked)??;
        match &decided {
            Ok(events) => {
                for event in events {
                    if !emits.contains(&event.verb) {
                        return Err(CodeFailure::UndeclaredEvent(event.verb.clone()));
                    }
                    if !event.data.is_object() {
                        return Err(CodeFailure::DataNotObject(event.verb.clone()));
                    }
                }
            }
            // Refusal codes are named like a YAML `reject.code`, so clients can match on them.
            Err(refusal) if !is_name(&refusal.code) => {
                return Err(CodeFailure::RefusalCode(refusal.code.clone()));
            }
            Err(_) => {}
        }
        Ok(decided)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(..)")
    }
}

/// The app's Rust commands by `<app>.<doc>.<command>`.
#[derive(Clone, Default)]
pub struct RustCommands {
    commands: HashMap<String, Code>,
}

impl RustCommands {
    /// Registers `command` as the code of `<app>.<doc>.<command>` (`petstore.product.restock`);
    /// a later registration of the same name replaces it.
    pub fn register(&mut self, name: &str, command: impl RustCommand) -> &mut Self {
        self.insert(name, Arc::new(OnDocument(command)), false)
    }

    /// Registers the code of a command declared `on: collection`.
    pub fn register_collection(
        &mut self,
        name: &str,
        command: impl CollectionCommand,
    ) -> &mut Self {
        self.insert(name, Arc::new(OnCollection(command)), true)
    }

    fn insert(&mut self, name: &str, decide: Arc<dyn Decide>, on_collection: bool) -> &mut Self {
        self.commands.insert(
            name.to_owned(),
            Code {
                decide,
                on_collection,
            },
        );
        self
    }

    pub fn get(&self, name: &str) -> Option<&Code> {
        self.commands.get(name)
    }

    /// Every registered name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }
}

impl fmt::Debug for RustCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.commands.keys()).finish()
    }
}
