//! One error type for every failure a request can meet, rendered as an RFC 9457 problem. The
//! status and problem code of each variant are decided in one `match`; logging happens in the
//! request span (middleware), not here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_bus::command::{Rejection, RejectionCode};
use herald_bus::schema::FieldError;
use herald_projector::query::ReadError;
use serde_json::{Value, json};

use crate::request_id;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{detail}")]
    InvalidQuery { parameter: String, detail: String },
    /// A request header the server reads is malformed.
    #[error("{header} {detail}")]
    InvalidHeader {
        header: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such resource")]
    NotFound,
    /// With the methods the path takes, for the `Allow` header (routing adds it itself).
    #[error("this method is not allowed here")]
    MethodNotAllowed(Option<&'static str>),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be JSON (application/json)")]
    UnsupportedMediaType,
    #[error("{0}")]
    Conflict(String),
    /// A declared command's guard refused it, with the app's own code.
    #[error("{detail}")]
    Refused { code: String, detail: String },
    #[error("{0}")]
    UniqueViolation(String),
    #[error("a request with this Idempotency-Key is still being handled")]
    IdempotencyInFlight,
    #[error("{0}")]
    VersionMismatch(String),
    #[error("{0}")]
    PreconditionRequired(String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// Over a rate limit; the seconds to wait go in `Retry-After`.
    #[error("too many requests; slow down and retry after the indicated delay")]
    RateLimited(u64),
    /// A sign-in or refresh that does not hold (RFC 6749 §5.2).
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// An API version past its sunset.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the view has not reached the requested position yet")]
    ViewLagging,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid_query(parameter: &str, detail: impl Into<String>) -> Self {
        Self::InvalidQuery {
            parameter: parameter.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// Status, problem code and title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError as E;
        match self {
            E::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            E::InvalidQuery { .. } => (StatusCode::BAD_REQUEST, "invalid_query", "Invalid query"),
            E::InvalidHeader { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_header", "Invalid header")
            }
            E::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
            ),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            E::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            E::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            E::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            E::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            E::Refused { .. } => (
                StatusCode::CONFLICT,
                "refused",
                "Refused by a rule of the command",
            ),
            E::UniqueViolation(_) => (
                StatusCode::CONFLICT,
                "unique_violation",
                "Unique value taken",
            ),
            E::IdempotencyInFlight => (
                StatusCode::CONFLICT,
                "idempotency_in_flight",
                "Request in flight",
            ),
            E::VersionMismatch(_) => (
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                "Version mismatch",
            ),
            E::PreconditionRequired(_) => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "Precondition required",
            ),
            E::Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            E::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
            ),
            E::Gone(_) => (StatusCode::GONE, "gone", "Gone"),
            E::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant", "Invalid grant"),
            E::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Rate limited",
            ),
            E::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            E::ViewLagging => (
                StatusCode::SERVICE_UNAVAILABLE,
                "view_lagging",
                "View lagging",
            ),
            E::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem document, as JSON (also stored in command status pages).
    pub fn problem(&self) -> Value {
        let (status, code, title) = self.parts();
        let mut problem = json!({
            "type": format!("https://herald.dev/problems/{code}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": code,
        });
        match self {
            ApiError::Validation { errors, .. } => problem["errors"] = json!(errors),
            ApiError::InvalidQuery { parameter, detail } => {
                problem["errors"] = json!([{ "parameter": parameter, "detail": detail }]);
            }
            ApiError::InvalidHeader { header, detail } => {
                problem["errors"] = json!([{ "header": header, "detail": detail }]);
            }
            ApiError::Refused { code, .. } => problem["code"] = json!(code),
            _ => {}
        }
        if let Some(id) = request_id::current() {
            problem["request_id"] = Value::String(id);
        }
        problem
    }
}

impl ApiError {
    /// The database or event store failed: logged here, opaque to the client.
    pub fn store_unavailable(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        tracing::warn!(error = format!("{error:#}"), "database unavailable");
        ApiError::Unavailable("the database is unavailable".into())
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Unavailable(_) | ReadError::Refused(_) => ApiError::store_unavailable(error),
            ReadError::Unreadable(_) => ApiError::internal(error),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let detail = rejection.detail;
        match rejection.code {
            RejectionCode::NotFound => ApiError::NotFound,
            RejectionCode::Forbidden => ApiError::Forbidden(detail),
            RejectionCode::Conflict => ApiError::Conflict(detail),
            RejectionCode::Refused(code) => ApiError::Refused { code, detail },
            RejectionCode::Internal => ApiError::internal(anyhow::anyhow!(detail)),
            RejectionCode::UniqueViolation => ApiError::UniqueViolation(detail),
            RejectionCode::VersionMismatch => ApiError::VersionMismatch(detail),
            RejectionCode::PreconditionRequired => ApiError::PreconditionRequired(detail),
            RejectionCode::ValidationFailed => ApiError::Validation {
                detail,
                errors: rejection.errors,
            },
        }
    }
}

/// The cause of a `500`, kept out of the body and logged by [`log_causes`].
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

/// Logs the cause of every `500` inside the request's span (which carries its request id).
pub async fn log_causes(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(error = %cause, "request failed");
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        let mut response = (status, Json(self.problem())).into_response();
        if let ApiError::Internal(error) = &self {
            // The client gets an opaque problem; the cause rides along for `log_causes`.
            response
                .extensions_mut()
                .insert(InternalCause(format!("{error:#}")));
        }
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::Unauthenticated(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable(_) | ApiError::ViewLagging | ApiError::IdempotencyInFlight => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            ApiError::MethodNotAllowed(Some(allow)) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}
