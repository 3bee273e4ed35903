//! What the workloads of a run share: its scale and tenants, the servers under test, and the
//! results they add to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald_load::Mode;
use serde_json::Value;

use crate::cli::RunArgs;
use crate::cpu::Components;
use crate::setup::{BenchDatabase, HeraldEnv, Process};
use crate::sources::Api;
use crate::table::{Peer, Row};

/// Tenants: the seeded million for lists, one for writes, one for the fan-out's events.
pub(crate) const LIST_TENANT: &str = "bench";
pub(crate) const WRITE_TENANT: &str = "bench-w";
pub(crate) const FANOUT_TENANT: &str = "bench-sse";
pub(crate) const PROJECTION: &str = "petstore.product";
/// W2 spreads updates over this many documents, and piles them on `HOT_DOCUMENTS`.
pub(crate) const SPREAD_DOCUMENTS: i64 = 10_000;
pub(crate) const HOT_DOCUMENTS: usize = 10;

/// The size of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scale {
    pub documents: u64,
    pub warmup: Duration,
    pub window: Duration,
    pub connections: usize,
    pub subscribers: usize,
    pub fanout_rate: f64,
    /// The processes whose CPU each load run reads; set once the servers run.
    #[serde(skip)]
    pub cpu: Components,
    /// The run's database, which each load run waits on until Herald has settled.
    #[serde(skip)]
    pub database_url: String,
}

impl Scale {
    pub(crate) fn of(args: &RunArgs) -> Self {
        let (documents, warmup, window) = if args.quick {
            (100_000, Duration::from_secs(2), Duration::from_secs(5))
        } else {
            (1_000_000, Duration::from_secs(5), Duration::from_secs(15))
        };
        Self {
            documents: args.documents.unwrap_or(documents),
            warmup,
            window: args.window.unwrap_or(window),
            connections: 64,
            subscribers: 1_000,
            fanout_rate: 500.0,
            cpu: Components::default(),
            database_url: String::new(),
        }
    }
}

pub(crate) fn say(line: &str) {
    eprintln!("bench: {line}");
}

/// The two servers under test.
pub(crate) struct Servers {
    pub(crate) herald: Process,
    pub(crate) herald_addr: SocketAddr,
    pub(crate) baseline: Process,
    pub(crate) baseline_addr: SocketAddr,
    /// The FastAPI peer (`--peers`), serving the baseline's routes.
    pub(crate) peer: Option<(Process, SocketAddr)>,
}

/// What the workloads share once both servers run and their CPU is being read.
pub(crate) struct Bench<'a> {
    pub(crate) servers: &'a Servers,
    pub(crate) scale: &'a Scale,
    pub(crate) db: &'a BenchDatabase,
    pub(crate) env: &'a HeraldEnv,
    pub(crate) herald_pid: u32,
    pub(crate) baseline_pid: u32,
    /// The write tenant on each server: W1, W2, W3, W5 and the soak all use it.
    pub(crate) herald_writes: Api,
    pub(crate) direct_writes: Api,
    /// Each connection sends its next request once the last is answered.
    pub(crate) closed: Mode,
}

/// The table's rows in the order the workloads produce them, and the raw figures behind
/// them by workload.
#[derive(Default)]
pub(crate) struct Results {
    pub(crate) rows: Vec<Row>,
    /// The FastAPI peer's figures, by row index, when the run has the peer.
    pub(crate) peers: BTreeMap<usize, Peer>,
    pub(crate) raw: serde_json::Map<String, Value>,
}

impl Results {
    pub(crate) fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// A row, with the peer's figures for the same workload when there are some.
    pub(crate) fn push_with_peer(&mut self, row: Row, peer: Option<Peer>) {
        if let Some(peer) = peer {
            self.peers.insert(self.rows.len(), peer);
        }
        self.rows.push(row);
    }

    pub(crate) fn record(&mut self, workload: &str, raw: Value) {
        self.raw.insert(workload.into(), raw);
    }
}
