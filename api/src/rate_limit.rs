//! Per-caller rate limiting (a token bucket per tenant and subject, or per address for
//! anonymous callers, whose `Herald-Tenant` header is theirs to vary). Over the limit: `429 rate_limited` with `Retry-After` and the IETF
//! `RateLimit`/`RateLimit-Policy` headers.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use herald_bus::access::Principal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;

/// How often buckets of callers that went quiet are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Limiter {
    buckets: Arc<DefaultKeyedRateLimiter<String>>,
    per_second: u32,
    burst: u32,
}

impl Limiter {
    /// `None` when limiting is off (`per_second` is 0).
    pub fn new(
        per_second: u32,
        burst: u32,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst_size = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        let buckets = Arc::new(RateLimiter::keyed(
            Quota::per_second(rate).allow_burst(burst_size),
        ));
        let forgetting = buckets.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => forgetting.retain_recent(),
                }
            }
        });
        Some(Self {
            buckets,
            per_second,
            burst: burst_size.get(),
        })
    }

    fn policy(&self) -> String {
        let window = self.burst.div_ceil(self.per_second).max(1);
        format!("\"per-caller\";q={};w={window}", self.burst)
    }
}

/// Counts the request against its caller's bucket; runs after authentication.
pub async fn limit(
    State(limiter): State<Option<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = &limiter else {
        return next.run(request).await;
    };
    let Some(principal) = request.extensions().get::<Principal>() else {
        return next.run(request).await;
    };
    let key = match &principal.sub {
        Some(sub) => format!("{}\u{0}{sub}", principal.tenant),
        None => {
            let address = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string());
            format!("\u{0}{}", address.unwrap_or_default())
        }
    };
    match limiter.buckets.check_key(&key) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = whole_seconds(wait);
            let mut response = ApiError::RateLimited(seconds).into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&format!("\"per-caller\";r=0;t={seconds}")) {
                headers.insert("ratelimit", value);
            }
            if let Ok(value) = HeaderValue::from_str(&limiter.policy()) {
                headers.insert("ratelimit-policy", value);
            }
            response
        }
    }
}

/// A wait in whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
