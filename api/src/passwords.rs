//! Passwords: hashed with argon2id (OWASP's parameters: 19 MiB, 2 passes, 1 lane) before a
//! command carrying one leaves the api, and checked at sign-in. Hashing is slow on purpose, so
//! it runs on the blocking pool, at most one hash per core at a time: a flood of sign-ins waits
//! its turn instead of taking every thread.

use std::borrow::Cow;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_bus::schema::{DocumentSchema, ErrorCode, FieldError, FieldKind, PASSWORD_LENGTH};
use rand::RngCore;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of no one's password, checked when a sign-in names an unknown user, so that it
    /// takes as long as a wrong password does.
    decoy: Arc<str>,
}

impl Passwords {
    /// # Errors
    /// The decoy hash cannot be made (never with the fixed parameters).
    pub fn new() -> Result<Self, ApiError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let decoy = hash_now(&URL_SAFE_NO_PAD.encode(secret))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(cores)),
            decoy: decoy.into(),
        })
    }

    /// The argon2id hash of `password`, in the PHC string format.
    ///
    /// # Errors
    /// The blocking pool is gone (the api is stopping).
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = password.to_owned();
        self.blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` is the one `hash` was made from; with no hash (an unknown user, or
    /// one without a password) the same work is done against the decoy and the answer is no.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let (stored, known) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => (self.decoy.to_string(), false),
        };
        let password = password.to_owned();
        let matches = self
            .blocking(move || {
                PasswordHash::new(&stored).is_ok_and(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await;
        known && matches.unwrap_or(false)
    }

    /// Replaces each `password` field of `values` with its hash, after checking its length.
    /// Returns the body to digest for idempotency: `raw` itself when it holds no password, or
    /// the values without them, so no fast digest of a password is ever stored.
    ///
    /// # Errors
    /// A password of the wrong length, as a field error.
    pub async fn seal<'a>(
        &self,
        schema: &DocumentSchema,
        values: &mut Map<String, Value>,
        raw: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, ApiError> {
        let names: Vec<&String> = schema
            .fields
            .iter()
            .filter(|(name, field)| {
                matches!(field.kind, FieldKind::Password) && values.contains_key(*name)
            })
            .map(|(name, _)| name)
            .collect();
        if names.is_empty() {
            return Ok(Cow::Borrowed(raw));
        }
        let mut digested = values.clone();
        let mut errors = Vec::new();
        for name in names {
            digested.remove(name);
            let Some(Value::String(password)) = values.get(name.as_str()) else {
                // Not a string (or null): validation says what is wrong with it.
                continue;
            };
            let length = password.chars().count();
            if !PASSWORD_LENGTH.contains(&length) {
                let (code, detail) = if length < *PASSWORD_LENGTH.start() {
                    (
                        ErrorCode::MinLength,
                        format!("must be at least {} characters", PASSWORD_LENGTH.start()),
                    )
                } else {
                    (
                        ErrorCode::MaxLength,
                        format!("must be at most {} characters", PASSWORD_LENGTH.end()),
                    )
                };
                errors.push(FieldError {
                    pointer: format!("/{name}"),
                    code,
                    detail,
                });
                continue;
            }
            let hash = self.hash(password).await?;
            values.insert(name.clone(), Value::String(hash));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation {
                detail: "the request body is not valid for this document".into(),
                errors,
            });
        }
        Ok(Cow::Owned(
            serde_json::to_vec(&digested).map_err(ApiError::internal)?,
        ))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("the api is stopping".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        Params::default(),
    )
}

fn hash_now(password: &str) -> Result<String, ApiError> {
    let failed =
        |error: argon2::password_hash::Error| ApiError::internal(anyhow::anyhow!("{error}"));
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::Passwords;

    #[tokio::test]
    async fn a_password_matches_its_hash_and_nothing_else() {
        let passwords = Passwords::new().unwrap_or_else(|e| panic!("{e}"));
        let hash = passwords
            .hash("correct horse")
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(passwords.verify("correct horse", Some(&hash)).await);
        assert!(!passwords.verify("correct horsE", Some(&hash)).await);
        assert!(!passwords.verify("correct horse", None).await);
        assert!(!passwords.verify("correct horse", Some("not a hash")).await);
    }
}
