//! Herald under faults, Jepsen-style: real processes, real faults, and a checker.
//!
//! Each scenario starts Herald's roles as separate processes (`herald serve --role …`) on its
//! own database and NATS prefix, on a Postgres and NATS this run starts for itself (so it may
//! crash and restart them), drives creates from several clients, injects its faults, and then
//! hands what the clients saw to the checker, which compares it with the event log.
//!
//! # Layout
//!
//! - [`cli`]: the command line and the scenarios.
//! - [`services`]: the run's own Postgres and NATS (one server or a cluster).
//! - [`world`]: one scenario's Herald: database, apps and processes by role.
//! - [`writes`]: the clients, their retries and what they saw.
//! - [`check`]: the checker: lost, duplicated, undecided, task runs, relay, view = rebuild.
//! - [`kills`]: F1, processes killed at random moments.
//! - [`outages`]: F2, NATS and Postgres restarts; F2b, a cluster node lost.
//! - [`parked`]: F5, events a view cannot read, parked, repaired and re-applied.
//! - [`hostile`]: clients that hold connections without finishing requests or reading answers.
//! - [`soak`]: a long run at half the create rate, watching memory.
//! - [`scale`]: not a fault: creates per second with more api and handler processes.
//! - [`run`]: one run, scenario by scenario; [`table`]: the rows.

pub mod check;
pub mod cli;
pub mod hostile;
pub mod kills;
pub mod outages;
pub mod parked;
pub mod run;
pub mod scale;
pub mod services;
pub mod soak;
pub mod table;
pub mod world;
pub mod writes;
