//! The [`JsonBody`] extractor: a JSON request body, checked for media type, size and syntax,
//! with the raw bytes kept for the request digest used by idempotency.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::state::AppState;

pub struct JsonBody {
    pub object: Map<String, Value>,
    pub raw: Bytes,
}

/// A command's params: a [`JsonBody`], or no body at all, which is `{}`.
pub struct ParamsBody(pub JsonBody);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "application/merge-patch+json"
}

/// `413` when the body is over the limit; any other failure to read it is a bad request.
fn read_error(error: axum::Error, limit: usize) -> ApiError {
    let cause = error.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(cause.as_ref());
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge(limit);
        }
        source = error.source();
    }
    ApiError::MalformedJson("the request body could not be read".into())
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body(request, state, false).await
    }
}

impl FromRequest<AppState> for ParamsBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        read_body(request, state, true).await.map(ParamsBody)
    }
}

/// The body as a JSON object; with `empty_is_object`, no body (and no media type) is `{}`.
async fn read_body(
    request: Request,
    state: &AppState,
    empty_is_object: bool,
) -> Result<JsonBody, ApiError> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    // Refused before reading, unless an empty body may stand for `{}`.
    if !json && !empty_is_object {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = state.settings.http.body_limit;
    let raw = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| read_error(error, limit))?;
    if raw.is_empty() && empty_is_object {
        // Digested as `{}`, so a retry that sends `{}` instead of nothing is the same request.
        return Ok(JsonBody {
            object: Map::new(),
            raw: Bytes::from_static(b"{}"),
        });
    }
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    if raw.is_empty() {
        return Err(ApiError::MalformedJson("the request body is empty".into()));
    }
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::MalformedJson(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(JsonBody { object, raw }),
        _ => Err(ApiError::Validation {
            detail: "the request body must be a JSON object".into(),
            errors: vec![herald_bus::schema::FieldError {
                pointer: String::new(),
                code: herald_bus::schema::ErrorCode::Type,
                detail: "must be an object".into(),
            }],
        }),
    }
}
