//! Herald's own signing key for the access tokens of the built-in login: one Ed25519 key, made
//! by the first api process that needs it and kept in the database, so every api process signs
//! and verifies with the same key. Its public half is published at `/.well-known/jwks.json`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::tokio_postgres::Client;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The signing key: its name (`kid`), both halves, and the public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    public: [u8; 32],
}

impl SigningKey {
    /// The stored key, made and stored first when there is none (the first of several api
    /// processes starting together wins; the others read its key).
    ///
    /// # Errors
    /// The store is unreachable, or holds a key that is not one.
    pub async fn load_or_create(client: &Client) -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let made = Self::from_seed(seed)?;
        client
            .execute(
                "INSERT INTO herald.signing_key (kid, seed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&made.kid, &seed.as_slice()],
            )
            .await?;
        let row = client
            .query_one("SELECT seed FROM herald.signing_key", &[])
            .await?;
        let stored: Vec<u8> = row.try_get(0)?;
        let stored: [u8; 32] = stored
            .try_into()
            .map_err(|_| anyhow::anyhow!("herald.signing_key holds a seed that is not 32 bytes"))?;
        Self::from_seed(stored)
    }

    fn from_seed(seed: [u8; 32]) -> anyhow::Result<Self> {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = key
            .to_pkcs8_der()
            .map_err(|error| anyhow::anyhow!("cannot encode the signing key: {error}"))?;
        let public = key.verifying_key().to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public);
        // RFC 7638's thumbprint names the key, so a new key gets a new name.
        let thumbprint = json!({"crv": "Ed25519", "kty": "OKP", "x": x}).to_string();
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_components(&x)?,
            public,
        })
    }

    /// The key set published at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
    }
}
