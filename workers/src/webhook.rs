//! Delivering one webhook the Standard Webhooks way (<https://www.standardwebhooks.com>): a
//! signed JSON `POST` whose outcome says whether another attempt could succeed, so the task
//! runtime's retries and back-off do the rest.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::DecodeSliceError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use reqwest::redirect::Policy;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use sha2::Sha256;

use crate::task::TaskError;

const SECRET_PREFIX: &str = "whsec_";
/// HMAC-SHA256's block size. HMAC zero-pads any shorter key to one block (RFC 2104), so a key
/// kept already padded signs identically and needs no fallible length check when signing.
const KEY_BLOCK: usize = 64;
/// The specification asks for 192 to 512 bits of key.
const KEY_LEN: RangeInclusive<usize> = 24..=KEY_BLOCK;
const HERALD_USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));
/// Enough of a failing response to show the receiver's error message, not enough to flood the
/// task log with an HTML error page.
const BODY_EXCERPT_LIMIT: usize = 200;
/// A receiver that cannot even accept a connection in this time is down; waiting longer only
/// holds a worker slot that other deliveries could use.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A signing secret as Standard Webhooks writes it: `whsec_` + base64 of the key bytes.
pub struct WebhookSecret(SecretBox<[u8; KEY_BLOCK]>);

impl WebhookSecret {
    /// Reads `whsec_<base64>` holding 24 to 64 key bytes. Error messages never quote the input,
    /// because they end up in logs and the input is the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a webhook secret starts with `{SECRET_PREFIX}`"))?;
        // Decoded straight into the zeroized box, so no copy of the key is left behind.
        let mut key = SecretBox::new(Box::new([0; KEY_BLOCK]));
        let len = STANDARD
            .decode_slice(encoded, key.expose_secret_mut())
            // Only the kind of failure is reported: the decoder's own message quotes the
            // offending byte, which is part of the secret.
            .map_err(|error| match error {
                DecodeSliceError::OutputSliceTooSmall => {
                    format!("a webhook secret holds at most {KEY_BLOCK} bytes")
                }
                DecodeSliceError::DecodeError(_) => {
                    format!("a webhook secret is `{SECRET_PREFIX}` followed by standard base64")
                }
            })?;
        if !KEY_LEN.contains(&len) {
            return Err(format!(
                "a webhook secret holds {} to {} bytes, not {len}",
                KEY_LEN.start(),
                KEY_LEN.end()
            ));
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`: the id and timestamp are
/// signed with the body so a captured request cannot be replayed under a new id or time.
#[must_use]
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new(secret.0.expose_secret().into());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// One attempt at delivering one webhook.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a WebhookSecret,
    /// The `webhook-id`: the same on every retry, so the receiver can drop duplicates.
    pub id: &'a str,
    /// The JSON payload, sent and signed byte for byte.
    pub body: Bytes,
    /// For the whole exchange, from connecting to the end of the response.
    pub timeout: Duration,
    /// The W3C trace context of the work that caused the webhook, when there is one.
    pub traceparent: Option<&'a str>,
}

/// POSTs with `Content-Type: application/json`, `webhook-id`, `webhook-timestamp` (now, unix
/// seconds), `webhook-signature`, `traceparent` when given and valid, and
/// `User-Agent: herald/<version>`.
///
/// A 2xx is success. Any other 4xx except 408 and 429 is `Permanent`: the receiver rejected the
/// request itself (410 is its way to say "stop sending"). 408, 429, 5xx, 3xx (redirects are not
/// followed), other statuses, timeouts and connection errors are `Retry`. A reason carries the
/// status and at most 200 bytes of the response body, never the secret or the request body.
#[tracing::instrument(skip_all, fields(webhook.id = delivery.id, webhook.origin = %origin(delivery.url)))]
pub async fn deliver(client: &reqwest::Client, delivery: Delivery<'_>) -> Result<(), TaskError> {
    let shown = origin(delivery.url);
    let id = webhook_id(delivery.id)?;
    let timestamp = unix_now()?;
    let signature = sign(delivery.secret, delivery.id, timestamp, &delivery.body);
    let mut request = client
        .post(delivery.url)
        .timeout(delivery.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, HERALD_USER_AGENT)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature);
    // Tracing is best effort: a malformed trace context must not cost a delivery.
    if let Some(traceparent) = delivery
        .traceparent
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        request = request.header("traceparent", traceparent);
    }
    let response = request
        .body(delivery.body)
        .send()
        .await
        .map_err(|error| send_failure(error, &shown, delivery.timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let note = if status.is_redirection() {
        " (redirects are not followed)"
    } else {
        ""
    };
    let excerpt = body_excerpt(response).await;
    let separator = if excerpt.is_empty() { "" } else { ": " };
    let reason = format!(
        "HTTP {} from {shown}{note}{separator}{excerpt}",
        status.as_u16()
    );
    let permanent = status.is_client_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS;
    Err(if permanent {
        TaskError::Permanent(reason)
    } else {
        TaskError::Retry(reason)
    })
}

/// The client deliveries share, so connections to a receiver are pooled across deliveries.
///
/// Redirects are not followed: the specification counts a 3xx as a failure (the endpoint's
/// URL should be updated instead), and following one would let a receiver point a signed
/// request at any host, internal ones included.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
}

/// The id as a header value. It is signed as `{id}.{timestamp}.{body}`, so a `.` in it would
/// make two different (id, timestamp) pairs sign the same bytes; retrying cannot fix either.
fn webhook_id(id: &str) -> Result<HeaderValue, TaskError> {
    if id.is_empty() || id.contains('.') {
        return Err(TaskError::Permanent(format!(
            "webhook id {id:?} is empty or contains a `.`"
        )));
    }
    HeaderValue::from_str(id)
        .map_err(|_| TaskError::Permanent(format!("webhook id {id:?} is not a valid header value")))
}

fn unix_now() -> Result<i64, TaskError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .ok_or_else(|| TaskError::Retry("the system clock is before 1970".to_owned()))
}

/// The part of a webhook URL errors and logs may show: scheme, host and port. Paths and queries
/// of many webhook URLs are bearer secrets (a token in the path), and errors reach tenant
/// admins (`GET /v1/tasks/{id}`), logs and dead letters.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "the webhook URL".to_owned(),
    }
}

/// Why no response arrived. A request that cannot be built (a malformed URL) never will be.
fn send_failure(error: reqwest::Error, url: &str, timeout: Duration) -> TaskError {
    if error.is_builder() {
        TaskError::Permanent(format!("cannot post to {url}: {}", describe(error)))
    } else if error.is_connect() {
        TaskError::Retry(format!("cannot connect to {url}: {}", describe(error)))
    } else if error.is_timeout() {
        TaskError::Retry(format!(
            "timed out after {} ms waiting for {url}",
            timeout.as_millis()
        ))
    } else {
        TaskError::Retry(format!("posting to {url} failed: {}", describe(error)))
    }
}

/// The error and its causes on one line; the causes hold the useful part ("connection
/// refused"), and the URL is left out because every caller already names it.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of the response body, read chunk by chunk so a huge error page is never buffered,
/// with control characters blanked so a receiver cannot forge lines in the task log.
async fn body_excerpt(mut response: reqwest::Response) -> String {
    let mut excerpt = Vec::with_capacity(BODY_EXCERPT_LIMIT);
    while excerpt.len() < BODY_EXCERPT_LIMIT {
        // A body that fails halfway still explains something; the status is what matters.
        let Ok(Some(chunk)) = response.chunk().await else {
            break;
        };
        let room = BODY_EXCERPT_LIMIT - excerpt.len();
        excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    String::from_utf8_lossy(&excerpt)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;

    use super::{Delivery, WebhookSecret, client, deliver, origin, sign, unix_now};
    use crate::task::TaskError;

    // The Standard Webhooks specification's published test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BODY: &str = r#"{"event":"document.created","marker":"request-body"}"#;

    #[test]
    fn sign_matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn parse_rejects_bad_secrets_without_echoing_them() {
        let too_short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        let too_long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        for text in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8IL!ZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
            &too_short,
            &too_long,
        ] {
            let error = WebhookSecret::parse(text).unwrap_err();
            let secret_part = text.trim_start_matches("whsec_");
            assert!(!error.contains(secret_part), "{error:?} echoes {text:?}");
            assert!(!error.contains('!'), "{error:?} quotes the bad byte");
        }
        let longest = format!("whsec_{}", STANDARD.encode([7u8; 64]));
        assert!(WebhookSecret::parse(&longest).is_ok());
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret([REDACTED])");
    }

    #[tokio::test]
    async fn a_2xx_delivers_headers_that_verify() {
        let mut receiver = Receiver::start().await;
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let url = receiver.url("/ok");
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let delivery = Delivery {
            traceparent: Some(traceparent),
            ..delivery(&url, &secret)
        };

        deliver(&client().unwrap(), delivery).await.unwrap();

        let (headers, body) = receiver.received.recv().await.unwrap();
        let text = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        let timestamp: i64 = text("webhook-timestamp").parse().unwrap();
        assert_eq!(body, BODY.as_bytes());
        assert_eq!(text("webhook-id"), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(
            text("webhook-signature"),
            sign(&secret, &text("webhook-id"), timestamp, &body)
        );
        assert!((unix_now().unwrap() - timestamp).abs() <= 5);
        assert_eq!(text("content-type"), "application/json");
        assert_eq!(
            text("user-agent"),
            concat!("herald/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(text("traceparent"), traceparent);
    }

    #[tokio::test]
    async fn a_rejecting_4xx_is_permanent_and_everything_else_retries() {
        let receiver = Receiver::start().await;
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let client = client().unwrap();
        for (status, permanent) in [
            (400, true),
            (404, true),
            (410, true),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            let url = receiver.url(&format!("/status/{status}"));
            let error = deliver(&client, delivery(&url, &secret)).await.unwrap_err();
            let ((TaskError::Permanent(reason), true) | (TaskError::Retry(reason), false)) =
                (&error, permanent)
            else {
                panic!("HTTP {status} gave {error:?}");
            };
            assert!(reason.starts_with(&format!("HTTP {status} from {}: ", origin(&url))));
            assert!(reason.ends_with(&"x".repeat(super::BODY_EXCERPT_LIMIT)));
            assert!(!reason.contains(&"x".repeat(super::BODY_EXCERPT_LIMIT + 1)));
            assert_no_secrets(reason);
        }
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out_and_retries() {
        let receiver = Receiver::start().await;
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let url = receiver.url("/slow");
        let delivery = Delivery {
            timeout: Duration::from_millis(200),
            ..delivery(&url, &secret)
        };

        let error = deliver(&client().unwrap(), delivery).await.unwrap_err();

        let TaskError::Retry(reason) = error else {
            panic!("a timeout gave {error:?}");
        };
        assert_eq!(
            reason,
            format!("timed out after 200 ms waiting for {}", origin(&url))
        );
        assert!(!reason.contains("/slow"), "the path is not shown: {reason}");
    }

    #[tokio::test]
    async fn a_redirect_is_retried_not_followed() {
        let mut receiver = Receiver::start().await;
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();
        let url = receiver.url("/redirect");

        let error = deliver(&client().unwrap(), delivery(&url, &secret))
            .await
            .unwrap_err();

        let TaskError::Retry(reason) = error else {
            panic!("a redirect gave {error:?}");
        };
        assert!(
            reason.starts_with(&format!("HTTP 302 from {}", origin(&url))),
            "{reason}"
        );
        assert!(
            receiver.received.try_recv().is_err(),
            "the redirect was followed"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_retries() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ok", closed.local_addr().unwrap());
        drop(closed);
        let secret = WebhookSecret::parse(VECTOR_SECRET).unwrap();

        let error = deliver(&client().unwrap(), delivery(&url, &secret))
            .await
            .unwrap_err();

        let TaskError::Retry(reason) = error else {
            panic!("a refused connection gave {error:?}");
        };
        assert!(
            reason.starts_with(&format!("cannot connect to {}: ", origin(&url))),
            "{reason}"
        );
        assert_no_secrets(&reason);
    }

    fn delivery<'a>(url: &'a str, secret: &'a WebhookSecret) -> Delivery<'a> {
        Delivery {
            url,
            secret,
            id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            body: Bytes::from_static(BODY.as_bytes()),
            timeout: Duration::from_secs(5),
            traceparent: None,
        }
    }

    fn assert_no_secrets(reason: &str) {
        assert!(!reason.contains("request-body"), "{reason}");
        assert!(
            !reason.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{reason}"
        );
    }

    /// A webhook receiver on a random local port; what `/ok` receives comes out of `received`.
    struct Receiver {
        base: String,
        received: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
        server: JoinHandle<()>,
    }

    impl Receiver {
        async fn start() -> Self {
            let (sender, received) = mpsc::unbounded_channel();
            let app = Router::new()
                .route("/ok", post(record))
                .route("/status/{status}", post(reply_with))
                .route("/slow", post(reply_late))
                .route(
                    "/redirect",
                    post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
                )
                .with_state(sender);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let server = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Self {
                base,
                received,
                server,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    async fn record(
        State(sender): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        sender.send((headers, body)).unwrap();
        StatusCode::NO_CONTENT
    }

    /// Answers with the status in the path and a body longer than a reason may quote.
    async fn reply_with(Path(status): Path<u16>) -> (StatusCode, String) {
        (StatusCode::from_u16(status).unwrap(), "x".repeat(1000))
    }

    async fn reply_late() -> StatusCode {
        tokio::time::sleep(Duration::from_secs(30)).await;
        StatusCode::NO_CONTENT
    }
}
