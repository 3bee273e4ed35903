//! Commands decided by Rust code (`kind: rust` in a document's YAML). The YAML keeps what the
//! api needs before any code runs — the params, who may run the command, the event it emits —
//! and the app registers the decision: from the document and the typed params, the event to
//! append (its data and the fields it sets) or a refusal with a code of its own.
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
//!     ) -> Result<Emit, Refusal> {
//!         if product.fields["status"] == "retired" {
//!             return Err(Refusal::new("product_retired", "A retired product is not restocked"));
//!         }
//!         let stock = product.fields["stock"].as_i64().unwrap_or(0);
//!         Ok(Emit::new(json!({"quantity": params.quantity}))
//!             .set("stock", stock + params.quantity))
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

/// A command whose decision is code; `Params` is its body, already checked against the YAML's
/// `params` and then read with serde.
pub trait RustCommand: Send + Sync + 'static {
    type Params: DeserializeOwned;

    /// Decides from the document as it stands. Deciding only decides: it must not do I/O, so
    /// a redelivered command decides the same.
    ///
    /// # Errors
    /// A [`Refusal`] answers `409` with its code, and nothing is appended.
    fn decide(
        &self,
        document: &DocumentState,
        params: Self::Params,
        caller: &Principal,
    ) -> Result<Emit, Refusal>;
}

/// The event a command appends: its data (what happened, e.g. `{"quantity": 5}`) and the
/// top-level fields it sets on the document (e.g. the stock that results).
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub data: Value,
    pub set: Map<String, Value>,
}

impl Emit {
    /// An event with `data`, which must be a JSON object.
    pub fn new(data: Value) -> Self {
        Self {
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
    #[error("the event's data is not a JSON object")]
    DataNotObject,
    #[error("the command's code panicked")]
    Panicked,
    #[error("the refusal's code `{0}` does not match ^[a-z][a-z0-9_]*$")]
    RefusalCode(String),
}

/// What the registry keeps of a command: its decision over JSON params.
trait Decide: Send + Sync {
    fn decide_json(
        &self,
        document: &DocumentState,
        params: &Map<String, Value>,
        caller: &Principal,
    ) -> Result<Result<Emit, Refusal>, CodeFailure>;
}

impl<C: RustCommand> Decide for C {
    fn decide_json(
        &self,
        document: &DocumentState,
        params: &Map<String, Value>,
        caller: &Principal,
    ) -> Result<Result<Emit, Refusal>, CodeFailure> {
        let params = serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| CodeFailure::Params(e.to_string()))?;
        Ok(self.decide(document, params, caller))
    }
}

/// A registered command's code, as attached to its declaration.
#[derive(Clone)]
pub struct Code(Arc<dyn Decide>);

impl Code {
    /// Runs the decision; a panic in the app's code is caught and becomes a failure.
    ///
    /// # Errors
    /// [`CodeFailure`] when the code gave no usable decision.
    pub fn decide(
        &self,
        document: &DocumentState,
        params: &Map<String, Value>,
        caller: &Principal,
    ) -> Result<Result<Emit, Refusal>, CodeFailure> {
        let decided = catch_unwind(AssertUnwindSafe(|| {
            self.0.decide_json(document, params, caller)
        }))
        .map_err(|_| CodeFailure::Panicked)??;
        // Refusal codes are named like a YAML `reject.code`, so clients can match on them.
        match &decided {
            Ok(emit) if !emit.data.is_object() => Err(CodeFailure::DataNotObject),
            Err(refusal) if !is_name(&refusal.code) => {
                Err(CodeFailure::RefusalCode(refusal.code.clone()))
            }
            _ => Ok(decided),
        }
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
        self.commands
            .insert(name.to_owned(), Code(Arc::new(command)));
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
