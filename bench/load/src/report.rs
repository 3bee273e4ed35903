//! The result of a run: a serde-serializable `Report` and its one-line summary.

use hdrhistogram::Histogram;
use hyper::http::StatusCode;
use serde::Serialize;

/// Everything measured in one run, over the window after the warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: ModeReport,
    pub warmup_secs: f64,
    /// Length of the measured window that `requests_per_sec` is computed over.
    pub duration_secs: f64,
    /// All kinds together.
    pub total: KindReport,
    /// One entry per request kind, sorted by kind.
    pub kinds: Vec<KindReport>,
}

/// How traffic was generated, with the figures only the open loop has.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ModeReport {
    Closed {
        connections: usize,
    },
    Open {
        rate: f64,
        max_connections: usize,
        /// Requests scheduled in the measured window.
        scheduled: u64,
        /// Measured requests sent more than 1 ms after their scheduled time, because every
        /// connection was busy or the generator itself fell behind.
        late: u64,
        /// Measured requests not answered by the end of the run (still queued or in
        /// flight); their latency is unknown, so a large number means the figures are
        /// optimistic.
        unfinished: u64,
    },
}

/// Counts and latencies of one request kind (or of all kinds, as `total`).
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: String,
    /// Responses of any status plus transport errors.
    pub count: u64,
    pub requests_per_sec: f64,
    pub statuses: StatusCounts,
    /// Latency of 2xx responses.
    pub success_latency: LatencySummary,
    /// Latency of every other response, kept apart so errors do not flatter the figures.
    pub non_success_latency: LatencySummary,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// The percentiles of a histogram of microseconds.
    #[must_use]
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p90_us: histogram.value_at_quantile(0.9),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// Responses per status class, and requests that got no response at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
    pub transport_errors: u64,
}

impl StatusCounts {
    pub(crate) fn count(&mut self, status: StatusCode) {
        let class = match status.as_u16() / 100 {
            2 => &mut self.success,
            3 => &mut self.redirection,
            4 => &mut self.client_error,
            5 => &mut self.server_error,
            _ => &mut self.informational,
        };
        *class += 1;
    }

    pub(crate) fn add(&mut self, other: &Self) {
        self.informational += other.informational;
        self.success += other.success;
        self.redirection += other.redirection;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
        self.transport_errors += other.transport_errors;
    }

    #[must_use]
    pub fn total(&self) -> u64 {
        self.informational
            + self.success
            + self.redirection
            + self.client_error
            + self.server_error
            + self.transport_errors
    }
}

impl Report {
    /// One human-readable line, e.g. for a terminal or a log.
    #[must_use]
    pub fn summary_line(&self) -> String {
        let t = &self.total;
        let s = &t.statuses;
        let ms = |us: u64| {
            #[allow(clippy::cast_precision_loss)] // microsecond latencies fit f64 exactly
            let ms = us as f64 / 1000.0;
            ms
        };
        let mode = match &self.mode {
            ModeReport::Closed { connections } => format!("closed {connections} conn"),
            ModeReport::Open {
                rate,
                late,
                unfinished,
                ..
            } => format!("open {rate} req/s, {late} late, {unfinished} unfinished"),
        };
        format!(
            "{mode}: {} req in {:.1}s = {:.0} req/s; 2xx p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms \
             p99.9 {:.2}ms max {:.2}ms; 2xx {} 3xx {} 4xx {} 5xx {} transport errors {}",
            t.count,
            self.duration_secs,
            t.requests_per_sec,
            ms(t.success_latency.p50_us),
            ms(t.success_latency.p90_us),
            ms(t.success_latency.p99_us),
            ms(t.success_latency.p999_us),
            ms(t.success_latency.max_us),
            s.success,
            s.redirection,
            s.client_error,
            s.server_error,
            s.transport_errors,
        )
    }
}
