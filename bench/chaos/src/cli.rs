//! The command line of `herald-chaos`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "herald-chaos",
    version,
    about = "Kill and restart Herald's processes and services under writes, and check that nothing acknowledged is lost"
)]
pub struct RunArgs {
    /// The Herald binary to run (`herald serve --role …`); it must know the petstore's Rust
    /// command, as the example's binary does.
    #[arg(long)]
    pub herald: PathBuf,
    /// The directory of Postgres's `initdb` and `postgres`.
    #[arg(long)]
    pub pg_bin: PathBuf,
    #[arg(long, default_value = "nats-server")]
    pub nats_server: PathBuf,
    /// Shorter scenarios (what the test suite runs).
    #[arg(long)]
    pub short: bool,
    /// Only these scenarios (comma-separated); all but `scale` by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Where each run writes its folder (table, JSON, process logs).
    #[arg(long, default_value = "results/chaos")]
    pub out: PathBuf,
    /// Keep the servers' data folders.
    #[arg(long)]
    pub keep: bool,
}

impl RunArgs {
    pub fn scenarios(&self) -> Vec<Scenario> {
        if self.only.is_empty() {
            Scenario::value_variants()
                .iter()
                .copied()
                .filter(|s| *s != Scenario::Scale)
                .collect()
        } else {
            self.only.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    F1,
    F2,
    F2b,
    F5,
    Hostile,
    Soak,
    /// Not a fault: creates per second with more api and handler processes (run on its own).
    Scale,
}

impl Scenario {
    pub fn id(self) -> &'static str {
        match self {
            Scenario::F1 => "F1",
            Scenario::F2 => "F2",
            Scenario::F2b => "F2b",
            Scenario::F5 => "F5",
            Scenario::Hostile => "H",
            Scenario::Soak => "S",
            Scenario::Scale => "scale",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Scenario::F1 => {
                "SIGKILL api, handler, projector, relay and worker processes, each restarted"
            }
            Scenario::F2 => "NATS restarted, then Postgres crashed and restarted",
            Scenario::F2b => "a node of a 3-node NATS cluster (R3 streams) killed, then back",
            Scenario::F5 => "events a view cannot read are parked, repaired and re-applied",
            Scenario::Hostile => {
                "idle keep-alive, slow-header, slow-body and non-reading SSE clients"
            }
            Scenario::Soak => "writes at half the create rate, all roles",
            Scenario::Scale => "creates flat out with 1 or 2 api and 1, 2 or 4 handler processes",
        }
    }
}
