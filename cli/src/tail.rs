//! `herald tail`: prints the live events of a running Herald from its Server-Sent Events API,
//! one line each, and reconnects after the last event it printed, so nothing is lost or
//! printed twice across reconnects.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::StreamExt;
use herald_bus::telemetry::error_chain;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::failure::Failure;
use crate::server::shutdown_signal;

/// The exit code when the token expired, so a script can fetch a fresh one and resume.
const TOKEN_EXPIRED: u8 = 2;
/// The server sends a heartbeat every 15 s by default; this much silence means a dead link.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to follow, where, and how to print it.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The Herald server.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: Url,
    /// A bearer token (required; `herald token` prints one).
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
    /// With --doc: only the events of the collection `/v1/<app>/<doc>`, e.g. `petstore`.
    #[arg(long, requires = "doc")]
    pub app: Option<String>,
    /// The document of that collection, e.g. `product` (needs --app).
    #[arg(long, requires = "app")]
    pub doc: Option<String>,
    /// Only the events of the document with this id (needs --app and --doc).
    #[arg(long, requires_all = ["app", "doc"])]
    pub id: Option<String>,
    /// Only these event types, comma-separated, e.g. `petstore.product.created`.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Resume after this position (an event's id); without it, only new events are printed.
    #[arg(long)]
    pub after: Option<String>,
    /// Print each event's data as one line of JSON.
    #[arg(long)]
    pub json: bool,
}

/// Follows the stream until Ctrl-C, an expired token, or an error that retrying cannot fix.
pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let tail = Tail::new(args)?;
    tokio::select! {
        () = shutdown_signal() => Ok(()),
        result = tail.follow() => result,
    }
}

struct Tail {
    client: Client,
    url: Url,
    token: SecretString,
    json: bool,
    /// The id of the last event printed: where a reconnect resumes.
    last_id: Option<String>,
}

/// Why one connection ended.
enum Ended {
    /// Connect again after a pause: the connection broke or closed, the server was busy, or it
    /// dropped this subscriber for falling behind.
    Reconnect {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The token expired (`event: reauth`).
    Reauth,
    /// Whoever read the output went away (`herald tail | head`).
    OutputClosed,
}

impl Ended {
    fn reconnect(reason: impl Into<String>) -> Self {
        Self::Reconnect {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl Tail {
    fn new(args: TailArgs) -> anyhow::Result<Self> {
        let token = args
            .token
            .filter(|token| !token.expose_secret().is_empty())
            .context(
                "a token is required: pass --token or set HERALD_TOKEN \
                 (`herald token --sub <sub> --tenant <tenant>` prints one)",
            )?;
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .ok()
            .context("the token holds characters an HTTP header cannot carry")?;
        if let Some(after) = &args.after {
            HeaderValue::from_str(after)
                .ok()
                .context("--after is not a position token")?;
        }
        let url = events_url(
            &args.url,
            args.app.as_deref(),
            args.doc.as_deref(),
            args.id.as_deref(),
            &args.types,
        )?;
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            client,
            url,
            token,
            json: args.json,
            last_id: args.after,
        })
    }

    async fn follow(mut self) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self.follow_once(&mut backoff).await? {
                Ended::Reconnect {
                    reason,
                    retry_after,
                } => {
                    let delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                    eprintln!(
                        "herald tail: {reason}; reconnecting in {:.1} s",
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                Ended::Reauth => return Err(token_expired(self.last_id.as_deref())),
                Ended::OutputClosed => return Ok(()),
            }
        }
    }

    /// One connection: prints its events until it ends. Fails for what retrying cannot fix.
    async fn follow_once(&mut self, backoff: &mut Backoff) -> anyhow::Result<Ended> {
        let response = match self.connect().await? {
            Ok(response) => response,
            Err(ended) => return Ok(ended),
        };
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(EventStreamError::Transport(error)) => {
                    return Ok(Ended::reconnect(format!(
                        "the stream broke: {}",
                        error_chain(&error)
                    )));
                }
                Err(error) => return Ok(Ended::reconnect(format!("the stream broke: {error}"))),
            };
            if let Some(ended) = self.handle(event)? {
                return Ok(ended);
            }
            // Only a stream that delivers counts as recovered: a server that accepts and drops
            // every connection keeps being asked ever more slowly.
            backoff.reset();
        }
        Ok(Ended::reconnect("the server closed the stream"))
    }

    /// The stream's response, or how to go on without one.
    async fn connect(&self) -> anyhow::Result<Result<Response, Ended>> {
        match self.request().send().await {
            Ok(response) => check_response(response).await,
            Err(error) if error.is_builder() => Err(error).context("cannot build the request"),
            Err(error) => Ok(Err(Ended::reconnect(format!(
                "cannot connect: {}",
                error_chain(&error)
            )))),
        }
    }

    /// Prints an event and remembers its id, or says why the stream ends here.
    fn handle(&mut self, event: Event) -> anyhow::Result<Option<Ended>> {
        match event.event.as_str() {
            "reauth" => Ok(Some(Ended::Reauth)),
            "lagged" => Ok(Some(Ended::reconnect(
                "the server dropped this subscription for falling behind",
            ))),
            _ => {
                if !print(&event_line(&event, self.json)?) {
                    return Ok(Some(Ended::OutputClosed));
                }
                if !event.id.is_empty() {
                    self.last_id = Some(event.id);
                }
                Ok(None)
            }
        }
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "text/event-stream")
            .bearer_auth(self.token.expose_secret());
        match &self.last_id {
            Some(id) => request.header("Last-Event-ID", id),
            None => request,
        }
    }
}

/// `/v1/events`, `/v1/{app}/{doc}/events` or `/v1/{app}/{doc}/{id}/events` under `base`, with
/// the `types` filter.
fn events_url(
    base: &Url,
    app: Option<&str>,
    doc: Option<&str>,
    id: Option<&str>,
    types: &[String],
) -> anyhow::Result<Url> {
    if !matches!(base.scheme(), "http" | "https") {
        bail!("--url must be an http or https address, not `{base}`");
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url
            .path_segments_mut()
            .ok()
            .with_context(|| format!("--url `{base}` cannot hold a path"))?;
        path.pop_if_empty().push("v1");
        // Each part is one percent-encoded segment: an id never reaches another path.
        path.extend(app.into_iter().chain(doc).chain(id));
        path.push("events");
    }
    let types: Vec<&str> = types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !types.is_empty() {
        url.query_pairs_mut().append_pair("types", &types.join(","));
    }
    Ok(url)
}

/// The stream's response, or how to go on when the server refused it: retry later when it is
/// busy (503, 429), fail with the problem's detail otherwise.
async fn check_response(response: Response) -> anyhow::Result<Result<Response, Ended>> {
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        return Ok(Err(Ended::Reconnect {
            reason: problem(response).await,
            retry_after,
        }));
    }
    if !status.is_success() {
        bail!("{}", problem(response).await);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("no content type");
    if !content_type.starts_with("text/event-stream") {
        bail!(
            "{} answered with {content_type}, not an event stream: is --url a Herald server?",
            response.url()
        );
    }
    Ok(Ok(response))
}

/// `the server answered 401 Unauthorized: <detail>`, from an RFC 9457 problem body.
async fn problem(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|problem| {
            ["detail", "title"]
                .iter()
                .find_map(|key| problem.get(key)?.as_str().map(str::to_owned))
        });
    let detail = detail.unwrap_or_else(|| body.trim().chars().take(200).collect());
    if detail.is_empty() {
        format!("the server answered {status}")
    } else {
        format!("the server answered {status}: {detail}")
    }
}

/// One output line for an event: its data as JSON, or `<time> <type> <stream> v<version>
/// <data>` for people.
fn event_line(event: &Event, json: bool) -> anyhow::Result<String> {
    let data: Value = serde_json::from_str(&event.data).with_context(|| {
        format!(
            "the server sent a `{}` event whose data is not JSON",
            event.event
        )
    })?;
    if json {
        // As sent, keeping the server's field order, unless it spans lines.
        return Ok(if event.data.contains('\n') {
            data.to_string()
        } else {
            event.data.clone()
        });
    }
    let kind = data["type"].as_str().unwrap_or(&event.event);
    Ok(format!(
        "{} {kind} {} v{} {}",
        text(&data["time"]),
        text(&data["stream"]),
        text(&data["version"]),
        data["data"]
    ))
}

/// A string as it is, anything else as compact JSON, nothing as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Writes one line to stdout; `false` once the reader has gone.
fn print(line: &str) -> bool {
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

fn token_expired(last_id: Option<&str>) -> anyhow::Error {
    let message = match last_id {
        Some(id) => format!("token expired: run again with a fresh token and --after {id}"),
        None => "token expired before any event arrived: run again with a fresh token".to_owned(),
    };
    Failure {
        code: TOKEN_EXPIRED,
        message,
    }
    .into()
}

/// Pauses between reconnects: 200 ms, doubling up to 5 s, back to 200 ms once events flow.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8080").unwrap()
    }

    #[test]
    fn the_path_follows_the_scope_asked_for() {
        let types = ["petstore.product.created".to_owned(), " b ".to_owned()];

        let all = events_url(&base(), None, None, None, &[]).unwrap();
        let doc = events_url(&base(), Some("petstore"), Some("product"), None, &types).unwrap();
        let one = events_url(&base(), Some("petstore"), Some("product"), Some("a/b"), &[]).unwrap();

        assert_eq!(all.as_str(), "http://127.0.0.1:8080/v1/events");
        assert_eq!(
            doc.as_str(),
            "http://127.0.0.1:8080/v1/petstore/product/events?types=petstore.product.created%2Cb"
        );
        assert_eq!(
            one.as_str(),
            "http://127.0.0.1:8080/v1/petstore/product/a%2Fb/events"
        );
    }

    #[test]
    fn a_base_url_with_a_path_keeps_it() {
        let base = Url::parse("https://example.com/herald/").unwrap();

        let url = events_url(&base, None, None, None, &[]).unwrap();

        assert_eq!(url.as_str(), "https://example.com/herald/v1/events");
    }

    #[test]
    fn an_event_prints_as_one_line_for_people_or_as_its_json() {
        let data = json!({
            "id": "01a2", "type": "petstore.product.updated", "stream": "petstore.product/01a2",
            "document_id": "01a2", "version": 3, "position": "AAAA", "time": "2026-11-22T01:00:31Z",
            "actor": {"sub": "alice", "roles": ["admin"]}, "data": {"stock": 3, "tags": null}
        });
        let event = Event {
            event: "petstore.product.updated".into(),
            data: data.to_string(),
            id: "AAAA".into(),
            retry: None,
        };

        let human = event_line(&event, false).unwrap();
        let json = event_line(&event, true).unwrap();

        assert_eq!(
            human,
            r#"2026-11-22T01:00:31Z petstore.product.updated petstore.product/01a2 v3 {"stock":3,"tags":null}"#
        );
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), data);
        assert!(!json.contains('\n'));
    }

    #[test]
    fn json_data_sent_over_several_lines_prints_as_one() {
        let event = Event {
            event: "petstore.product.created".into(),
            data: "{\"type\": \"petstore.product.created\",\n \"version\": 1}".into(),
            id: "AAAB".into(),
            retry: None,
        };

        let json = event_line(&event, true).unwrap();

        assert_eq!(json, r#"{"type":"petstore.product.created","version":1}"#);
    }

    #[test]
    fn the_backoff_doubles_up_to_five_seconds_and_resets() {
        let mut backoff = Backoff::default();

        let delays: Vec<u128> = (0..7).map(|_| backoff.next_delay().as_millis()).collect();
        backoff.reset();

        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn an_expired_token_names_where_to_resume_and_exits_with_two() {
        let error = token_expired(Some("AAAA"));

        let failure = error.downcast_ref::<Failure>().unwrap();
        assert_eq!(failure.code, 2);
        assert_eq!(
            failure.message,
            "token expired: run again with a fresh token and --after AAAA"
        );
    }
}
