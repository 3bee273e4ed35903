//! API keys for services: created by an admin of a tenant with roles the admin holds, bound to
//! that tenant, with an expiry. A key is `hk_<id>_<secret>`: the secret is shown once, and only
//! its SHA-256 digest is stored (it is 256 random bits, so a slow hash would add nothing). A key
//! is sent as a bearer token and looked up on every request, so revoking it takes effect at
//! once.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use deadpool_postgres::tokio_postgres::{Client, Error};
use herald_bus::access::{Ownership, Principal};
use herald_bus::ids::TenantId;
use herald_bus::schema::{Role, RoleSet};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The start of every key, so a key is told from a JWT at a glance (and by secret scanners).
pub const PREFIX: &str = "hk_";

/// A key as listed: everything but its secret.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub roles: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The caller a live key stands for, and when the key expires.
#[derive(Debug, Clone)]
pub struct Holder {
    pub principal: Principal,
    pub expires_at: DateTime<Utc>,
}

/// Why roles cannot go on a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolesError {
    #[error("`{0}` is not a role a key can hold")]
    NotARole(String),
    #[error("you may not give a key the role `{0}`, which you do not hold")]
    NotYours(String),
}

/// Checks that `creator` holds every one of `roles` (a built-in role through its rank, a custom
/// one by name, in its own token) and returns them sorted, without repeats.
///
/// # Errors
/// A name that is no role a key can hold (`public`, `owner`, a malformed one), or one the creator
/// does not hold.
pub fn grantable(creator: &Principal, roles: &[String]) -> Result<Vec<String>, RolesError> {
    let mut granted = BTreeSet::new();
    for name in roles {
        let role = Role::parse(name)
            .filter(|role| !matches!(role, Role::Public | Role::Owner))
            .ok_or_else(|| RolesError::NotARole(name.clone()))?;
        // A custom role must be the creator's own: an admin passes every check, but a key
        // is no way to hand out a role nobody gave its creator.
        let held = match role {
            Role::Custom(_) => creator.roles.contains(name),
            built_in => creator.may(Some(&RoleSet(vec![built_in])), Ownership::Unknown),
        };
        if !held {
            return Err(RolesError::NotYours(name.clone()));
        }
        granted.insert(name.clone());
    }
    Ok(granted.into_iter().collect())
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Stores a new key and returns it with its whole text, the only time the secret is seen.
///
/// # Errors
/// The store is unreachable.
pub async fn create(
    client: &Client,
    creator: &Principal,
    name: &str,
    roles: &[String],
    expires_at: DateTime<Utc>,
) -> Result<(ApiKey, String), Error> {
    let id = Uuid::new_v4();
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let created_by = creator.actor_sub().to_owned();
    let row = client
        .query_one(
            "INSERT INTO herald.api_keys (id, tenant, name, roles, secret_hash, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
            &[&id, &creator.tenant.as_str(), &name, &roles, &digest(&secret), &created_by, &expires_at],
        )
        .await?;
    let key = ApiKey {
        id,
        name: name.to_owned(),
        roles: roles.to_vec(),
        created_by,
        created_at: row.try_get(0)?,
        expires_at,
        revoked_at: None,
    };
    Ok((key, format!("{PREFIX}{}_{secret}", id.simple())))
}

/// The tenant's keys, newest first.
///
/// # Errors
/// The store is unreachable.
pub async fn list(client: &Client, tenant: &TenantId) -> Result<Vec<ApiKey>, Error> {
    let rows = client
        .query(
            "SELECT id, name, roles, created_by, created_at, expires_at, revoked_at
             FROM herald.api_keys WHERE tenant = $1 ORDER BY created_at DESC, id",
            &[&tenant.as_str()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ApiKey {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                roles: row.try_get(2)?,
                created_by: row.try_get(3)?,
                created_at: row.try_get(4)?,
                expires_at: row.try_get(5)?,
                revoked_at: row.try_get(6)?,
            })
        })
        .collect()
}

/// Revokes the tenant's key `id`; false when the tenant has no such key.
///
/// # Errors
/// The store is unreachable.
pub async fn revoke(client: &Client, tenant: &TenantId, id: Uuid) -> Result<bool, Error> {
    let updated = client
        .execute(
            "UPDATE herald.api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id],
        )
        .await?;
    Ok(updated == 1)
}

/// The caller a key stands for, when it is a live key of its tenant: `None` for anything else
/// (malformed, unknown, wrong secret, revoked or expired), without saying which.
///
/// # Errors
/// The store is unreachable.
pub async fn verify(client: &Client, key: &str) -> Result<Option<Holder>, Error> {
    let Some((id, secret)) = key
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(id, secret)| Some((Uuid::try_parse(id).ok()?, secret)))
    else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT tenant, roles, secret_hash, expires_at FROM herald.api_keys
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.try_get(2)?;
    if !bool::from(stored.ct_eq(&digest(secret))) {
        return Ok(None);
    }
    let tenant: String = row.try_get(0)?;
    let Some(tenant) = TenantId::parse(&tenant) else {
        return Ok(None);
    };
    Ok(Some(Holder {
        principal: Principal {
            sub: Some(format!("apikey:{}", id.simple())),
            tenant,
            roles: row.try_get(1)?,
        },
        expires_at: row.try_get(3)?,
    }))
}

#[cfg(test)]
mod tests {
    use herald_bus::access::Principal;
    use herald_bus::ids::TenantId;

    use super::{RolesError, grantable};

    fn caller(roles: &[&str]) -> Principal {
        Principal {
            sub: Some("ada".into()),
            tenant: TenantId::parse("acme").unwrap_or_else(|| unreachable!()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn a_key_holds_only_roles_its_creator_holds() {
        let admin = caller(&["admin"]);
        assert_eq!(
            grantable(&admin, &roles(&["staff", "user", "staff"])),
            Ok(roles(&["staff", "user"]))
        );
        let staff = caller(&["staff", "billing"]);
        assert_eq!(
            grantable(&staff, &roles(&["billing", "user"])),
            Ok(roles(&["billing", "user"]))
        );
        assert_eq!(
            grantable(&staff, &roles(&["admin"])),
            Err(RolesError::NotYours("admin".into()))
        );
        assert_eq!(
            grantable(&staff, &roles(&["support"])),
            Err(RolesError::NotYours("support".into()))
        );
        for name in ["owner", "public", "Bad Role", ""] {
            assert_eq!(
                grantable(&admin, &roles(&[name])),
                Err(RolesError::NotARole(name.into()))
            );
        }
    }
}
