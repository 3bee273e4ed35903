//! The test kit for Herald apps, the one Herald's own tests use:
//!
//! - [`decision`]: given/when/then for a command's decision, with no service running:
//!   `given(events).when(caller, command, body).then(events)` or `.then_refused(code)`.
//! - [`TestApp`]: an isolated Herald on real PostgreSQL and NATS JetStream, every role in the
//!   test's process, with its own database and stream prefix.
//! - [`Client`]: calls as an identity: `app.as_staff("sam")`, `app.as_user("uma")`,
//!   `.in_tenant("other")`, `app.anonymous()`.
//! - [`generate`]: random valid documents and params, from the YAML.
//! - [`services`]: the test database server and NATS: a database per test from a migrated
//!   template, and clean-up of what failed tests left behind.
//! - [`sse`]: a small Server-Sent Events reader, for live streams.
//!
//! ```no_run
//! use herald_testkit::{Options, TestApp, json};
//!
//! # async fn test() {
//! let app = TestApp::spawn_with(Options::for_app(herald_cli::App::new())).await;
//! let staff = app.as_staff("sam");
//! let product = staff.create("petstore/product", &serde_json::json!({"name": "Kite", "price": 3})).await;
//! let id = product["id"].as_str().unwrap_or_default();
//! let published = staff.run("petstore/product", id, "publish", &serde_json::json!({})).await;
//! assert_eq!(json(published).await["status"], "published");
//! app.stop_and_clean().await;
//! # }
//! ```

pub mod client;
pub mod decision;
pub mod generate;
mod harness;
pub mod services;
pub mod sse;

pub use client::{Client, Identity};
pub use harness::*;
pub use services::{admin_execute, create_test_database, database_url};
