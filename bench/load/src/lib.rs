//! Load generator of the Herald benchmark harness: drives Herald and the direct baseline
//! with identical traffic and reports throughput and latency.
//!
//! # Layout
//!
//! - [`target`]: the server under load, refused unless it is on the loopback interface.
//! - [`source`]: [`RequestSource`], which the harness implements per workload, and the
//!   built-in [`FixedGet`] and [`TemplatePost`].
//! - `run`: [`run_load`] paces requests in a closed loop (fixed concurrency) or an open
//!   loop (fixed arrival rate) over a warm-up and a measured window.
//! - `connection`: one keep-alive HTTP/1.1 connection per sender.
//! - `record` and [`report`]: per-kind histograms, turned into a serializable [`Report`].
//! - [`cli`]: the arguments of the `herald-load` binary.
//!
//! A run flows as: `run_load` asks the source for the next request (a *kind* label,
//! method, path, headers, JSON body), sends it on a connection, and records the outcome
//! under its kind when it was due inside the measured window.
//!
//! # Why hyper's connection API rather than a pooled client
//!
//! Each sender owns a bare `hyper::client::conn::http1` connection. There is no pool to
//! check out from, no per-request URL parsing or proxy and redirect logic as in `reqwest`,
//! so the generator adds as little as possible to what it measures, and a latency is
//! always one request's round trip on one connection: the open loop decides itself when a
//! request waits for a free connection, and charges that wait to the server.
//!
//! # Why latency counts from the schedule in the open loop
//!
//! A generator that waits for a slow answer before sending the next request silently
//! stops sending while the server stalls, and the stall hides in a handful of samples
//! ("coordinated omission"). The open loop keeps its schedule and measures each request
//! from when it was due, so queueing delay shows in the percentiles. The price is the
//! timer's resolution: tokio wakes on millisecond ticks, so open-loop latencies carry up
//! to about 1 ms of schedule slack; compare sub-millisecond figures in the closed loop.

pub mod cli;
mod connection;
mod error;
mod record;
pub mod report;
mod run;
pub mod source;
pub mod target;

pub use error::LoadError;
pub use record::latency_histogram;
pub use report::{KindReport, LatencySummary, ModeReport, Report, StatusCounts};
pub use run::{LoadConfig, Mode, run_load};
pub use source::{FixedGet, RequestSource, RequestSpec, TemplatePost, fill_template, parse_header};
pub use target::Target;
