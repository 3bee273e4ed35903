//! The built-in login's routes (`identity.enabled`; `404` otherwise): `POST /v1/auth/token`
//! signs in or refreshes, `POST /v1/auth/revoke` signs out, `GET /.well-known/jwks.json`
//! publishes the key access tokens are signed with. See [`crate::identity`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::identity::Identity;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/token", post(token))
        .route("/v1/auth/revoke", post(revoke))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The body of `POST /v1/auth/token`: a grant, as in OAuth 2 (RFC 6749 §4.3 and §6), in JSON.
#[derive(Deserialize)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
enum Grant {
    Password {
        tenant: String,
        username: String,
        password: String,
    },
    RefreshToken {
        refresh_token: String,
    },
}

/// The body of `POST /v1/auth/revoke`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revocation {
    refresh_token: String,
}

fn identity(state: &AppState) -> Result<&Arc<Identity>, ApiError> {
    state.identity.as_ref().ok_or(ApiError::NotFound)
}

/// The client's address, when the connection has one.
fn address(connection: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<IpAddr> {
    connection.map(|Extension(ConnectInfo(addr))| addr.ip())
}

fn parse<T: serde::de::DeserializeOwned>(body: JsonBody) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(body.object))
        .map_err(|error| ApiError::MalformedJson(format!("the request body is not valid: {error}")))
}

/// Token answers are never stored by caches (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn token(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let identity = identity(&state)?;
    identity.admit(address(connection))?;
    let tokens = match parse(body)? {
        Grant::Password {
            tenant,
            username,
            password,
        } => identity.sign_in(&tenant, &username, &password).await?,
        Grant::RefreshToken { refresh_token } => identity.refresh(&refresh_token).await?,
    };
    Ok(no_store(Json(tokens).into_response()))
}

async fn revoke(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let identity = identity(&state)?;
    identity.admit(address(connection))?;
    let revocation: Revocation = parse(body)?;
    identity.revoke(&revocation.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let identity = identity(&state)?;
    let mut response = Json(identity.key().jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
