//! Building and running the HTTP server. `build` binds and connects; `run_until_stopped` serves
//! until its shutdown future completes, then finishes the requests in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn;
use axum::middleware::from_fn_with_state;
use herald_bus::nats::Bus;
use herald_bus::schema::Registry;
use herald_bus::settings::Settings;
use herald_bus::store::PgStore;
use herald_bus::supervise::RoleHealth;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Authenticator, TokenVerifier, authenticate};
use crate::browser::{SecurityHeaders, cors, preflight_no_content, security_headers};
use crate::connections::{self, Limits, Listener};
use crate::error::{ApiError, log_causes};
use crate::identity::Identity;
use crate::passwords::Passwords;
use crate::rate_limit::{Limiter, limit};
use crate::replies::ReplyRouter;
use crate::request_id;
use crate::routes;
use crate::state::{AppState, Inner, Streams};
use crate::tail::EventTail;
use crate::versions::VersionRouting;
use herald_bus::schema::versions::FIRST_VERSION;
use herald_projector::query::DocumentView;

use crate::views::CursorKey;

pub struct ApiServer {
    listener: Listener,
    router: Router,
    /// Work beside the requests (reply routing, limiter upkeep, the event tail); it ends with
    /// `shutdown`.
    background: TaskTracker,
    /// Ends the open event streams once the api stops accepting requests.
    streams_stop: CancellationToken,
}

/// A request that takes longer than this is answered `503` rather than left hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

impl ApiServer {
    /// Binds `settings.http.addr` (port 0 picks a free port) and wires the router.
    pub async fn build(
        settings: Settings,
        registry: Arc<Registry>,
        store: PgStore,
        bus: Bus,
        shutdown: CancellationToken,
        roles: RoleHealth,
    ) -> anyhow::Result<Self> {
        let background = TaskTracker::new();
        let passwords = Passwords::new()?;
        let identity = if settings.identity.enabled {
            Some(
                Identity::start(
                    &settings.identity,
                    &settings.auth,
                    store.clone(),
                    passwords.clone(),
                    &background,
                    shutdown.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let mut verifier = TokenVerifier::from_settings(&settings.auth)?;
        if let Some(identity) = &identity {
            verifier = verifier.trusting(identity.key());
        }
        let verifier = Arc::new(verifier);
        if let Some(jwks) = verifier.jwks() {
            // A provider that is down at start leaves no keys yet: tokens naming one are
            // refused until a fetch succeeds.
            match jwks.fetch().await {
                Ok(count) => {
                    tracing::info!(keys = count, "fetched the identity provider's key set")
                }
                Err(error) => {
                    tracing::warn!(%error, "the identity provider's key set could not be fetched; retrying")
                }
            }
            let every = std::time::Duration::from_secs(settings.auth.jwks_refresh_secs.max(1));
            jwks.refresh_every(every, &background, shutdown.clone());
        }
        let cursors = CursorKey::from_settings(&settings.auth);
        let replies = ReplyRouter::start(&bus, &background, shutdown.clone()).await?;
        let limiter = Limiter::new(
            settings.http.rate_limit_per_second,
            settings.http.rate_limit_burst,
            &background,
            shutdown.clone(),
        );
        let tail = EventTail::start(
            store.pool().clone(),
            settings.database.clone(),
            settings.streams.buffer,
            &background,
            shutdown,
            roles.clone(),
        )
        .await?;
        let streams = Streams {
            tail,
            permits: Arc::new(Semaphore::new(settings.streams.max_subscribers)),
            stop: CancellationToken::new(),
            tasks: background.clone(),
            lagged: AtomicU64::new(0),
        };
        let streams_stop = streams.stop.clone();
        let views = registry
            .documents()
            .map(|schema| (schema.collection(), DocumentView::new(schema)))
            .collect();
        let openapi = serde_json::to_vec(&crate::openapi::describe(
            &registry.version_view(FIRST_VERSION),
            FIRST_VERSION,
        ))?
        .into();
        let versions = Arc::new(VersionRouting::new(
            Arc::clone(&registry),
            settings.http.body_limit,
            crate::openapi::describe,
        )?);
        let open_files = raise_open_files_limit();
        let listener = Listener {
            listener: connections::bind(settings.http.addr, settings.http.backlog)?,
            limits: Limits::from_settings(&settings.http, open_files),
            stats: Arc::default(),
        };
        tracing::debug!(limits = ?listener.limits, "connection limits");
        let state = AppState::new(Inner {
            settings,
            registry,
            views,
            store,
            bus,
            replies,
            verifier,
            passwords,
            identity,
            versions,
            cursors,
            limiter,
            openapi,
            streams,
            roles,
            connections: Arc::clone(&listener.stats),
        });
        background.close();
        Ok(Self {
            listener,
            router: router(state),
            background,
            streams_stop,
        })
    }

    /// The background work, to await once its shutdown token is cancelled.
    pub fn background(&self) -> TaskTracker {
        self.background.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.listener.local_addr()
    }

    /// Serves until `shutdown`, then lets the requests in flight finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let streams_stop = self.streams_stop;
        let stopping = shutdown.clone();
        tokio::join!(self.listener.serve(self.router, shutdown), async move {
            stopping.cancelled().await;
            // Open event streams would hold the drain forever; clients resume elsewhere.
            streams_stop.cancel();
        });
        Ok(())
    }
}

/// Raises this process's soft open-files limit to its hard limit, so the connection cap
/// derived from it is as high as the system allows; returns the limit in force.
fn raise_open_files_limit() -> u64 {
    let before = connections::open_files_limit();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(after) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the open-files limit to the hard limit"
            );
            after
        }
        Ok(after) => after,
        Err(error) => {
            tracing::warn!(%error, limit = before, "cannot raise the open-files limit");
            before
        }
    }
}

/// Answers `503` (as a problem) for a request that outlives [`REQUEST_TIMEOUT`].
async fn time_limit(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::Unavailable(
            "the request took too long".into(),
        )),
    }
}

/// The whole HTTP surface with its cross-cutting layers (outermost last).
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(request_id::HEADER);
    let routes = routes::router()
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed(None) })
        // Layers run bottom-up: authenticate, then count the request against its caller.
        .layer(from_fn_with_state(state.limiter.clone(), limit))
        .layer(from_fn_with_state(
            Authenticator {
                verifier: state.verifier.clone(),
                store: state.store.clone(),
            },
            authenticate,
        ))
        // Bodies are read by `JsonBody` with the configured limit; this only disables axum's own.
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());
    // A versioned path is served by the `/v1` routes: it is rewritten before routing, so the
    // layer wraps the routes rather than each of them.
    let versioned =
        from_fn_with_state(Arc::clone(&state.versions), crate::versions::serve).layer(routes);
    Router::new()
        .fallback_service(versioned)
        .layer(from_fn(time_limit))
        // Inside the request-id scope, so a panic's problem still carries the request id.
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(anyhow::anyhow!("handler panicked")))
        }))
        .layer(from_fn(request_id::scope))
        .layer(from_fn(log_causes))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request
                .headers()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request.id = %id)
        }))
        .layer(from_fn_with_state(
            SecurityHeaders::from_settings(&state.settings.http),
            security_headers,
        ))
        // Outside authentication and rate limiting: a preflight carries no token.
        .layer(cors(&state.settings.http.cors))
        .layer(from_fn(preflight_no_content))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
