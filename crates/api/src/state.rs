//! The state every handler shares, cheap to clone.

use std::collections::HashMap;
use std::sync::Arc;

use herald_bus::nats::Bus;
use herald_bus::schema::{DocumentSchema, Registry};
use herald_bus::settings::Settings;
use herald_bus::store::PgStore;

use crate::auth::TokenVerifier;
use crate::rate_limit::Limiter;
use crate::replies::ReplyRouter;
use crate::views::{CursorKey, DocumentView};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub registry: Arc<Registry>,
    pub views: HashMap<String, DocumentView>,
    pub store: PgStore,
    pub bus: Bus,
    pub replies: ReplyRouter,
    pub verifier: TokenVerifier,
    pub cursors: CursorKey,
    pub limiter: Option<Limiter>,
    /// The OpenAPI description, serialized once.
    pub openapi: bytes::Bytes,
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
