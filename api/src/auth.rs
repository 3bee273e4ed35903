//! Authentication: a bearer JWT, verified against an algorithm allowlist with `exp`, `nbf`,
//! `iss` and `aud` checked (RFC 8725), becomes a [`Principal`]. The middleware runs before
//! routing for every `/v1` path, so an invalid token is a `401` whatever the route.
//!
//! A request without a token is anonymous: it may reach documents whose ACL says `public`,
//! within the tenant named by the `Herald-Tenant` header.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_bus::access::Principal;
use herald_bus::ids::TenantId;
use herald_bus::settings::AuthSettings;
use herald_bus::store::PgStore;
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation, decode,
    decode_header, encode,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::identity::keys::SigningKey;
use crate::jwks::{Jwks, JwksError};

pub const TENANT_HEADER: &str = "herald-tenant";

/// The claims Herald reads and issues.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: u64,
    #[serde(default)]
    pub nbf: Option<u64>,
    #[serde(default)]
    pub iat: Option<u64>,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.algorithms names an unknown algorithm `{0}`")]
    UnknownAlgorithm(String),
    #[error("auth.algorithms allows {0:?} but no key for it is configured")]
    MissingKey(Algorithm),
    #[error("cannot read the public key file")]
    KeyFile(#[source] std::io::Error),
    #[error("the public key is not a usable PEM key")]
    Key(#[source] jsonwebtoken::errors::Error),
    #[error("auth.algorithms is empty: no token could ever be accepted")]
    NoAlgorithms,
    #[error("auth.jwks_url: {0}")]
    Jwks(#[source] JwksError),
}

/// Verifies bearer tokens with the configured keys and rules.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    /// The allowed algorithms whose keys may come from the provider's key set.
    from_jwks: Vec<Algorithm>,
    jwks: Option<Arc<Jwks>>,
    /// The built-in login's key (`kid`, public half): its tokens are `EdDSA` whatever
    /// `auth.algorithms` says.
    own: Option<(String, DecodingKey)>,
    issuer: String,
    audience: String,
    leeway: u64,
    /// Tokens whose signature and claims were checked, by their text.
    verified: Arc<Mutex<HashMap<String, Verified>>>,
}

/// Most verified tokens remembered; past it the memory starts afresh, so it stays bounded
/// whatever the number of clients.
const REMEMBERED_TOKENS: usize = 10_000;

impl TokenVerifier {
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let jwks = match &settings.jwks_url {
            Some(url) => Some(Arc::new(
                Jwks::new(url, Duration::from_secs(settings.jwks_min_refetch_secs))
                    .map_err(AuthConfigError::Jwks)?,
            )),
            None => None,
        };
        let mut keys = Vec::new();
        let mut from_jwks = Vec::new();
        let pem = match &settings.public_key_pem {
            Some(path) => Some(std::fs::read(path).map_err(AuthConfigError::KeyFile)?),
            None => None,
        };
        for name in &settings.algorithms {
            let algorithm: Algorithm = name
                .parse()
                .map_err(|_| AuthConfigError::UnknownAlgorithm(name.clone()))?;
            let key = match algorithm {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => settings
                    .hs256_secret
                    .as_ref()
                    .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => pem
                    .as_deref()
                    .map(DecodingKey::from_rsa_pem)
                    .transpose()
                    .map_err(AuthConfigError::Key)?,
                Algorithm::ES256 | Algorithm::ES384 => pem
                    .as_deref()
                    .map(DecodingKey::from_ec_pem)
                    .transpose()
                    .map_err(AuthConfigError::Key)?,
                Algorithm::EdDSA => pem
                    .as_deref()
                    .map(DecodingKey::from_ed_pem)
                    .transpose()
                    .map_err(AuthConfigError::Key)?,
                other => return Err(AuthConfigError::UnknownAlgorithm(format!("{other:?}"))),
            };
            // A provider's key set holds public keys only: an HMAC algorithm is never taken
            // from it.
            let public = algorithm.family() != AlgorithmFamily::Hmac;
            if public && jwks.is_some() {
                from_jwks.push(algorithm);
            }
            match key {
                Some(key) => keys.push((algorithm, key)),
                None if public && jwks.is_some() => {}
                None => return Err(AuthConfigError::MissingKey(algorithm)),
            }
        }
        if keys.is_empty() && from_jwks.is_empty() {
            return Err(AuthConfigError::NoAlgorithms);
        }
        Ok(Self {
            keys,
            from_jwks,
            jwks,
            own: None,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway_secs,
            verified: Arc::default(),
        })
    }

    /// Also accepts the tokens the built-in login signs with `key`.
    #[must_use]
    pub fn trusting(mut self, key: &SigningKey) -> Self {
        self.own = Some((key.kid.clone(), key.decoding.clone()));
        self
    }

    /// Fetches the provider's key set again when `token` names a key it does not hold yet (at
    /// most once per `auth.jwks_min_refetch_secs`).
    async fn fetch_unknown_key(&self, token: &str) {
        let Some(jwks) = &self.jwks else {
            return;
        };
        if let Ok(Some(kid)) = decode_header(token).map(|header| header.kid)
            && !jwks.knows(&kid)
        {
            jwks.refetch_for(&kid).await;
        }
    }

    /// The provider's key set, when `auth.jwks_url` names one.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// The principal a token stands for, or why it is refused (never why in detail: the
    /// reason goes to the log, the client learns only that the token is not acceptable).
    ///
    /// A token's text is signed, so once its signature and claims are checked only the clock
    /// can change the answer: a token verified before is accepted again without redoing the
    /// work (the signature, the base64 and the JSON are most of an authenticated read's CPU)
    /// until it expires. Refused tokens are not remembered, so nobody can fill the memory
    /// with tokens of their own making. A token naming a provider's key not fetched yet makes
    /// the key set be fetched again first.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        if let Some(verified) = self.remembered(token) {
            return Ok(verified);
        }
        self.fetch_unknown_key(token).await;
        let verified = self.verify_signed(token)?;
        let mut remembered = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if remembered.len() >= REMEMBERED_TOKENS {
            remembered.clear();
        }
        remembered.insert(token.to_owned(), verified.clone());
        Ok(verified)
    }

    /// A token verified before and not expired since (with the same leeway as `exp` is
    /// checked with); an expired one is forgotten and verified again, which refuses it.
    fn remembered(&self, token: &str) -> Option<Verified> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut remembered = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let verified = remembered.get(token)?;
        if now <= verified.expires_at.0.saturating_add(self.leeway) {
            return Some(verified.clone());
        }
        remembered.remove(token);
        None
    }

    fn verify_signed(&self, token: &str) -> Result<Verified, ApiError> {
        let invalid = ApiError::Unauthenticated("the bearer token is not valid");
        let header = decode_header(token)
            .map_err(|_| ApiError::Unauthenticated("the bearer token is not valid"))?;
        // The header's `alg` only selects among allowed keys: it never chooses a key type. A
        // token naming a `kid` is verified with the provider's key of that name, for that
        // algorithm's family, or not at all.
        let own = self
            .own
            .as_ref()
            .filter(|(kid, _)| header.kid.as_ref() == Some(kid))
            .map(|(_, key)| key);
        let (algorithm, key) = match (own, &self.jwks, &header.kid) {
            // Herald's own key verifies its own tokens, as EdDSA and nothing else.
            (Some(key), _, _) if header.alg == Algorithm::EdDSA => (Algorithm::EdDSA, key.clone()),
            (Some(_), _, _) => return Err(invalid),
            (None, Some(jwks), Some(kid)) if self.from_jwks.contains(&header.alg) => {
                let key = jwks.key(kid, header.alg).ok_or(invalid)?;
                (header.alg, key)
            }
            (None, Some(_), Some(_)) => return Err(invalid),
            _ => match self.keys.iter().find(|(a, _)| *a == header.alg) {
                Some((algorithm, key)) => (*algorithm, key.clone()),
                None => return Err(invalid),
            },
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|error| {
                tracing::debug!(%error, "bearer token refused");
                ApiError::Unauthenticated("the bearer token is not valid")
            })?
            .claims;
        let tenant =
            claims
                .tid
                .as_deref()
                .and_then(TenantId::parse)
                .ok_or(ApiError::Unauthenticated(
                    "the bearer token has no valid `tid` (tenant) claim",
                ))?;
        if claims.sub.is_empty() {
            // An empty subject would share its identity with anonymous callers.
            return Err(ApiError::Unauthenticated(
                "the bearer token has an empty `sub`",
            ));
        }
        // Subjects and roles are stored and compared as text: no control characters (NUL
        // cannot even be stored).
        let mut text = claims
            .sub
            .chars()
            .chain(claims.roles.iter().flat_map(|r| r.chars()));
        if text.any(char::is_control) {
            return Err(ApiError::Unauthenticated(
                "the bearer token has control characters in `sub` or `roles`",
            ));
        }
        // Sorted and without repeats: equal rights compare equal (see the event tail).
        let roles: BTreeSet<String> = claims.roles.into_iter().collect();
        Ok(Verified {
            principal: Principal {
                sub: Some(claims.sub),
                tenant,
                roles: roles.into_iter().collect(),
            },
            expires_at: TokenExpiry(claims.exp),
        })
    }
}

/// A verified token: who it names and when it expires.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub expires_at: TokenExpiry,
}

/// When the request's token expires (seconds since the epoch), kept for long-lived responses:
/// an event stream ends with `event: reauth` at that moment. Anonymous requests have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no HS256 key is configured to sign with")]
    NoKey,
    #[error("the token lifetime is too long")]
    Lifetime,
    #[error("the token cannot be signed")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token with the HS256 key: `herald token` and the tests use it.
pub fn issue_token(
    settings: &AuthSettings,
    sub: &str,
    tenant: &str,
    roles: &[String],
    ttl_secs: u64,
) -> Result<String, IssueError> {
    let secret = settings
        .hs256_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .ok_or(IssueError::NoKey)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub: sub.to_owned(),
        tid: Some(tenant.to_owned()),
        roles: roles.to_vec(),
        exp: now.checked_add(ttl_secs).ok_or(IssueError::Lifetime)?,
        nbf: Some(now),
        iat: Some(now),
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    Ok(encode(&Header::new(Algorithm::HS256), &claims, &key)?)
}

/// The token of a `Bearer` credential; the scheme name is case-insensitive (RFC 9110 §11.1).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Paths that need no token at all: the description, signing in and out, and everything
/// outside `/v1`.
fn is_public_path(path: &str) -> bool {
    matches!(
        path,
        "/v1/openapi.json" | "/v1/auth/token" | "/v1/auth/revoke"
    ) || !(path == "/v1" || path.starts_with("/v1/"))
}

/// What authentication needs: the token verifier, and the store API keys are looked up in.
#[derive(Clone)]
pub struct Authenticator {
    pub verifier: Arc<TokenVerifier>,
    pub store: PgStore,
}

impl Authenticator {
    /// The caller an API key stands for; any key that is not live is refused like a bad token.
    async fn api_key(&self, key: &str) -> Result<Verified, ApiError> {
        let client = crate::views::connection(self.store.pool()).await?;
        let holder = crate::api_keys::verify(&client, key)
            .await
            .map_err(ApiError::store_unavailable)?
            .ok_or(ApiError::Unauthenticated("the bearer token is not valid"))?;
        Ok(Verified {
            principal: holder.principal,
            expires_at: TokenExpiry(u64::try_from(holder.expires_at.timestamp()).unwrap_or(0)),
        })
    }
}

/// Verifies the token of every `/v1` request before routing and stores the [`Principal`].
pub async fn authenticate(
    State(state): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public_path(request.uri().path()) {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer_token));
    let principal = match bearer {
        Some(Some(token)) => {
            let verified = if token.starts_with(crate::api_keys::PREFIX) {
                state.api_key(token).await
            } else {
                state.verifier.verify(token).await
            };
            match verified {
                Ok(verified) => {
                    request.extensions_mut().insert(verified.expires_at);
                    Some(verified.principal)
                }
                Err(error) => return error.into_response(),
            }
        }
        Some(None) => {
            return ApiError::Unauthenticated("the Authorization header must be `Bearer <token>`")
                .into_response();
        }
        None => request
            .headers()
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(TenantId::parse)
            .map(Principal::anonymous),
    };
    match principal {
        Some(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        None => ApiError::Unauthenticated("a bearer token is required").into_response(),
    }
}

/// The caller of a `/v1` request, as authenticated by [`authenticate`].
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthenticated("a bearer token is required"))
    }
}

impl Caller {
    /// A document id from a path: one that is not a UUID names nothing the caller can see.
    pub fn document_id(&self, raw: &str) -> Result<uuid::Uuid, ApiError> {
        uuid::Uuid::parse_str(raw).map_err(|_| self.hidden())
    }

    /// The refusal for a caller that may not see something: anonymous callers are asked to
    /// authenticate, others get `404` so existence never leaks.
    pub fn hidden(&self) -> ApiError {
        if self.0.is_anonymous() {
            ApiError::Unauthenticated("a bearer token is required")
        } else {
            ApiError::NotFound
        }
    }
}
