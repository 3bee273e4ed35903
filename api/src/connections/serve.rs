//! Serving one connection: hyper's HTTP/1.1 with axum as the service, the socket and bodies
//! wrapped so they move the connection's phase, and the future that closes it at its deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

use super::connection::{ANSWERING, Connection, IDLE, RECEIVING};
use super::{Closed, Limits};

/// The answer to a request that arrives on a connection evicted a moment before: nothing of
/// it ran, so the client may send it again.
fn evicted() -> hyper::Response<ResponseBody> {
    let mut response =
        axum::response::IntoResponse::into_response(crate::error::ApiError::Unavailable(
            "the connection was closed to make room; retry on a new one".into(),
        ));
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response.map(|body| ResponseBody {
        inner: body,
        connection: None,
    })
}

/// Serves one connection until it ends, is evicted, or a deadline passes (then the reason).
pub(super) async fn serve_one<S>(
    stream: S,
    remote: SocketAddr,
    router: Router,
    connection: &Arc<Connection>,
    limits: &Limits,
    shutdown: CancellationToken,
) -> Option<Closed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        inner: stream,
        connection: Arc::clone(connection),
    });
    let for_requests = Arc::clone(connection);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let connection = Arc::clone(&for_requests);
        let router = router.clone();
        async move {
            let (parts, incoming) = request.into_parts();
            let receiving = !incoming.is_end_stream();
            if !connection.enter_request(if receiving { RECEIVING } else { ANSWERING }) {
                return Ok(evicted());
            }
            let mut request = hyper::Request::from_parts(
                parts,
                Body::new(RequestBody {
                    incoming: Some(incoming),
                    connection: Arc::clone(&connection),
                }),
            );
            request.extensions_mut().insert(ConnectInfo(remote));
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| ResponseBody {
                inner: body,
                connection: Some(connection),
            }))
        }
    });
    // The deadlines are this module's, so hyper keeps no timer of its own.
    let serving = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(io, service);
    Policed {
        serving: Box::pin(serving),
        connection: Arc::clone(connection),
        limits: limits.clone(),
        sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        armed: None,
        evicted: Box::pin(connection.evict.clone().cancelled_owned()),
        shutdown: Box::pin(shutdown.cancelled_owned()),
        draining: false,
    }
    .await
}

/// A connection's serving future with its deadlines and eviction.
struct Policed<S> {
    serving: Pin<Box<S>>,
    connection: Arc<Connection>,
    limits: Limits,
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set to.
    armed: Option<u64>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    draining: bool,
}

type Serving<I, S> = hyper::server::conn::http1::Connection<I, S>;

impl<I, S, B> Future for Policed<Serving<I, S>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: HttpBody + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Option<Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Closed>> {
        let this = &mut *self;
        if this.serving.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if this.evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if !this.draining && this.shutdown.as_mut().poll(cx).is_ready() {
            this.draining = true;
            this.serving.as_mut().graceful_shutdown();
            if this.serving.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        // Serving moved the phase along; the deadline follows from where it is now.
        let Some((deadline, reason)) = this.connection.deadline(&this.limits) else {
            this.armed = None;
            return Poll::Pending;
        };
        if this.connection.now() >= deadline {
            return Poll::Ready(Some(reason));
        }
        if this.armed != Some(deadline) {
            let at = this.connection.clock + Duration::from_millis(deadline);
            this.sleep.as_mut().reset(at);
            this.armed = Some(deadline);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            // Woken at the deadline: check again, as serving may have moved on since.
            this.armed = None;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// The socket, noting when bytes arrive and when a write waits on the client.
struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.read_some();
        }
        polled
    }
}

impl<S> Watched<S> {
    fn note_write<T>(&self, polled: &Poll<T>) {
        let blocked = &self.connection.write_blocked;
        match polled {
            Poll::Pending if blocked.load(Ordering::Relaxed) == 0 => {
                blocked.store(self.connection.now().max(1), Ordering::Relaxed);
            }
            Poll::Ready(_) => blocked.store(0, Ordering::Relaxed),
            Poll::Pending => {}
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that moves its connection to answering once it has all arrived (or the
/// handler let it go).
struct RequestBody {
    incoming: Option<Incoming>,
    connection: Arc<Connection>,
}

impl RequestBody {
    fn received(&mut self) {
        if self.incoming.take().is_some() {
            self.connection.advance(Some(RECEIVING), ANSWERING);
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(incoming).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.incoming.as_ref().is_some_and(HttpBody::is_end_stream),
            Poll::Pending => false,
        };
        if ended {
            self.received();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.received();
    }
}

/// A response body that makes its connection idle once it has been sent (or dropped).
struct ResponseBody {
    inner: Body,
    /// The connection to make idle, until the body ends.
    connection: Option<Arc<Connection>>,
}

impl ResponseBody {
    fn finished(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.enter(IDLE);
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.finished();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finished();
    }
}
