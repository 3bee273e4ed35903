//! How a task run fails.

/// Why a run failed, which decides whether it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Worth another attempt after a back-off (a timeout, a 5xx, a lost connection).
    #[error("retryable: {0}")]
    Retry(String),
    /// Will never succeed (bad input, a 4xx): stop now.
    #[error("permanent: {0}")]
    Permanent(String),
}
