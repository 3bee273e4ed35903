//! The Herald benchmark harness: one command that measures Herald against a direct
//! axum + tokio-postgres baseline on the same machine, in the same run, and prints one table.
//!
//! # Layout
//!
//! - [`cli`]: `herald-bench run` (everything) and `herald-bench baseline` (the baseline server).
//! - [`setup`]: the run's own database, NATS prefix and apps folder, and the server processes.
//! - [`baseline`]: the direct baseline, the "physical limit" of HTTP + Postgres here.
//! - [`sources`]: the requests of each workload, identical for both servers.
//! - [`context`]: what the workloads share: the scale, tenants, servers and results.
//! - [`cpu`]: CPU time per component (server, Postgres, NATS, harness) over each load run.
//! - [`measured`]: one load run with the CPU it cost, and the row comparing the two servers.
//! - [`database`]: the harness's queries: waiting for Herald to settle, the documents to target.
//! - [`rebuild`]: W6, the first build of the seeded view and its rebuild on request.
//! - [`writes`]: W1 creates and W2 updates, spread and hot.
//! - [`lag`]: W5, commit → view visibility, sampled from the view's checkpoint.
//! - [`reads`]: W3 reads by id and W4 lists.
//! - [`fanout`]: W7, Server-Sent Events subscribers counting and timing deliveries.
//! - [`memory`]: W8, each server's memory idle and under W1, and the optional soak.
//! - [`rss`]: a process's memory, sampled while a workload runs.
//! - [`run`]: one run start to end: setup, then the workloads in the table's order.
//! - [`table`]: the rows as Markdown and JSON.
//! - [`hostile`]: `herald-bench hostile`, stalled connections from one address against a running
//!   Herald, and a normal client's latency on another.
//!
//! A run flows as: create a database and migrate it with `herald migrate`, seed the listing
//! documents straight into the event log, start the baseline and `herald serve` as separate
//! processes, let Herald's projector build the seeded view (W6), then drive both servers with
//! the `herald-load` generator workload by workload, and write the table and raw reports under
//! `results/bench/<time>/`.

pub mod baseline;
pub mod cli;
pub mod context;
pub mod cpu;
pub mod database;
pub mod fanout;
pub mod hostile;
pub mod lag;
pub mod measured;
pub mod memory;
pub mod reads;
pub mod rebuild;
pub mod rss;
pub mod run;
pub mod setup;
pub mod sources;
pub mod table;
pub mod writes;
