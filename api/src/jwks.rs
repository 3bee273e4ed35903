//! An identity provider's signing keys, from its JWKS URL (`auth.jwks_url`): fetched at start,
//! fetched again periodically and when a token names a key not known yet (at most once per
//! `auth.jwks_min_refetch_secs`), so a provider's key rotation needs no restart. A provider that
//! is down or answers something unreadable leaves the keys as they were; a token whose key is
//! not known is refused, never let in.
//!
//! Only public keys are taken (RSA, EC and Ed25519, each for its own family of algorithms); a
//! symmetric (`oct`) key in a key set is ignored, since everyone can read it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The largest key set read; an answer beyond it is refused.
const MAX_BODY: usize = 1024 * 1024;

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A provider's public keys by `kid`, and how to fetch them again.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the last fetch started; unknown `kid`s wait for `min_refetch` after it.
    last_fetch: Mutex<Option<Instant>>,
    min_refetch: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch the key set: {0}")]
    Fetch(#[from] reqwest::Error),
    #[error("the key set answer is {0}")]
    Status(reqwest::StatusCode),
    #[error("the key set is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the key set is not a JWKS: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("the key set holds no usable public key with a `kid`")]
    Empty,
}

impl Jwks {
    /// The key set at `url`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(url: &str, min_refetch: Duration) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url: url.to_owned(),
            client,
            keys: RwLock::default(),
            last_fetch: Mutex::new(None),
            min_refetch,
        })
    }

    /// The key named `kid`, if the set has it and it is for `algorithm`'s family.
    pub fn key(&self, kid: &str, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid)
            .filter(|key| key.family() == algorithm.family())
            .cloned()
    }

    pub fn knows(&self, kid: &str) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.contains_key(kid)
    }

    /// Fetches the set and replaces the keys; on any failure the keys stay as they were.
    ///
    /// # Errors
    /// Why the set could not be read.
    pub async fn fetch(&self) -> Result<usize, JwksError> {
        *self.last_fetch.lock().await = Some(Instant::now());
        let mut response = self.client.get(&self.url).send().await?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body)?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Fetches again for a token naming an unknown `kid`, unless a fetch started less than
    /// `min_refetch` ago: tokens with made-up `kid`s cannot make Herald hammer the provider.
    pub async fn refetch_for(&self, kid: &str) {
        {
            let last = self.last_fetch.lock().await;
            if last.is_some_and(|at| at.elapsed() < self.min_refetch) {
                return;
            }
        }
        match self.fetch().await {
            Ok(count) => {
                tracing::info!(kid, keys = count, "fetched the key set for an unknown key")
            }
            Err(error) => {
                tracing::warn!(%error, "the key set could not be fetched; the known keys stay")
            }
        }
    }

    /// Fetches the set every `every` until `stop`, keeping the known keys when a fetch fails.
    pub fn refresh_every(
        self: &Arc<Self>,
        every: Duration,
        tasks: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let jwks = Arc::clone(self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                if let Err(error) = jwks.fetch().await {
                    tracing::warn!(%error, "the key set could not be refreshed; the known keys stay");
                }
            }
        });
    }
}
