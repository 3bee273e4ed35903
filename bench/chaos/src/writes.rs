//! The clients of a scenario: each creates products, one after another, each with its own
//! `Idempotency-Key`, and tries a failed create again with the same key (up to
//! [`ATTEMPTS`] times, spread over the api processes). Every attempt and every final outcome
//! is recorded for the checker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Failed tries of one create, with the same key, before the client gives up on it.
pub const ATTEMPTS: usize = 3;
/// Tries answered `409 idempotency_in_flight` (the first request is still being decided)
/// before the client gives up on it.
const IN_FLIGHT_RETRIES: usize = 120;
/// The longest a failed request may take and still count as failing fast: the documented
/// bounds (5 s for JetStream's acknowledgement, `database.connect_timeout_ms` for the pool)
/// and some slack.
pub const FAIL_FAST: Duration = Duration::from_secs(10);
/// A request still unanswered after this long counts as a hang.
const HANG: Duration = Duration::from_secs(60);
/// The longest a client waits before trying again, whatever `Retry-After` says.
const MOST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How one create ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `201`: the document was created, with this id.
    Created(Uuid),
    /// `202`: the command was accepted, with this id, and is to be decided.
    Accepted(Uuid),
    /// Every attempt failed.
    GaveUp,
}

/// One create: its key and how it ended.
#[derive(Debug, Clone)]
pub struct Write {
    pub key: String,
    pub outcome: Outcome,
}

impl Write {
    pub fn acknowledged(&self) -> bool {
        !matches!(self.outcome, Outcome::GaveUp)
    }
}

/// What the clients saw.
#[derive(Debug, Clone)]
pub struct Record {
    pub writes: Vec<Write>,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Failed requests answered `503` with `Retry-After` within [`FAIL_FAST`].
    pub failed_fast: u64,
    /// Failed requests that were not: another status, a broken connection, or too slow.
    pub failed_otherwise: u64,
    /// Refusals no retry can cure (`4xx`): a retried create refused as a conflict means it ran
    /// twice.
    pub refused: u64,
    /// The first few refusals: status and problem.
    pub refusals: Vec<String>,
    /// The slowest failed request, in milliseconds.
    pub slowest_failure_ms: u64,
    /// Latency of acknowledged requests, in microseconds.
    pub latency: Histogram<u64>,
    /// When the first acknowledgement after [`Record::mark`] came.
    pub first_ack_after_mark: Option<Instant>,
    mark: Option<Instant>,
}

impl Record {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            writes: Vec::new(),
            requests: 0,
            failed_fast: 0,
            failed_otherwise: 0,
            refused: 0,
            refusals: Vec::new(),
            slowest_failure_ms: 0,
            latency: Histogram::new_with_bounds(1, HANG.as_micros() as u64, 3)?,
            first_ack_after_mark: None,
            mark: None,
        })
    }

    /// From now on, note when the next acknowledgement arrives (for recovery times).
    pub fn mark(&mut self) {
        self.mark = Some(Instant::now());
        self.first_ack_after_mark = None;
    }

    pub fn acknowledged(&self) -> usize {
        self.writes.iter().filter(|w| w.acknowledged()).count()
    }

    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }

    fn ack(&mut self, elapsed: Duration) {
        self.latency
            .saturating_record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        if self.mark.is_some() && self.first_ack_after_mark.is_none() {
            self.first_ack_after_mark = Some(Instant::now());
        }
    }

    fn failed(&mut self, fast: bool, elapsed: Duration) {
        if fast {
            self.failed_fast += 1;
        } else {
            self.failed_otherwise += 1;
        }
        self.slowest_failure_ms = self
            .slowest_failure_ms
            .max(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }
}

/// Clients writing until stopped.
pub struct Writers {
    pub record: Arc<Mutex<Record>>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Writers {
    /// Starts `clients` clients against `addrs` with `token`; with `rate`, they create at most
    /// that many products a second in all.
    pub fn start(
        addrs: Vec<SocketAddr>,
        token: String,
        clients: usize,
        rate: Option<f64>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HANG)
            .pool_max_idle_per_host(clients)
            .build()?;
        let record = Arc::new(Mutex::new(Record::new()?));
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let pause = rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate.max(0.1)));
        for client in 0..clients {
            let client = Client {
                http: http.clone(),
                addrs: addrs.clone(),
                token: token.clone(),
                record: record.clone(),
                next: client,
            };
            tasks.spawn(client.run(stop.clone(), pause));
        }
        Ok(Self {
            record,
            stop,
            tasks,
        })
    }

    /// Notes the next acknowledgement from now on (see [`Record::mark`]).
    pub fn mark(&self) {
        if let Ok(mut record) = self.record.lock() {
            record.mark();
        }
    }

    /// Creates acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.record.lock().map_or(0, |record| record.acknowledged())
    }

    /// Stops the clients, lets each finish its create, and returns what they saw.
    pub async fn stop(mut self) -> anyhow::Result<Record> {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let record = self
            .record
            .lock()
            .map_err(|_| anyhow::anyhow!("a client panicked"))?;
        Ok(record.clone())
    }
}

struct Client {
    http: reqwest::Client,
    addrs: Vec<SocketAddr>,
    token: String,
    record: Arc<Mutex<Record>>,
    next: usize,
}

impl Client {
    async fn run(mut self, stop: CancellationToken, pause: Option<Duration>) {
        let mut ticker = pause.map(tokio::time::interval);
        while !stop.is_cancelled() {
            if let Some(ticker) = ticker.as_mut() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
            }
            let write = self.create().await;
            if let Ok(mut record) = self.record.lock() {
                record.writes.push(write);
            }
        }
    }

    /// One create, tried up to [`ATTEMPTS`] times with the same key.
    async fn create(&mut self) -> Write {
        let key = Uuid::now_v7().to_string();
        let body = json!({"name": format!("chaos {key}"), "price": 1});
        let mut in_flight = 0;
        let mut failures = 0;
        while failures < ATTEMPTS {
            let addr = self.addrs[self.next % self.addrs.len()];
            self.next = self.next.wrapping_add(1);
            let started = Instant::now();
            self.note(|record| record.requests += 1);
            let sent = self
                .http
                .post(format!("http://{addr}/v1/petstore/product"))
                .bearer_auth(&self.token)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await;
            let elapsed = started.elapsed();
            let Ok(response) = sent else {
                failures += 1;
                self.note(|record| record.failed(false, elapsed));
                tokio::time::sleep(MOST_RETRY_DELAY / 4).await;
                continue;
            };
            let status = response.status();
            if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
                self.note(|record| record.ack(elapsed));
                return Write {
                    outcome: outcome(status, response).await,
                    key,
                };
            }
            if status == StatusCode::CONFLICT && in_flight < IN_FLIGHT_RETRIES {
                let problem: serde_json::Value = response.json().await.unwrap_or_default();
                if problem["code"] == "idempotency_in_flight" {
                    // The first request (whose api may have died) is still being decided.
                    in_flight += 1;
                    tokio::time::sleep(MOST_RETRY_DELAY).await;
                    continue;
                }
                self.note(|record| {
                    record.refused += 1;
                    record.refusals.push(format!("{status} {problem}"));
                });
                break;
            }
            if status.is_client_error() {
                let problem = response.text().await.unwrap_or_default();
                self.note(|record| {
                    record.refused += 1;
                    if record.refusals.len() < 3 {
                        record.refusals.push(format!("{status} {problem}"));
                    }
                });
                break;
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let fast = status == StatusCode::SERVICE_UNAVAILABLE
                && retry_after.is_some()
                && elapsed <= FAIL_FAST;
            failures += 1;
            self.note(|record| record.failed(fast, elapsed));
            let wait = retry_after.map_or(MOST_RETRY_DELAY, Duration::from_secs);
            tokio::time::sleep(wait.min(MOST_RETRY_DELAY)).await;
        }
        Write {
            key,
            outcome: Outcome::GaveUp,
        }
    }
}

impl Client {
    /// Notes what one request did in the shared record.
    fn note(&self, what: impl FnOnce(&mut Record)) {
        if let Ok(mut record) = self.record.lock() {
            what(&mut record);
        }
    }
}

/// The id a `201` or `202` answer names.
async fn outcome(status: StatusCode, response: reqwest::Response) -> Outcome {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let id = body["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_default();
    if status == StatusCode::CREATED {
        Outcome::Created(id)
    } else {
        Outcome::Accepted(id)
    }
}
