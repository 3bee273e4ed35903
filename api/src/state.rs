//! The state every handler shares, cheap to clone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use herald_bus::ids::Collection;
use herald_bus::nats::Bus;
use herald_bus::schema::{AclAction, DocumentSchema, Registry};
use herald_bus::settings::Settings;
use herald_bus::store::PgStore;
use herald_bus::supervise::RoleHealth;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Caller, TokenVerifier};
use crate::error::ApiError;
use crate::rate_limit::Limiter;
use crate::replies::ReplyRouter;
use crate::tail::EventTail;
use herald_projector::query::DocumentView;

use crate::views::CursorKey;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub registry: Arc<Registry>,
    pub views: HashMap<Collection, DocumentView>,
    pub store: PgStore,
    pub bus: Bus,
    pub replies: ReplyRouter,
    /// Shared with the authentication middleware, whose state it is.
    pub verifier: Arc<TokenVerifier>,
    /// Hashes `password` fields before their commands leave.
    pub passwords: crate::passwords::Passwords,
    /// API versions: the versioned apps' names and descriptions, and the calls per version.
    pub versions: Arc<crate::versions::VersionRouting>,
    /// The built-in login, when `identity.enabled`.
    pub identity: Option<Arc<crate::identity::Identity>>,
    pub cursors: CursorKey,
    pub limiter: Option<Limiter>,
    /// The OpenAPI description, serialized once.
    pub openapi: bytes::Bytes,
    pub streams: Streams,
    /// How each supervised role of this process is doing.
    pub roles: RoleHealth,
    /// What the listener's caps and timeouts did.
    pub connections: Arc<crate::connections::ConnectionStats>,
}

/// What event streams share in one api process.
pub struct Streams {
    pub tail: EventTail,
    /// One per open stream, up to `streams.max_subscribers`.
    pub permits: Arc<Semaphore>,
    /// Ends every open stream when the api stops, so it can drain.
    pub stop: CancellationToken,
    /// The tasks feeding open streams.
    pub tasks: TaskTracker,
    /// Streams ended because their subscriber fell behind.
    pub lagged: AtomicU64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// A pooled connection to the event store; `503` when none can be had.
    pub async fn db(&self) -> Result<deadpool_postgres::Object, ApiError> {
        crate::views::connection(self.store.pool()).await
    }

    /// The collection of a route, hidden (404, or 401 when anonymous) unless the caller could
    /// read at least one of its documents.
    pub fn readable_collection(
        &self,
        caller: &Caller,
        app: &str,
        doc: &str,
    ) -> Result<(&Arc<DocumentSchema>, &DocumentView), ApiError> {
        let (schema, view) = self.collection(app, doc).ok_or_else(|| caller.hidden())?;
        if !caller
            .0
            .may_some_document(schema.acl.roles(&AclAction::Read))
        {
            return Err(caller.hidden());
        }
        Ok((schema, view))
    }

    /// The document named by a route, with its view.
    pub fn collection(
        &self,
        app: &str,
        doc: &str,
    ) -> Option<(&Arc<DocumentSchema>, &DocumentView)> {
        let schema = self.registry.get(app, doc)?;
        let view = self.views.get(&schema.collection())?;
        Some((schema, view))
    }
}
