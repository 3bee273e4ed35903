//! Why a load run could not be set up.

use hdrhistogram::CreationError;

/// Every way a load run can be refused before it starts; failures of single requests are
/// not errors but counted in the report, because a benchmark must keep going through them.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the target URL is not valid")]
    InvalidUrl(#[source] url::ParseError),
    #[error("only plain http targets are supported, not `{0}`")]
    UnsupportedScheme(String),
    #[error(
        "refusing non-local target host `{0}`: only 127.0.0.1, localhost and [::1] are allowed"
    )]
    NotLocal(String),
    #[error("the target URL has no port and no default port")]
    MissingPort,
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("the body template is not JSON once `{{n}}` is replaced by a number")]
    InvalidTemplate(#[source] serde_json::Error),
    #[error("invalid header `{0}`: expected `name: value`")]
    InvalidHeader(String),
    #[error("a connection task failed")]
    TaskFailed(#[source] tokio::task::JoinError),
    #[error("the latency histogram could not be created")]
    Histogram(#[source] CreationError),
}
