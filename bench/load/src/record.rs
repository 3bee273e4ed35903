//! Collecting outcomes: per-kind latency histograms and status counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::LoadError;
use crate::connection::Outcome;
use crate::report::{KindReport, LatencySummary, StatusCounts};

/// Largest latency a histogram tracks exactly; longer ones are clamped to it, which is far
/// beyond any run this tool makes.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Three significant digits keep the error under 0.1 % at a few kilobytes per histogram.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty histogram of latencies in microseconds, as every figure of the harness uses.
pub fn latency_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS).map_err(LoadError::Histogram)
}

/// Figures of one request kind.
#[derive(Clone)]
struct KindStats {
    /// Latencies of 2xx responses only, so a fast 500 cannot make a server look quick.
    success: Histogram<u64>,
    /// Latencies of every other response, reported apart.
    non_success: Histogram<u64>,
    statuses: StatusCounts,
}

/// Collects the outcomes of the measured window, one entry per request kind.
#[derive(Clone)]
pub(crate) struct Recorder {
    empty: Histogram<u64>,
    kinds: HashMap<Arc<str>, KindStats>,
}

impl Recorder {
    pub(crate) fn new() -> Result<Self, LoadError> {
        let empty = latency_histogram()?;
        Ok(Self {
            empty,
            kinds: HashMap::new(),
        })
    }

    pub(crate) fn record(&mut self, kind: &Arc<str>, outcome: Outcome, latency: Duration) {
        let empty = &self.empty;
        let stats = self
            .kinds
            .entry(Arc::clone(kind))
            .or_insert_with(|| KindStats {
                success: empty.clone(),
                non_success: empty.clone(),
                statuses: StatusCounts::default(),
            });
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        match outcome {
            Outcome::Response(status) => {
                stats.statuses.count(status);
                if status.is_success() {
                    stats.success.saturating_record(micros);
                } else {
                    stats.non_success.saturating_record(micros);
                }
            }
            Outcome::TransportError => stats.statuses.transport_errors += 1,
        }
    }

    /// Adds `other` into `self`; each connection records on its own and they are merged
    /// at the end, so recording never contends on a lock in the closed loop.
    pub(crate) fn merge(&mut self, other: Self) {
        for (kind, theirs) in other.kinds {
            match self.kinds.get_mut(&kind) {
                Some(ours) => ours.add(&theirs),
                None => {
                    self.kinds.insert(kind, theirs);
                }
            }
        }
    }

    /// Per-kind reports sorted by kind, and the total over all kinds.
    pub(crate) fn into_reports(self, window: Duration) -> (KindReport, Vec<KindReport>) {
        let mut total = KindStats {
            success: self.empty.clone(),
            non_success: self.empty.clone(),
            statuses: StatusCounts::default(),
        };
        let mut kinds: Vec<KindReport> = self
            .kinds
            .into_iter()
            .map(|(kind, stats)| {
                total.add(&stats);
                stats.report(&kind, window)
            })
            .collect();
        kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
        (total.report("total", window), kinds)
    }
}

impl KindStats {
    fn add(&mut self, other: &Self) {
        // Both sides are clones of one empty histogram, so their bounds match and adding
        // cannot fail.
        let _ = self.success.add(&other.success);
        let _ = self.non_success.add(&other.non_success);
        self.statuses.add(&other.statuses);
    }

    fn report(&self, kind: &str, window: Duration) -> KindReport {
        let count = self.statuses.total();
        #[allow(clippy::cast_precision_loss)] // request counts stay far below 2^52
        let requests_per_sec = if window.is_zero() {
            0.0
        } else {
            count as f64 / window.as_secs_f64()
        };
        KindReport {
            kind: kind.to_owned(),
            count,
            requests_per_sec,
            statuses: self.statuses.clone(),
            success_latency: LatencySummary::of(&self.success),
            non_success_latency: LatencySummary::of(&self.non_success),
        }
    }
}
