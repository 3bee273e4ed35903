//! The results: one row per workload figure, printed as a Markdown table and written, with
//! every raw report, as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use herald_load::{KindReport, LatencySummary, Report};
use serde::Serialize;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Reported for context; it has no target of its own.
    Info,
}

impl Verdict {
    pub fn of(passed: bool) -> Self {
        if passed { Self::Pass } else { Self::Fail }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "**FAIL**",
            Self::Info => "—",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: &'static str,
    pub workload: String,
    pub herald: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub verdict: Verdict,
}

/// A peer's figures for one row: what the framework a team would pick instead did on the same
/// workload, and Herald's throughput as a multiple of it.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub figures: String,
    pub ratio: f64,
}

/// Renders the rows as a Markdown table; with peers (by row index), two more columns.
pub fn markdown(rows: &[Row], peers: &BTreeMap<usize, Peer>) -> String {
    let with_peers = !peers.is_empty();
    let mut out = String::from("| id | workload | Herald | direct baseline | ratio |");
    out.push_str(if with_peers {
        " FastAPI | × FastAPI |"
    } else {
        ""
    });
    out.push_str(" target | result |\n|---|---|---|---|---|");
    out.push_str(if with_peers { "---|---|" } else { "" });
    out.push_str("---|---|\n");
    for (index, row) in rows.iter().enumerate() {
        let ratio = row
            .ratio
            .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
        let baseline = if row.baseline.is_empty() {
            "—"
        } else {
            &row.baseline
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {baseline} | {ratio} |",
            row.id, row.workload, row.herald
        );
        if with_peers {
            match peers.get(&index) {
                Some(peer) => {
                    let _ = write!(out, " {} | {:.2} |", peer.figures, peer.ratio);
                }
                None => out.push_str(" — | — |"),
            }
        }
        let _ = writeln!(out, " {} | {} |", row.target, row.verdict.label());
    }
    out
}

/// `1234.5` as `1,235`.
pub fn thousands(value: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rounded, non-negative
    let digits = value.max(0.0).round() as u64;
    let text = digits.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // microsecond latencies fit f64 exactly
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Throughput and latency of one load run: `2,345 req/s, p50 1.20 ms, p99 9.1 ms`, plus the
/// failures when there were any.
pub fn throughput(report: &Report) -> String {
    let total = &report.total;
    let mut text = format!(
        "{} req/s, p50 {}, p99 {}",
        thousands(total.requests_per_sec),
        ms(total.success_latency.p50_us),
        ms(total.success_latency.p99_us)
    );
    let failed = failures(total);
    if failed > 0 {
        let _ = write!(text, ", {failed} failed");
    }
    text
}

/// Requests that got no 2xx.
pub fn failures(kind: &KindReport) -> u64 {
    kind.count - kind.statuses.success
}

/// `p50 3.10 ms, p99 12.0 ms`.
pub fn percentiles(latency: &LatencySummary) -> String {
    format!("p50 {}, p99 {}", ms(latency.p50_us), ms(latency.p99_us))
}

pub fn megabytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // a process's size fits f64 exactly
    let mb = bytes as f64 / 1_048_576.0;
    format!("{mb:.0} MB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(1_234), "1.23 ms");
        assert_eq!(ms(45_600), "45.6 ms");
        assert_eq!(megabytes(150 * 1_048_576), "150 MB");
    }

    #[test]
    fn the_table_has_one_line_per_row() {
        let rows = [Row {
            id: "W1",
            workload: "create".into(),
            herald: "1 req/s".into(),
            baseline: String::new(),
            ratio: Some(0.5),
            target: "≥ 0.50".into(),
            verdict: Verdict::Fail,
        }];
        let table = markdown(&rows, &BTreeMap::new());
        assert_eq!(table.lines().count(), 3);
        assert!(table.contains("| W1 | create | 1 req/s | — | 0.50 | ≥ 0.50 | **FAIL** |"));
        let peers = BTreeMap::from([(
            0,
            Peer {
                figures: "2 req/s".into(),
                ratio: 0.5,
            },
        )]);
        let table = markdown(&rows, &peers);
        assert!(
            table.contains(
                "| W1 | create | 1 req/s | — | 0.50 | 2 req/s | 0.50 | ≥ 0.50 | **FAIL** |"
            ),
            "{table}"
        );
    }
}
