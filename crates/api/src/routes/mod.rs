//! The routes, one module per group, merged in [`router`].

mod commands;
mod docs;
mod documents;
mod health;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(commands::router())
        .merge(docs::router())
        .merge(documents::router())
}
