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
        let mut seconds = BTreeMap::new();
        for (name, pid) in &self.processes {
            // A server of several processes (uvicorn's workers) counts with its children.
            let family: f64 = std::iter::once(*pid)
                .chain(children_of(*pid))
                .map(|pid| process_seconds(pid).unwrap_or(0.0))
                .sum();
            seconds.insert(*name, family);
        }
        seconds.insert(
            "harness",
            process_seconds(std::process::id()).unwrap_or(0.0),
        );
        let (postgres, nats) = named_seconds();
        seconds.insert("postgres", postgres);
        seconds.insert("nats", nats);
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

/// User plus system CPU seconds of a process (its threads included).
fn process_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds of every `postgres` and every `nats-server` process on the machine.
/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the command in parentheses: state, then the parent's id.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn named_seconds() -> (f64, f64) {
    let (mut postgres, mut nats) = (0.0, 0.0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        match name.trim() {
            "postgres" => postgres += process_seconds(pid).unwrap_or(0.0),
            "nats-server" => nats += process_seconds(pid).unwrap_or(0.0),
            _ => {}
        }
    }
    (postgres, nats)
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
        assert!(process_seconds(std::process::id()).is_some_and(|s| s > 0.0));
    }
}
