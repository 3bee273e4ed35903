//! A small Server-Sent Events reader for tests: frames split on blank lines, `id:`, `event:`
//! and `data:` fields, comments (heartbeats) skipped.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

/// One event as the server framed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// An open event stream.
pub struct SseStream {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: String,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event, `None` when the server closed the stream; panics after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        match tokio::time::timeout(wait, self.read()).await {
            Ok(event) => event,
            Err(_) => panic!("no event within {wait:?}"),
        }
    }

    async fn read(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&frame) {
                    return Some(event);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

fn parse(frame: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = "message".to_owned();
    let mut data = String::new();
    for line in frame.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "event" => event = value.to_owned(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
    })
}
