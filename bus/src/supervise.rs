//! Roles that fail are restarted, not fatal: a role's task that returns an error or panics is
//! logged with its role, restarted with back-off, and reported as restarting (for `/readyz`)
//! while the other roles go on. Only a role that keeps failing — [`RESTARTS`] times in a row,
//! none of them running for [`HEALTHY_AFTER`] — ends the process, so a supervisor sees it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Failures in a row after which a role gives up and the process stops.
pub const RESTARTS: u32 = 8;
/// A run that lasted this long counts as healthy: the failures before it are forgotten.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MOST_DELAY: Duration = Duration::from_secs(30);

/// How a role of this process is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RoleState {
    Running,
    /// It failed and waits to start again.
    Restarting {
        failures: u32,
        error: String,
    },
    /// It failed too often; the process is stopping.
    Failed {
        error: String,
    },
}

/// The state of each supervised role of this process, shared with `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct RoleHealth(Arc<Mutex<BTreeMap<String, RoleState>>>);

impl RoleHealth {
    fn set(&self, role: &str, state: RoleState) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(role.to_owned(), state);
    }

    /// Every supervised role and its state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, RoleState> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The roles that are not running, by name.
    pub fn degraded(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|(_, state)| *state != RoleState::Running)
            .map(|(role, _)| role)
            .collect()
    }
}

/// Runs the role `start` makes, each run on a task of its own, until it ends without error or
/// `stop` is cancelled. A run that fails or panics is logged and started again after a delay
/// that doubles from 0.5 s up to 30 s; after [`RESTARTS`] failures in a row the error is
/// returned.
///
/// # Errors
/// The last failure, once the role has failed [`RESTARTS`] times in a row.
pub async fn supervise<F, Fut>(
    role: &str,
    health: RoleHealth,
    stop: CancellationToken,
    start: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut failures = 0u32;
    loop {
        health.set(role, RoleState::Running);
        let started = Instant::now();
        let error = match tokio::spawn(start()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => format!("{error:#}"),
            Err(join) => match join.try_into_panic() {
                Ok(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
                Err(join) => join.to_string(),
            },
        };
        if stop.is_cancelled() {
            return Ok(());
        }
        if started.elapsed() >= HEALTHY_AFTER {
            failures = 0;
        }
        failures += 1;
        if failures >= RESTARTS {
            error!(role, failures, error, "role failed too often; stopping");
            health.set(
                role,
                RoleState::Failed {
                    error: error.clone(),
                },
            );
            anyhow::bail!("the {role} role failed {failures} times in a row: {error}");
        }
        let delay = FIRST_DELAY
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(MOST_DELAY);
        error!(role, failures, error, retry_in = ?delay, "role failed; restarting");
        health.set(role, RoleState::Restarting { failures, error });
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        info!(role, "role restarting");
    }
}

/// The text a panic was raised with, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_role_restarts_and_others_see_it_recover() {
        let runs = Arc::new(AtomicU32::new(0));
        let health = RoleHealth::default();
        let counted = runs.clone();
        let outcome = supervise(
            "projector",
            health.clone(),
            CancellationToken::new(),
            move || {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= 2, "run {run} fails");
                    Ok(())
                }
            },
        )
        .await;
        assert!(outcome.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(health.snapshot()["projector"], RoleState::Running);
        assert!(health.degraded().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_role_that_keeps_failing_ends_with_its_error() {
        let health = RoleHealth::default();
        let outcome = supervise(
            "relay",
            health.clone(),
            CancellationToken::new(),
            || async { anyhow::bail!("NATS refuses") },
        )
        .await;
        let error = format!("{:#}", outcome.unwrap_err());
        assert!(error.contains("relay role failed 8 times") && error.contains("NATS refuses"));
        assert_eq!(health.degraded(), vec!["relay".to_owned()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_after_shutdown_is_not_restarted() {
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let (counted, stopping) = (runs.clone(), stop.clone());
        let outcome = supervise("worker", RoleHealth::default(), stop, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            stopping.cancel();
            async { anyhow::bail!("interrupted") }
        })
        .await;
        assert!(outcome.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
