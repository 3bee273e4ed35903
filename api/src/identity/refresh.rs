//! Refresh tokens (RFC 9700 §4.14): each is `hr_<id>_<secret>`, used once. Using one hands out
//! its successor in the same family; using a spent one again means it was stolen (by whoever
//! used it first, or now), so the whole family is revoked and every holder must sign in again.
//! Only a SHA-256 digest of the 256-bit secret is kept, and one of the user's credential (their
//! password hash) when the family began: a token from before a password change is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use deadpool_postgres::tokio_postgres::Error;
use herald_bus::ids::TenantId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The start of every refresh token.
const PREFIX: &str = "hr_";

/// Whose token it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub tenant: TenantId,
    pub user_id: Uuid,
    pub family: Uuid,
    /// The digest of the user's credential when the family began.
    pub credential: Option<Vec<u8>>,
}

/// What using a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// A live token, now spent: its successor may be issued.
    Live(Holder),
    /// A token spent before: its family is now revoked.
    Reused(Holder),
    /// Malformed, unknown, with a wrong secret, expired or revoked.
    Invalid,
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// What a token keeps of the user's credential (their password hash, or none).
pub fn credential_digest(credential: Option<&str>) -> Vec<u8> {
    digest(credential.unwrap_or_default())
}

fn parse(token: &str) -> Option<(Uuid, &str)> {
    let (id, secret) = token.strip_prefix(PREFIX)?.split_once('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Stores a new token for `user_id` (in `family`, or a new family for a new sign-in) and
/// returns its text.
///
/// # Errors
/// The store is unreachable.
pub async fn issue(
    client: &impl GenericClient,
    tenant: &TenantId,
    user_id: Uuid,
    family: Option<Uuid>,
    credential: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<String, Error> {
    let id = Uuid::new_v4();
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    client
        .execute(
            "INSERT INTO herald.refresh_tokens
                 (id, family, tenant, user_id, secret_hash, credential, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &family.unwrap_or(id),
                &tenant.as_str(),
                &user_id,
                &digest(&secret),
                &credential,
                &expires_at,
            ],
        )
        .await?;
    Ok(format!("{PREFIX}{}_{secret}", id.simple()))
}

/// Spends `token`, in the caller's transaction: the row stays locked until it commits, so two
/// concurrent uses of one token cannot both see it live.
///
/// # Errors
/// The store is unreachable.
pub async fn redeem(client: &impl GenericClient, token: &str) -> Result<Redeemed, Error> {
    let Some((id, secret)) = parse(token) else {
        return Ok(Redeemed::Invalid);
    };
    let row = client
        .query_opt(
            "SELECT family, tenant, user_id, secret_hash, used_at IS NOT NULL,
                    revoked_at IS NULL AND expires_at > now(), credential
             FROM herald.refresh_tokens WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Redeemed::Invalid);
    };
    let stored: Vec<u8> = row.try_get(3)?;
    if !bool::from(stored.ct_eq(&digest(secret))) {
        return Ok(Redeemed::Invalid);
    }
    let tenant: String = row.try_get(1)?;
    let Some(tenant) = TenantId::parse(&tenant) else {
        return Ok(Redeemed::Invalid);
    };
    let holder = Holder {
        tenant,
        user_id: row.try_get(2)?,
        family: row.try_get(0)?,
        credential: row.try_get(6)?,
    };
    let (used, live): (bool, bool) = (row.try_get(4)?, row.try_get(5)?);
    if used {
        revoke_family(client, holder.family).await?;
        return Ok(Redeemed::Reused(holder));
    }
    if !live {
        return Ok(Redeemed::Invalid);
    }
    client
        .execute(
            "UPDATE herald.refresh_tokens SET used_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(Redeemed::Live(holder))
}

/// Revokes every token of `family`.
///
/// # Errors
/// The store is unreachable.
pub async fn revoke_family(client: &impl GenericClient, family: Uuid) -> Result<(), Error> {
    client
        .execute(
            "UPDATE herald.refresh_tokens SET revoked_at = coalesce(revoked_at, now())
             WHERE family = $1",
            &[&family],
        )
        .await?;
    Ok(())
}

/// Signs out: revokes the family of `token` when it is a token of ours (any other text is
/// ignored, as RFC 7009 asks, so the answer tells nothing).
///
/// # Errors
/// The store is unreachable.
pub async fn revoke(client: &impl GenericClient, token: &str) -> Result<(), Error> {
    let Some((id, secret)) = parse(token) else {
        return Ok(());
    };
    let row = client
        .query_opt(
            "SELECT family, secret_hash FROM herald.refresh_tokens WHERE id = $1",
            &[&id],
        )
        .await?;
    if let Some(row) = row {
        let stored: Vec<u8> = row.try_get(1)?;
        if bool::from(stored.ct_eq(&digest(secret))) {
            revoke_family(client, row.try_get(0)?).await?;
        }
    }
    Ok(())
}

/// Deletes the tokens that expired, which no one can use any more.
///
/// # Errors
/// The store is unreachable.
pub async fn sweep(client: &impl GenericClient) -> Result<u64, Error> {
    client
        .execute(
            "DELETE FROM herald.refresh_tokens WHERE expires_at < now()",
            &[],
        )
        .await
}
