//! `GET /metrics`: Prometheus text exposition. Readable with the configured scrape token or the
//! token of an admin of `auth.operator_tenant`. Lags are read from the catalog at scrape time, so every api process reports
//! the same, current figures; stream counters are this process's own.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_bus::store::parked;
use herald_bus::store::reader::{Lag, RELAY_CHECKPOINT, checkpoint_lag, frontier_age};
use herald_bus::supervise::RoleState;
use herald_projector::status::{VersionStatus, statuses};
use herald_workers::runs;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::auth::bearer_token;
use crate::connections::{Cap, Closed, ConnectionStats};
use crate::error::ApiError;
use crate::state::AppState;
use crate::versions::VersionRouting;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    projection: String,
    version: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    task: String,
    quantile: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReaderLabels {
    reader: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

/// Parked events by reader (every process reports them all, from `herald.parked_events`), and
/// this process's roles that are not running (1 while a role restarts or after it failed).
fn register_faults(
    registry: &mut Registry,
    parked: &[(String, i64)],
    roles: &std::collections::BTreeMap<String, RoleState>,
) {
    let events = Family::<ReaderLabels, Gauge>::default();
    for (reader, count) in parked {
        events
            .get_or_create(&ReaderLabels {
                reader: reader.clone(),
            })
            .set(*count);
    }
    registry.register(
        "parked_events",
        "Events a reader could not read or apply and parked to go on without them",
        events,
    );
    let down = Family::<RoleLabels, Gauge>::default();
    for (role, state) in roles {
        down.get_or_create(&RoleLabels { role: role.clone() })
            .set(i64::from(*state != RoleState::Running));
    }
    registry.register(
        "role_down",
        "1 while a role of this process is restarting after a failure (or has failed)",
        down,
    );
}

/// The runs whose durations `/metrics` reports ended within this many seconds.
const DURATION_WINDOW_SECS: f64 = 300.0;

/// Task figures, read from `herald.tasks` at scrape time (so every api process reports the
/// runs of every worker): runs by state (queued, running, retrying, succeeded, dead), attempts
/// and retries by state, and the recent attempt durations.
fn register_tasks(
    registry: &mut Registry,
    states: &[runs::StateCount],
    durations: &[runs::Durations],
) {
    let runs = Family::<TaskLabels, Gauge>::default();
    let attempts = Family::<TaskLabels, Gauge>::default();
    let retries = Family::<TaskLabels, Gauge>::default();
    for count in states {
        let labels = TaskLabels {
            task: count.name.clone(),
            state: count.state.clone(),
        };
        runs.get_or_create(&labels).set(count.runs);
        attempts.get_or_create(&labels).set(count.attempts);
        retries.get_or_create(&labels).set(count.retries);
    }
    registry.register("task_runs", "Task runs by task and state", runs);
    registry.register(
        "task_attempts",
        "Attempts made by the task runs in each state",
        attempts,
    );
    registry.register(
        "task_retries",
        "Attempts after the first made by the task runs in each state",
        retries,
    );
    let seconds = Family::<QuantileLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for task in durations {
        for (quantile, value) in [("0.5", &task.p50), ("0.99", &task.p99)] {
            let labels = QuantileLabels {
                task: task.name.clone(),
                quantile: quantile.to_owned(),
            };
            seconds.get_or_create(&labels).set(*value);
        }
    }
    registry.register(
        "task_duration_seconds",
        "Last-attempt duration of the runs that ended in the last five minutes",
        seconds,
    );
}

/// Whether the request may scrape: the scrape token, or an admin's bearer token.
async fn allowed(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthenticated("a bearer token is required"))?;
    if let Some(scrape) = &state.settings.metrics.scrape_token
        && bool::from(scrape.expose_secret().as_bytes().ct_eq(token.as_bytes()))
    {
        return Ok(());
    }
    let verified = state.verifier.verify(token).await?;
    let operator = state.settings.auth.operator_tenant.as_deref();
    if verified.principal.is_operator(operator) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "metrics need the scrape token or the admin role in the operators' tenant".into(),
        ))
    }
}

/// What `/metrics` reads from Postgres at scrape time.
struct Stored {
    versions: Vec<VersionStatus>,
    relay: Lag,
    frontier: f64,
    task_states: Vec<runs::StateCount>,
    task_durations: Vec<runs::Durations>,
    parked: Vec<(String, i64)>,
}

impl Stored {
    async fn read(state: &AppState) -> Result<Self, ApiError> {
        let client = state.db().await?;
        let client = &**client;
        Ok(Self {
            versions: statuses(client)
                .await
                .map_err(ApiError::store_unavailable)?,
            relay: checkpoint_lag(client, RELAY_CHECKPOINT)
                .await
                .map_err(ApiError::store_unavailable)?,
            frontier: frontier_age(client)
                .await
                .map_err(ApiError::store_unavailable)?,
            task_states: runs::state_counts(client)
                .await
                .map_err(ApiError::store_unavailable)?,
            task_durations: runs::recent_durations(client, DURATION_WINDOW_SECS)
                .await
                .map_err(ApiError::store_unavailable)?,
            parked: parked::counts(client)
                .await
                .map_err(ApiError::store_unavailable)?,
        })
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    allowed(&state, &headers).await?;
    let stored = Stored::read(&state).await?;
    let mut registry = Registry::with_prefix("herald");
    register_projections(&mut registry, &stored.versions);
    register_log(&mut registry, &stored.relay, stored.frontier);
    register_streams(&mut registry, &state);
    register_connections(&mut registry, &state.connections);
    register_versions(&mut registry, &state.versions);
    register_group_commits(&mut registry, &state);
    register_tasks(&mut registry, &stored.task_states, &stored.task_durations);
    register_faults(&mut registry, &stored.parked, &state.roles.snapshot());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::<i64>::default();
    g.set(value);
    g
}

fn fgauge(value: f64) -> Gauge<f64, AtomicU64> {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    g
}

/// Each projection version's lag, progress and heartbeat.
fn register_projections(registry: &mut Registry, versions: &[VersionStatus]) {
    let lag_events = Family::<ProjectionLabels, Gauge>::default();
    let lag_seconds = Family::<ProjectionLabels, Gauge<f64, AtomicU64>>::default();
    let applied = Family::<ProjectionLabels, Gauge>::default();
    let heartbeat_age = Family::<ProjectionLabels, Gauge<f64, AtomicU64>>::default();
    let now = chrono::Utc::now();
    for status in versions {
        let v = &status.version;
        let labels = ProjectionLabels {
            projection: v.table.projection.clone(),
            version: v.table.version.to_string(),
            state: serde_json::to_value(v.state)
                .ok()
                .and_then(|s| s.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        lag_events.get_or_create(&labels).set(status.lag.events);
        lag_seconds.get_or_create(&labels).set(status.lag.seconds);
        applied.get_or_create(&labels).set(v.events_done);
        if let Some(beat) = v.heartbeat_at {
            let age = (now - beat).num_milliseconds() as f64 / 1000.0;
            heartbeat_age.get_or_create(&labels).set(age);
        }
    }
    registry.register(
        "projection_lag_events",
        "Committed events a projection version has not applied yet",
        lag_events,
    );
    registry.register(
        "projection_lag_seconds",
        "Age of the oldest event a projection version has not applied yet",
        lag_seconds,
    );
    registry.register(
        "projection_events_applied",
        "Events a projection version has applied since it was created",
        applied,
    );
    registry.register(
        "projection_heartbeat_age_seconds",
        "Time since a projection version's runner last reported",
        heartbeat_age,
    );
}

/// How far the relay trails the log, and how long the log's readable end has been held back.
fn register_log(registry: &mut Registry, relay: &Lag, frontier: f64) {
    registry.register(
        "relay_lag_events",
        "Committed events not yet published to the events stream",
        gauge(relay.events),
    );
    registry.register(
        "relay_lag_seconds",
        "Age of the oldest event not yet published to the events stream",
        fgauge(relay.seconds),
    );
    registry.register(
        "log_frontier_age_seconds",
        "How long the oldest open writing transaction has held back the readable log",
        fgauge(frontier),
    );
}

/// This api process's event streams.
fn register_streams(registry: &mut Registry, state: &AppState) {
    let streams = &state.streams;
    let open = state.settings.streams.max_subscribers - streams.permits.available_permits();
    registry.register(
        "event_streams_open",
        "Event streams open on this api process",
        gauge(i64::try_from(open).unwrap_or(i64::MAX)),
    );
    let lagged = Counter::<u64>::default();
    lagged.inc_by(streams.lagged.load(Ordering::Relaxed));
    registry.register(
        "event_streams_lagged",
        "Event streams this api process ended because the subscriber fell behind",
        lagged,
    );
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    app: String,
    version: String,
}

/// Calls to each version of the apps that declare versions, so operators see who still uses
/// an old one.
fn register_versions(registry: &mut Registry, versions: &VersionRouting) {
    let calls = Family::<VersionLabels, Counter>::default();
    for (app, version, count) in versions.calls() {
        let labels = VersionLabels {
            app: app.to_owned(),
            version: version.to_owned(),
        };
        calls.get_or_create(&labels).inc_by(count);
    }
    registry.register(
        "api_version_calls",
        "Requests to each API version of the apps that declare versions, on this api process",
        calls,
    );
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapLabels {
    cap: String,
}

/// This api process's connections, and what its timeouts and caps did to them.
fn register_connections(registry: &mut Registry, stats: &ConnectionStats) {
    registry.register(
        "http_connections_open",
        "HTTP connections open on this api process",
        gauge(i64::try_from(stats.open()).unwrap_or(i64::MAX)),
    );
    let closed = Family::<ReasonLabels, Counter>::default();
    for reason in Closed::ALL {
        let labels = ReasonLabels {
            reason: reason.label().to_owned(),
        };
        closed.get_or_create(&labels).inc_by(stats.closed(reason));
    }
    registry.register(
        "http_connections_closed",
        "HTTP connections closed by a timeout: head, body, idle or write",
        closed,
    );
    let (evicted, refused) = (
        Family::<CapLabels, Counter>::default(),
        Family::<CapLabels, Counter>::default(),
    );
    for cap in Cap::ALL {
        let labels = CapLabels {
            cap: cap.label().to_owned(),
        };
        evicted.get_or_create(&labels).inc_by(stats.evicted(cap));
        refused.get_or_create(&labels).inc_by(stats.refused(cap));
    }
    registry.register(
        "http_connections_evicted",
        "Idle HTTP connections closed to make room for a new one at a cap",
        evicted,
    );
    registry.register(
        "http_connections_refused",
        "HTTP connections turned away at a cap, when no idle one could make room",
        refused,
    );
}

/// This process's group commits, when it runs the handler.
fn register_group_commits(registry: &mut Registry, state: &AppState) {
    let Some(groups) = state.store.group_counts() else {
        return;
    };
    for (name, help, value) in [
        (
            "group_commits",
            "Groups of commands this process committed in one transaction",
            &groups.groups,
        ),
        (
            "group_committed_commands",
            "Commands this process committed in groups",
            &groups.commits,
        ),
        (
            "group_commit_fallbacks",
            "Groups this process committed command by command instead",
            &groups.fallbacks,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value.load(Ordering::Relaxed));
        registry.register(name, help, counter);
    }
}
