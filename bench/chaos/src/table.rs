//! One row per scenario, printed as a Markdown table and written as JSON.

use crate::check::Verdict;
use crate::writes::Record;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub id: &'static str,
    pub scenario: &'static str,
    /// Seconds the clients wrote.
    pub seconds: f64,
    pub requests: u64,
    pub acknowledged: usize,
    pub failed_fast: u64,
    /// Failed requests that did not fail fast (another status, a broken connection, too slow).
    pub failed_otherwise: u64,
    pub verdict: Verdict,
    /// How long Herald took to come back, as the scenario measures it.
    pub recovery: String,
    /// The scenario's own figures and checks.
    pub notes: Vec<String>,
    /// The scenario's own checks passed.
    pub checks_passed: bool,
    /// Why the scenario could not run to the end, if it could not.
    pub error: Option<String>,
}

impl Row {
    pub fn new(id: &'static str, scenario: &'static str) -> Self {
        Self {
            id,
            scenario,
            seconds: 0.0,
            requests: 0,
            acknowledged: 0,
            failed_fast: 0,
            failed_otherwise: 0,
            verdict: Verdict::default(),
            recovery: "—".to_owned(),
            notes: Vec::new(),
            checks_passed: true,
            error: None,
        }
    }

    /// Takes the clients' figures and the checker's verdict.
    pub fn with(mut self, seconds: f64, record: &Record, verdict: Verdict) -> Self {
        self.seconds = seconds;
        self.requests = record.requests;
        self.acknowledged = record.acknowledged();
        self.failed_fast = record.failed_fast;
        self.failed_otherwise = record.failed_otherwise;
        self.verdict = verdict;
        self
    }

    /// Records a check of the scenario's own: `note` says what was seen.
    pub fn expect(&mut self, holds: bool, note: String) {
        self.checks_passed &= holds;
        self.notes
            .push(if holds { note } else { format!("**{note}**") });
    }

    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks_passed && self.verdict.passed()
    }
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| id | scenario | requests sent | acknowledged | failed fast | failed otherwise | events in log | lost | duplicated | view = rebuild | recovery | notes | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let v = &row.verdict;
        let mut notes = row.notes.clone();
        if !v.settled {
            notes.push("**did not settle in time**".to_owned());
        }
        for (count, what) in [
            (v.undecided, "undecided 202s"),
            (v.task_faults, "task runs not exactly once"),
            (
                usize::try_from(v.relay_faults).unwrap_or(usize::MAX),
                "relay faults",
            ),
        ] {
            if count > 0 {
                notes.push(format!("**{count} {what}**"));
            }
        }
        notes.extend(v.diagnosis.iter().map(|d| format!("**{d}**")));
        if let Some(error) = &row.error {
            notes.push(format!("**error: {error}**"));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.id,
            row.scenario,
            row.requests,
            row.acknowledged,
            row.failed_fast,
            row.failed_otherwise,
            v.events,
            v.lost,
            v.duplicated,
            if v.view_equals_rebuild {
                "yes"
            } else {
                "**no**"
            },
            row.recovery,
            notes.join("; "),
            if row.passed() { "pass" } else { "**FAIL**" },
        ));
    }
    out
}
