//! Failures with an exit code of their own.

/// A failure that ends the process with its own exit code, so scripts can tell it apart from
/// the others (which exit with 1).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}
