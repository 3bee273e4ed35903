//! Background tasks declared in `apps/<app>/tasks.yaml`: what starts a task (an event, with
//! conditions on its data), what it does (call a webhook, send a command, run Rust code) and
//! how often and how fast it is retried.
//!
//! - `load`: [`load`] and [`from_sources`] read the documents with `herald-bus` and each app's
//!   `tasks.yaml` here, checked against them, into a `Registry` and the declared [`Tasks`],
//!   reporting the mistakes of both in one sorted list.
//! - `parse`: reads one `tasks.yaml` into [`TaskDecl`]s.
//! - `condition`: whether an event starts a task ([`Trigger`], [`Condition`]).
//! - `template`: fills a command task's [`CommandTemplate`] from the event.

mod condition;
mod load;
mod parse;
mod template;

use std::time::Duration;

pub use condition::Trigger;
pub use herald_bus::schema::condition::{Condition, ConditionOp};
pub use load::{Tasks, from_sources, load};
pub use template::{CommandTemplate, TemplateAction};

/// One task of one app, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDecl {
    /// The app whose `tasks.yaml` declares the task (its trigger may name another app's
    /// document).
    pub app: String,
    pub name: String,
    pub description: Option<String>,
    /// The event that starts the task; `None` when the declaration has no `on`.
    pub trigger: Option<Trigger>,
    pub kind: TaskKind,
    /// How long one attempt may run before it counts as failed (YAML `timeout_secs`).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// How many runs of this task one worker process executes at once.
    pub concurrency: usize,
}

impl TaskDecl {
    /// `<app>.<name>`: tasks of different apps may share a name, so this is what identifies a
    /// task to workers and operators.
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.app, self.name)
    }
}

/// What a task does when it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskKind {
    /// Deliver the event to `url`, signed with the settings secret `webhooks.secrets.<secret>`;
    /// the YAML names the secret rather than holding it, so apps can live in version control.
    Webhook { url: String, secret: String },
    /// Send a command to a collection, filled in from the event.
    Command(CommandTemplate),
    /// Code registered with the worker under the task's [`TaskDecl::full_name`].
    Rust,
}

/// How a failed attempt is retried: exponential backoff with a cap, plus jitter so tasks that
/// failed together (a webhook endpoint that was down) do not all retry at the same instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The delay before the second attempt (before jitter).
    pub backoff: Duration,
    /// The longest delay between two attempts (before jitter).
    pub max_delay: Duration,
}

/// A task's timeout when its declaration gives none (and for tasks only registered in Rust).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A task's runs at once per worker process when its declaration gives no `concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 10;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, once `attempt` (1-based) has failed.
    ///
    /// With `d = min(max_delay, backoff * 2^(attempt-1))` it is `d/2 + jitter * d/2`
    /// ("equal jitter"): delays still grow with every failure, yet runs that failed together
    /// spread over half the window. `jitter` is a random number in `[0, 1]`; values outside
    /// that range are clamped, so a bad random source cannot produce a zero or huge delay.
    #[must_use]
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let mut full = self.backoff;
        // Doubling until the cap, rather than computing 2^(attempt-1), cannot overflow.
        for _ in 1..attempt {
            if full >= self.max_delay {
                break;
            }
            full = full.saturating_mul(2);
        }
        let half = full.min(self.max_delay) / 2;
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        half + half.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_ms: u64, max_delay_secs: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_millis(backoff_ms),
            max_delay: Duration::from_secs(max_delay_secs),
        }
    }

    #[test]
    fn delays_double_with_each_failure_until_the_cap() {
        let retry = policy(1000, 5);
        let full: Vec<u128> = (1..=6).map(|n| retry.delay(n, 1.0).as_millis()).collect();
        assert_eq!(full, [1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(retry.delay(u32::MAX, 1.0), Duration::from_secs(5));
        assert_eq!(retry.delay(0, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays_over_the_upper_half() {
        let retry = policy(1000, 300);
        assert_eq!(retry.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(retry.delay(3, 0.5), Duration::from_secs(3));
        assert_eq!(retry.delay(3, 1.0), Duration::from_secs(4));
        for jitter in [-1.0, 2.0, f64::NAN, f64::INFINITY] {
            let delay = retry.delay(3, jitter);
            assert!(
                (Duration::from_secs(2)..=Duration::from_secs(4)).contains(&delay),
                "{jitter}: {delay:?}"
            );
        }
    }

    #[test]
    fn the_default_policy_is_five_attempts_from_one_second_up_to_five_minutes() {
        let retry = RetryPolicy::default();
        assert_eq!(retry.max_attempts, 5);
        assert_eq!(retry.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry.delay(20, 1.0), Duration::from_secs(300));
    }
}
