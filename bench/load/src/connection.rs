//! One HTTP/1.1 keep-alive connection, reopened after a failure.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::AbortOnDropHandle;

use crate::{RequestSpec, Target};

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server answered and the whole body was read.
    Response(StatusCode),
    /// Connecting, writing or reading failed; no status to report.
    TransportError,
}

/// A connection owned by exactly one sender at a time, so each measured latency is one
/// request's round trip and never includes waiting behind another request in a pool.
pub(crate) struct Connection {
    target: Target,
    open: Option<Open>,
}

struct Open {
    sender: SendRequest<Full<Bytes>>,
    /// Drives the socket; aborted with the connection so no task outlives its run.
    _driver: AbortOnDropHandle<()>,
}

impl Connection {
    /// Does not connect yet: the first request does, so unused connections cost nothing.
    pub(crate) fn new(target: Target) -> Self {
        Self { target, open: None }
    }

    /// Sends `spec` and reads the whole response body, since a server is only done with a
    /// request once its last byte is out.
    pub(crate) async fn send(&mut self, spec: RequestSpec) -> Outcome {
        let Ok(request) = self.build_request(spec) else {
            return Outcome::TransportError;
        };
        let Some(sender) = self.ready_sender().await else {
            return Outcome::TransportError;
        };
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => {
                self.open = None;
                return Outcome::TransportError;
            }
        };
        let status = response.status();
        match response.into_body().collect().await {
            Ok(_) => Outcome::Response(status),
            Err(_) => {
                self.open = None;
                Outcome::TransportError
            }
        }
    }

    fn build_request(&self, spec: RequestSpec) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let mut builder = Request::builder()
            .method(spec.method)
            .uri(spec.path)
            .header(header::HOST, self.target.authority());
        if let Some(headers) = builder.headers_mut() {
            headers.extend(spec.headers);
            if spec.body.is_some() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
        }
        builder.body(Full::new(spec.body.unwrap_or_default()))
    }

    /// Returns a sender ready for the next request, reconnecting when the server closed the
    /// idle connection (keep-alive timeout) so that is not miscounted as a failed request.
    async fn ready_sender(&mut self) -> Option<&mut SendRequest<Full<Bytes>>> {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.sender.is_closed())
        {
            self.open = None;
        }
        if let Some(open) = self.open.as_mut()
            && open.sender.ready().await.is_err()
        {
            self.open = None;
        }
        if self.open.is_none() {
            self.open = connect(&self.target).await;
        }
        let open = self.open.as_mut()?;
        open.sender.ready().await.ok()?;
        Some(&mut open.sender)
    }
}

async fn connect(target: &Target) -> Option<Open> {
    let stream = TcpStream::connect(target.addr()).await.ok()?;
    // Requests are small and latency is the measurement: never wait for Nagle's timer.
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    let driver = tokio::spawn(async move {
        // A failed connection shows up as an error on the next send; nothing to add here.
        let _ = connection.await;
    });
    Some(Open {
        sender,
        _driver: AbortOnDropHandle::new(driver),
    })
}
