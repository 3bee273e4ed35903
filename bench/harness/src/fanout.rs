//! W7: Server-Sent Events fan-out. Many subscribers follow one collection's stream while
//! writes arrive at a fixed rate; each subscriber counts the events it receives and the
//! delay from each event's `time` (when it was recorded) to its arrival.
//!
//! Subscribers resume after a marker event written before they connect (`Last-Event-ID`),
//! so an event committed while they were still connecting is owed to them all the same:
//! anything missing at the end is lost, not early.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use herald_load::{LatencySummary, latency_histogram};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long all subscribers may take to connect, and to receive the last event once the
/// writes have stopped.
const DEADLINE: Duration = Duration::from_secs(60);

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
        let done = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let empty = latency_histogram()?;
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            let request = client
                .get(url)
                .bearer_auth(token)
                .header("last-event-id", last_event_id)
                .header("accept", "text/event-stream");
            let (mut owed, done, connected, stop) = (
                owed.subscribe(),
                done.clone(),
                connected.clone(),
                stop.clone(),
            );
            let mut tally = Tally {
                received: 0,
                dropped: false,
                latency: empty.clone(),
            };
            tasks.spawn(async move {
                let response = tokio::select! {
                    response = request.send() => response,
                    () = stop.cancelled() => return tally,
                };
                let Ok(response) = response.and_then(reqwest::Response::error_for_status) else {
                    tally.dropped = true;
                    connected.fetch_add(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    return tally;
                };
                connected.fetch_add(1, Ordering::SeqCst);
                let mut body = response.bytes_stream();
                let mut buffer = String::new();
                loop {
                    let chunk = tokio::select! {
                        chunk = body.next() => chunk,
                        // Told how many are owed: maybe all have arrived already.
                        _ = owed.changed() => {
                            if tally.received >= *owed.borrow() {
                                break;
                            }
                            continue;
                        }
                        () = stop.cancelled() => break,
                    };
                    let Some(Ok(chunk)) = chunk else {
                        tally.dropped = true;
                        break;
                    };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    let arrived = Utc::now();
                    while let Some(end) = buffer.find("\n\n") {
                        let frame: String = buffer.drain(..end + 2).collect();
                        match read_frame(&frame) {
                            Frame::Event(recorded) => {
                                tally.received += 1;
                                if let Some(delay) =
                                    recorded.and_then(|r| (arrived - r).num_microseconds())
                                {
                                    tally.latency.saturating_record(
                                        u64::try_from(delay).unwrap_or(0).max(1),
                                    );
                                }
                            }
                            Frame::Ended => tally.dropped = true,
                            Frame::Other => {}
                        }
                    }
                    if tally.dropped || tally.received >= *owed.borrow() {
                        break;
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                tally
            });
        }
        let deadline = Instant::now() + DEADLINE;
        while connected.load(Ordering::SeqCst) < count {
            if Instant::now() > deadline {
                stop.cancel();
                bail!(
                    "only {} of {count} subscribers connected",
                    connected.load(Ordering::SeqCst)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            tasks,
            owed,
            done,
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
