//! The built-in login's routes, described when `identity.enabled` puts `auth.user` in the
//! registry: signing in and refreshing, signing out, and the published signing key.

use serde_json::{Map, Value, json};

use super::{errors, operations};

pub fn paths() -> Map<String, Value> {
    let password_grant = json!({
        "type": "object", "additionalProperties": false,
        "required": ["grant_type", "tenant", "username", "password"],
        "properties": {
            "grant_type": {"const": "password"},
            "tenant": {"type": "string"},
            "username": {"type": "string"},
            "password": {"type": "string", "format": "password", "writeOnly": true},
        },
    });
    let refresh_grant = json!({
        "type": "object", "additionalProperties": false,
        "required": ["grant_type", "refresh_token"],
        "properties": {"grant_type": {"const": "refresh_token"}, "refresh_token": {"type": "string"}},
    });
    let tokens = json!({
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "refresh_token", "refresh_token_expires_in"],
        "properties": {
            "access_token": {"type": "string", "description": "An EdDSA JWT for `Authorization: Bearer`."},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "description": "Seconds the access token lives."},
            "refresh_token": {"type": "string", "description": "Use once, for the next pair."},
            "refresh_token_expires_in": {"type": "integer"},
        },
    });
    let mut granted = errors(&[
        (
            "400",
            "Malformed grant, or `invalid_grant`: wrong credentials or a refresh token that is not live",
        ),
        ("404", "The built-in login is off"),
        ("413", "Body too large"),
        ("415", "Not JSON"),
        ("422", "The body is not a JSON object"),
        ("429", "Too many attempts for this account or address"),
        ("503", "Unavailable"),
    ]);
    granted.insert(
        "200".into(),
        json!({"description": "An access token and a refresh token", "content": {"application/json": {"schema": tokens}}}),
    );
    let mut revoked = errors(&[
        ("400", "Malformed body"),
        ("404", "The built-in login is off"),
        ("413", "Body too large"),
        ("415", "Not JSON"),
        ("422", "The body is not a JSON object"),
        ("429", "Too many attempts from this address"),
        ("503", "Unavailable"),
    ]);
    revoked.insert(
        "204".into(),
        json!({"description": "The token's family is revoked (any other text is ignored)"}),
    );
    let jwk = json!({"type": "object", "required": ["kty", "crv", "x", "kid", "alg", "use"], "properties": {
        "kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "x": {"type": "string"},
        "kid": {"type": "string"}, "alg": {"const": "EdDSA"}, "use": {"const": "sig"}}});
    let mut key_set = errors(&[("404", "The built-in login is off")]);
    key_set.insert(
        "200".into(),
        json!({"description": "The public key access tokens are signed with (JWKS)", "content": {"application/json": {"schema": {
            "type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": jwk}}}}}}),
    );
    let mut paths = Map::new();
    paths.insert(
        "/v1/auth/token".into(),
        json!({"post": {"summary": "Sign in with a password, or trade a refresh token for a new pair",
            "operationId": operations::ISSUE_TOKEN, "security": [], "tags": ["auth"],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": [password_grant, refresh_grant]}}}},
            "responses": granted}}),
    );
    paths.insert(
        "/v1/auth/revoke".into(),
        json!({"post": {"summary": "Sign out: revoke a refresh token and every token descending from its sign-in",
            "operationId": operations::REVOKE_TOKEN, "security": [], "tags": ["auth"],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": false, "required": ["refresh_token"],
                "properties": {"refresh_token": {"type": "string"}}}}}},
            "responses": revoked}}),
    );
    paths.insert(
        "/.well-known/jwks.json".into(),
        json!({"get": {"summary": "The built-in login's public signing key", "operationId": operations::SIGNING_KEYS,
            "security": [], "tags": ["auth"], "responses": key_set}}),
    );
    paths
}
