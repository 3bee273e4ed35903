//! The routes, one module per group, merged in [`router`].

mod admin;
mod api_keys;
mod auth;
mod commands;
mod console;
mod docs;
mod documents;
mod events;
mod health;
pub(crate) mod history;
mod metrics;
mod tasks;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(admin::router())
        .merge(api_keys::router())
        .merge(auth::router())
        .merge(commands::router())
        .merge(console::router())
        .merge(docs::router())
        .merge(documents::router())
        .merge(history::router())
        .merge(events::router())
        .merge(tasks::router())
}
