//! The write side of Herald: the roles that turn accepted commands into events and events into
//! messages.
//!
//! # Layout
//!
//! - [`handler`]: the command handler. It pulls commands from `HERALD_COMMANDS`, loads the
//!   document's stream, asks `herald_bus::decide` for the events, appends them with the
//!   command's outcome in one transaction, and replies to the waiting api.
//! - [`relay`]: publishes every committed event to `HERALD_EVENTS`, in log order, exactly once,
//!   for subscribers and the task triggers.
//!
//! A command flows: api → JetStream → [`handler`] → event store → [`relay`] → JetStream.

pub mod handler;
pub mod relay;

pub use handler::{Handler, run};
