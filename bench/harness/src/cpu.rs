//! CPU time per component during a workload, from `/proc` (Linux): the server under test,
//! every Postgres process, every NATS server process, and the harness itself (the load
//! generator). On a machine whose cores are all busy, throughput is the cores divided by the
//! CPU one request costs, so these figures say what bounds each ratio.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// The components measured, by name, with the processes they are found by.
#[derive(Debug, Clone, Default)]
pub struct Components {
    /// `(component, pid)` for processes the harness started.
    pub processes: Vec<(&'static str, u32)>,
}

/// CPU seconds per component, at one moment.
#[derive(Debug, Clone)]
pub struct Reading {
    at: Instant,
    seconds: BTreeMap<&'static str, f64>,
}

/// CPU used between two readings: per component, in milliseconds per request.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub wall_seconds: f64,
    /// Cores busy on average over the interval, per component.
    pub cores: BTreeMap<&'static str, f64>,
    /// CPU milliseconds per request, per component.
    pub ms_per_request: BTreeMap<&'static str, f64>,
}

impl Components {
    pub fn read(&self) -> Reading {
        // One pass over /proc for every figure of the reading.
        let processes = processes();
        let sum = |selects: &dyn Fn(&Process) -> bool| -> f64 {
            processes
                .iter()
                .filter(|p| selects(p))
                .map(|p| p.seconds)
                .sum()
        };
        let mut seconds = BTreeMap::new();
        for (name, pid) in &self.processes {
            // A server of several processes (uvicorn's workers) counts with its children.
            let family = sum(&|p| p.pid == *pid || p.parent == *pid);
            seconds.insert(*name, family);
        }
        let harness = std::process::id();
        seconds.insert("harness", sum(&|p| p.pid == harness));
        seconds.insert("postgres", sum(&|p| p.command == "postgres"));
        seconds.insert("nats", sum(&|p| p.command == "nats-server"));
        Reading {
            at: Instant::now(),
            seconds,
        }
    }
}

impl Reading {
    /// What was used since `self`, spread over `requests`.
    pub fn usage_until(&self, later: &Reading, requests: u64) -> Usage {
        let wall_seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut cores = BTreeMap::new();
        let mut ms_per_request = BTreeMap::new();
        #[allow(clippy::cast_precision_loss)] // request counts stay far below 2^52
        let requests = requests.max(1) as f64;
        for (name, after) in &later.seconds {
            let used = (after - self.seconds.get(name).copied().unwrap_or(0.0)).max(0.0);
            cores.insert(*name, used / wall_seconds);
            ms_per_request.insert(*name, used * 1000.0 / requests);
        }
        Usage {
            wall_seconds,
            cores,
            ms_per_request,
        }
    }
}

impl Usage {
    /// CPU milliseconds per request of the named components together.
    pub fn ms_of(&self, names: &[&str]) -> f64 {
        names
            .iter()
            .filter_map(|name| self.ms_per_request.get(name))
            .sum()
    }
}

/// One process as `/proc/<pid>/stat` shows it.
struct Process {
    pid: u32,
    parent: u32,
    command: String,
    /// User plus system CPU seconds (its threads included).
    seconds: f64,
}

/// Every process of the machine.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

fn process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command is in parentheses and may hold spaces: count fields after it.
    let (head, rest) = stat.rsplit_once(')')?;
    let command = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state, parent; utime and stime are fields 14 and 15 of the line.
    let parent = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Process {
        pid,
        parent,
        command,
        seconds: (utime + stime) / TICKS_PER_SECOND,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_some_cpu() {
        let start = std::time::Instant::now();
        let mut spin = 0_u64;
        while start.elapsed().as_millis() < 50 {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(process(std::process::id()).is_some_and(|p| p.seconds > 0.0));
    }
}
