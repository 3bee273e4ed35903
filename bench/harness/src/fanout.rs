//! W7: Server-Sent Events fan-out. Many subscribers follow one collection's stream while
//! writes arrive at a fixed rate; each subscriber counts the events it receives and the
//! delay from each event's `time` (when it was recorded) to its arrival.
//!
//! Subscribers resume after a marker event written before they connect (`Last-Event-ID`),
//! so an event committed while they were still connecting is owed to them all the same:
//! anything missing at the end is lost, not early.
//!
//! `measure_fan_out` is the workload itself: the marker, the subscribers, the writes, the row.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use herald_load::{LatencySummary, Mode, latency_histogram};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{Bench, FANOUT_TENANT, Results, say};
use crate::database::settled_events;
use crate::measured::{Measured, load};
use crate::setup::random_lower;
use crate::sources::{Api, Create};
use crate::table::{Row, Verdict, percentiles, thousands};

/// How long all subscribers may take to connect, and to receive the last event once the
/// writes have stopped.
const DEADLINE: Duration = Duration::from_secs(60);

/// W7: subscribers of the fan-out tenant's collection while creates arrive at a fixed rate;
/// passes when no delivery was lost and the p99 delivery took at most 100 ms.
pub(crate) async fn measure_fan_out(
    bench: &Bench<'_>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let scale = bench.scale;
    say(&format!(
        "W7: {} subscribers, creates at {} events/s",
        scale.subscribers, scale.fanout_rate
    ));
    let (fanout, writes) = fan_out(bench).await?;
    results.push(Row {
        id: "W7",
        workload: format!(
            "SSE fan-out: {} subscribers, {} events/s",
            thousands(scale.subscribers as f64),
            thousands(scale.fanout_rate)
        ),
        herald: format!(
            "delivery {}; {} events, {} of {} deliveries lost, {} subscriptions ended; busy cores: Herald {:.2}, subscribers (harness) {:.2}",
            percentiles(&fanout.latency),
            thousands(fanout.events as f64),
            thousands(fanout.lost as f64),
            thousands((fanout.events * fanout.subscribers as u64) as f64),
            fanout.dropped,
            writes.cpu.cores.get("herald").copied().unwrap_or(0.0),
            writes.cpu.cores.get("harness").copied().unwrap_or(0.0),
        ),
        baseline: String::new(),
        ratio: None,
        target: "p99 ≤ 100 ms, 0 lost".into(),
        verdict: Verdict::of(
            fanout.lost == 0 && fanout.events > 0 && fanout.latency.p99_us <= 100_000,
        ),
    });
    results.record("w7", json!({"fanout": fanout, "writes": writes}));
    Ok(())
}

/// Writes a marker, opens the subscribers after it, drives the creates, and collects what
/// the subscribers saw once Herald has settled.
async fn fan_out(bench: &Bench<'_>) -> anyhow::Result<(Fanout, Measured)> {
    let (servers, scale) = (bench.servers, bench.scale);
    let token = bench.env.token(FANOUT_TENANT)?;
    let base = format!("http://{}", servers.herald_addr);
    let marker = reqwest::Client::new()
        .post(format!("{base}/v1/petstore/product"))
        .bearer_auth(&token)
        .json(&json!({"name": format!("Marker {}", random_lower(8)), "price": 1}))
        .send()
        .await?
        .error_for_status()
        .context("the marker event was refused")?;
    let position = marker
        .headers()
        .get("herald-position")
        .and_then(|v| v.to_str().ok())
        .context("the marker has no Herald-Position")?
        .to_owned();
    let subscribers = Subscribers::open(
        &format!("{base}/v1/petstore/product/events"),
        &token,
        &position,
        scale.subscribers,
    )
    .await?;
    let writes = load(
        servers.herald_addr,
        Create::new(Api::herald(&token)?, "w7"),
        Mode::Open {
            rate: scale.fanout_rate,
            max_connections: scale.connections,
        },
        scale,
        false,
    )
    .await?;
    let events = settled_events(&bench.db.url, FANOUT_TENANT).await?;
    let fanout = subscribers.finish(events.saturating_sub(1)).await?;
    say(&format!(
        "  {} events written ({} acknowledged), {} deliveries lost",
        events.saturating_sub(1),
        writes.total.statuses.success,
        fanout.lost
    ));
    Ok((fanout, writes))
}

/// What the subscribers saw, together.
#[derive(Debug, Clone, Serialize)]
pub struct Fanout {
    pub subscribers: usize,
    /// Events written after the marker, owed to every subscriber.
    pub events: u64,
    /// Owed deliveries that never arrived, over all subscribers.
    pub lost: u64,
    /// Subscriptions the server ended early (`lagged`) or that failed.
    pub dropped: usize,
    pub latency: LatencySummary,
}

/// One subscriber's tally.
struct Tally {
    received: u64,
    dropped: bool,
    latency: Histogram<u64>,
}

/// The open subscriptions; [`Subscribers::finish`] collects them once `events` are owed.
pub struct Subscribers {
    tasks: JoinSet<Tally>,
    owed: Arc<watch::Sender<u64>>,
    done: Arc<AtomicUsize>,
    stop: CancellationToken,
    count: usize,
}

impl Subscribers {
    /// Opens `count` subscriptions to `url` resuming after `last_event_id`, and returns once
    /// every one has its response headers.
    pub async fn open(
        url: &str,
        token: &str,
        last_event_id: &str,
        count: usize,
    ) -> anyhow::Result<Self> {
        // One connection per subscriber, as separate clients would have.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let owed = Arc::new(watch::Sender::new(u64::MAX));
        let progress = Progress::default();
        let stop = CancellationToken::new();
        let empty = latency_histogram()?;
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            let request = client
                .get(url)
                .bearer_auth(token)
                .header("last-event-id", last_event_id)
                .header("accept", "text/event-stream");
            let tally = Tally {
                received: 0,
                dropped: false,
                latency: empty.clone(),
            };
            tasks.spawn(follow(
                request,
                owed.subscribe(),
                progress.clone(),
                stop.clone(),
                tally,
            ));
        }
        progress.wait_until_connected(count, &stop).await?;
        Ok(Self {
            tasks,
            owed,
            done: progress.done,
            stop,
            count,
        })
    }

    /// Tells the subscribers `events` are owed, waits until each has them (or the deadline
    /// passed), and adds up what they saw.
    pub async fn finish(mut self, events: u64) -> anyhow::Result<Fanout> {
        self.owed.send_replace(events);
        let deadline = Instant::now() + DEADLINE;
        while self.done.load(Ordering::SeqCst) < self.count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        let mut latency = latency_histogram()?;
        let (mut lost, mut dropped) = (0, 0);
        while let Some(tally) = self.tasks.join_next().await {
            let tally = tally.context("a subscriber failed")?;
            lost += events.saturating_sub(tally.received);
            dropped += usize::from(tally.dropped);
            latency.add(&tally.latency).context("histogram bounds")?;
        }
        Ok(Fanout {
            subscribers: self.count,
            events,
            lost,
            dropped,
            latency: LatencySummary::of(&latency),
        })
    }
}

/// How many subscribers have their response headers (or failed to), and how many have
/// stopped reading.
#[derive(Clone, Default)]
struct Progress {
    connected: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Progress {
    /// Waits until all `count` subscribers are connected, stopping them all past the deadline.
    async fn wait_until_connected(
        &self,
        count: usize,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + DEADLINE;
        while self.connected.load(Ordering::SeqCst) < count {
            if Instant::now() > deadline {
                stop.cancel();
                bail!(
                    "only {} of {count} subscribers connected",
                    self.connected.load(Ordering::SeqCst)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// One subscriber: connects, then reads its stream until it has every owed event, the
/// server ends it, or `stop`. A refused subscription counts as connected and dropped.
async fn follow(
    request: reqwest::RequestBuilder,
    mut owed: watch::Receiver<u64>,
    progress: Progress,
    stop: CancellationToken,
    mut tally: Tally,
) -> Tally {
    let response = tokio::select! {
        response = request.send() => response,
        () = stop.cancelled() => return tally,
    };
    let Ok(response) = response.and_then(reqwest::Response::error_for_status) else {
        tally.dropped = true;
        progress.connected.fetch_add(1, Ordering::SeqCst);
        progress.done.fetch_add(1, Ordering::SeqCst);
        return tally;
    };
    progress.connected.fetch_add(1, Ordering::SeqCst);
    tally.read(response, &mut owed, &stop).await;
    progress.done.fetch_add(1, Ordering::SeqCst);
    tally
}

impl Tally {
    /// Counts the stream's events until as many as are owed have arrived, the stream ended
    /// or failed, or `stop`.
    async fn read(
        &mut self,
        response: reqwest::Response,
        owed: &mut watch::Receiver<u64>,
        stop: &CancellationToken,
    ) {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        loop {
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                // Told how many are owed: maybe all have arrived already.
                _ = owed.changed() => {
                    if self.received >= *owed.borrow() {
                        break;
                    }
                    continue;
                }
                () = stop.cancelled() => break,
            };
            let Some(Ok(chunk)) = chunk else {
                self.dropped = true;
                break;
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            self.count_frames(&mut buffer, Utc::now());
            if self.dropped || self.received >= *owed.borrow() {
                break;
            }
        }
    }

    /// Takes every complete frame off the front of `buffer`, all of which arrived at
    /// `arrived`, and counts the events among them.
    fn count_frames(&mut self, buffer: &mut String, arrived: DateTime<Utc>) {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            match read_frame(&frame) {
                Frame::Event(recorded) => {
                    self.received += 1;
                    if let Some(delay) = recorded.and_then(|r| (arrived - r).num_microseconds()) {
                        self.latency
                            .saturating_record(u64::try_from(delay).unwrap_or(0).max(1));
                    }
                }
                Frame::Ended => self.dropped = true,
                Frame::Other => {}
            }
        }
    }
}

enum Frame {
    /// A document event, with its recording time when it carries one.
    Event(Option<DateTime<Utc>>),
    /// The server ended the subscription (`lagged`, `reauth`).
    Ended,
    /// A comment (heartbeat) or anything else.
    Other,
}

fn read_frame(frame: &str) -> Frame {
    let mut event = "";
    let mut data = "";
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim();
        } else if let Some(value) = line.strip_prefix("data:") {
            data = value.trim();
        }
    }
    match event {
        "" if data.is_empty() => Frame::Other,
        "lagged" | "reauth" => Frame::Ended,
        _ => Frame::Event(recorded_at(data)),
    }
}

/// The event's `time` field, found without parsing the whole payload: this runs for every
/// delivery to every subscriber, on the same two cores as the server.
fn recorded_at(data: &str) -> Option<DateTime<Utc>> {
    const KEY: &str = "\"time\":\"";
    let start = data.find(KEY)? + KEY.len();
    let end = start + data[start..].find('"')?;
    DateTime::parse_from_rfc3339(&data[start..end])
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_told_apart() {
        let event = "id: AAA\nevent: petstore.product.created\ndata: {\"id\":\"x\",\"time\":\"2026-12-05T10:00:00.5Z\",\"data\":{}}\n\n";
        match read_frame(event) {
            Frame::Event(Some(time)) => assert_eq!(time.timestamp_subsec_millis(), 500),
            _ => panic!("not an event with a time"),
        }
        assert!(matches!(read_frame(":heartbeat\n\n"), Frame::Other));
        assert!(matches!(
            read_frame("event: lagged\ndata: {}\n\n"),
            Frame::Ended
        ));
    }
}
