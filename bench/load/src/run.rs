//! Driving traffic: the closed loop (fixed concurrency) and the open loop (fixed rate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::connection::Connection;
use crate::record::Recorder;
use crate::report::{ModeReport, Report};
use crate::{LoadError, RequestSource, Target};

/// How far behind its schedule the open loop may send a request before it counts as late:
/// the timer wakes on millisecond ticks, so up to about 1 ms is the clock, not the server.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// What to run against which target.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    pub mode: Mode,
    /// Traffic sent before the measured window, to warm caches, connection pools and lazily
    /// initialized code paths; it appears in no figure.
    pub warmup: Duration,
    /// Length of the measured window; the run lasts `warmup + duration`.
    pub duration: Duration,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `connections` tasks, each sending its next request as soon as the previous one is
    /// answered: measures the throughput the server sustains at that concurrency.
    Closed { connections: usize },
    /// `rate` requests per second on a fixed schedule, sent over at most `max_connections`
    /// connections; latency counts from the scheduled time, so a stalled server is charged
    /// for every request it delayed (no coordinated omission).
    Open { rate: f64, max_connections: usize },
}

/// Runs `config` to completion and reports the measured window.
///
/// Failures of single requests are counted in the report; only an invalid configuration
/// is an error.
pub async fn run_load(
    config: &LoadConfig,
    source: Arc<dyn RequestSource>,
) -> Result<Report, LoadError> {
    validate(config)?;
    let recorder = Recorder::new()?;
    let start = Instant::now();
    let window = Window {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let (total, kinds, mode) = match config.mode {
        Mode::Closed { connections } => {
            let recorder =
                run_closed(&config.target, connections, source, recorder, window).await?;
            let (total, kinds) = recorder.into_reports(config.duration);
            (total, kinds, ModeReport::Closed { connections })
        }
        Mode::Open {
            rate,
            max_connections,
        } => {
            let open = OpenLoop {
                target: &config.target,
                rate,
                max_connections,
                start,
                window,
            };
            let (recorder, late) = open.run(source, recorder).await;
            let (total, kinds) = recorder.into_reports(config.duration);
            let scheduled = count_scheduled(rate, config.warmup, config.warmup + config.duration);
            let unfinished = scheduled.saturating_sub(total.count);
            let mode = ModeReport::Open {
                rate,
                max_connections,
                scheduled,
                late,
                unfinished,
            };
            (total, kinds, mode)
        }
    };
    Ok(Report {
        mode,
        warmup_secs: config.warmup.as_secs_f64(),
        duration_secs: config.duration.as_secs_f64(),
        total,
        kinds,
    })
}

fn validate(config: &LoadConfig) -> Result<(), LoadError> {
    if config.duration.is_zero() {
        return Err(LoadError::InvalidConfig("the duration must be positive"));
    }
    match config.mode {
        Mode::Closed { connections: 0 } => Err(LoadError::InvalidConfig(
            "at least one connection is needed",
        )),
        Mode::Open {
            max_connections: 0, ..
        } => Err(LoadError::InvalidConfig(
            "at least one connection is needed",
        )),
        Mode::Open { rate, .. } if !(rate.is_finite() && rate > 0.0) => Err(
            LoadError::InvalidConfig("the rate must be a positive number of requests per second"),
        ),
        _ => Ok(()),
    }
}

/// The measured part of a run: `[measure_from, end)`.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

async fn run_closed(
    target: &Target,
    connections: usize,
    source: Arc<dyn RequestSource>,
    recorder: Recorder,
    window: Window,
) -> Result<Recorder, LoadError> {
    let sequence = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for index in 0..connections {
        let mut local = recorder.clone();
        let mut connection = Connection::new(target.clone());
        let source = Arc::clone(&source);
        let sequence = Arc::clone(&sequence);
        tasks.spawn(async move {
            loop {
                let spec = source.request(index, sequence.fetch_add(1, Ordering::Relaxed));
                let kind = Arc::clone(&spec.kind);
                let sent = Instant::now();
                if sent >= window.end {
                    break;
                }
                // A request still unanswered at the end is abandoned: it belongs to no window.
                let outcome = tokio::select! {
                    outcome = connection.send(spec) => outcome,
                    () = sleep_until(window.end) => break,
                };
                if sent >= window.measure_from {
                    local.record(&kind, outcome, sent.elapsed());
                }
            }
            local
        });
    }
    let mut merged = recorder;
    while let Some(local) = tasks.join_next().await {
        merged.merge(local.map_err(LoadError::TaskFailed)?);
    }
    Ok(merged)
}

struct OpenLoop<'a> {
    target: &'a Target,
    rate: f64,
    max_connections: usize,
    start: Instant,
    window: Window,
}

impl OpenLoop<'_> {
    /// Dispatches each request at its scheduled time on an idle connection, opening one
    /// (up to the maximum) when none is idle, or else waiting for one; returns the
    /// measurements and how many measured requests went out late.
    async fn run(&self, source: Arc<dyn RequestSource>, recorder: Recorder) -> (Recorder, u64) {
        let shared = Arc::new(Mutex::new(recorder));
        let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<(usize, Connection)>();
        let mut opened = 0;
        let mut late = 0;
        let mut in_flight = JoinSet::new();
        for sequence in 0_u64.. {
            let scheduled = self.start + offset(sequence, self.rate);
            if scheduled >= self.window.end {
                break;
            }
            sleep_until(scheduled).await;
            while in_flight.try_join_next().is_some() {}
            let mut waited = false;
            let (index, mut connection) = match idle_rx.try_recv() {
                Ok(idle) => idle,
                Err(_) if opened < self.max_connections => {
                    opened += 1;
                    (opened - 1, Connection::new(self.target.clone()))
                }
                Err(_) => {
                    waited = true;
                    tokio::select! {
                        idle = idle_rx.recv() => match idle {
                            Some(idle) => idle,
                            None => break,
                        },
                        () = sleep_until(self.window.end) => break,
                    }
                }
            };
            let measured = scheduled >= self.window.measure_from;
            if measured && (waited || scheduled.elapsed() > TIMER_SLACK) {
                late += 1;
            }
            let spec = source.request(index, sequence);
            let shared = Arc::clone(&shared);
            let idle_tx = idle_tx.clone();
            in_flight.spawn(async move {
                let kind = Arc::clone(&spec.kind);
                let outcome = connection.send(spec).await;
                // From the schedule, not from the send: time spent waiting for a
                // connection is queueing delay the server caused.
                let latency = scheduled.elapsed();
                if measured {
                    shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(&kind, outcome, latency);
                }
                // The run may be over and the receiver gone; the connection just closes.
                let _ = idle_tx.send((index, connection));
            });
        }
        sleep_until(self.window.end).await;
        // Whatever is still in flight is abandoned and shows up as `unfinished`.
        in_flight.shutdown().await;
        let recorder = Arc::try_unwrap(shared).map_or_else(
            |shared| {
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            },
            |mutex| mutex.into_inner().unwrap_or_else(PoisonError::into_inner),
        );
        (recorder, late)
    }
}

/// When request `sequence` is due, relative to the start of the run.
fn offset(sequence: u64, rate: f64) -> Duration {
    #[allow(clippy::cast_precision_loss)] // exact for any sequence a run can reach
    let secs = sequence as f64 / rate;
    Duration::from_secs_f64(secs)
}

/// How many requests of the schedule fall within `[from, to)`.
fn count_scheduled(rate: f64, from: Duration, to: Duration) -> u64 {
    (0_u64..)
        .map(|sequence| offset(sequence, rate))
        .take_while(|due| *due < to)
        .filter(|due| *due >= from)
        .fold(0, |count, _| count + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_counts_only_the_measured_window() {
        let counted = count_scheduled(
            200.0,
            Duration::from_millis(500),
            Duration::from_millis(1500),
        );
        assert_eq!(counted, 200);
    }
}
