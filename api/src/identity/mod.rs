//! The built-in login (`identity.enabled`), for teams without an identity provider. Users are
//! the documents `auth.user`, so creating one, changing its roles or password, disabling it are
//! commands with events and an actor. Signing in (`POST /v1/auth/token`) checks the password
//! against its argon2id hash and hands out a short-lived access token, signed with Herald's
//! own key ([`keys`]), and a refresh token ([`refresh`]) that rotates on every use.
//!
//! Sign-in attempts are limited per account and per address; a wrong username and a wrong
//! password get the same answer after the same work.

pub mod keys;
pub mod refresh;
pub mod users;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use herald_bus::ids::TenantId;
use herald_bus::settings::{AuthSettings, IdentitySettings};
use herald_bus::store::PgStore;
use jsonwebtoken::{Algorithm, Header, encode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Claims;
use crate::error::ApiError;
use crate::passwords::Passwords;
use crate::rate_limit::whole_seconds;
use keys::SigningKey;
use refresh::Redeemed;
use users::User;

/// How often expired refresh tokens are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Longest username looked up; longer ones name no user (the document allows 100).
const MAX_USERNAME: usize = 100;

/// The answer to a successful grant (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_token_expires_in: u64,
}

/// The built-in login of one api process.
pub struct Identity {
    key: SigningKey,
    settings: IdentitySettings,
    issuer: String,
    audience: String,
    store: PgStore,
    passwords: Passwords,
    accounts: DefaultKeyedRateLimiter<(TenantId, String)>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
}

impl Identity {
    /// Loads (or makes) the signing key and starts sweeping expired refresh tokens.
    ///
    /// # Errors
    /// The store is unreachable at start.
    pub async fn start(
        settings: &IdentitySettings,
        auth: &AuthSettings,
        store: PgStore,
        passwords: Passwords,
        background: &TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let key = SigningKey::load_or_create(&*store.pool().get().await?).await?;
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let identity = Arc::new(Self {
            key,
            settings: settings.clone(),
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            store,
            passwords,
            accounts: RateLimiter::keyed(per_minute(settings.logins_per_minute_per_account)),
            addresses: RateLimiter::keyed(per_minute(settings.logins_per_minute_per_address)),
        });
        let upkeep = Arc::clone(&identity);
        background.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => upkeep.upkeep().await,
                }
            }
        });
        Ok(identity)
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    async fn upkeep(&self) {
        self.accounts.retain_recent();
        self.addresses.retain_recent();
        let swept = match self.store.pool().get().await {
            Ok(client) => refresh::sweep(&client).await.map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        match swept {
            Ok(count) => tracing::debug!(count, "expired refresh tokens deleted"),
            Err(error) => tracing::warn!(%error, "cannot delete expired refresh tokens"),
        }
    }

    /// Counts an attempt from `address` against its limit.
    ///
    /// # Errors
    /// `429` past the limit, with the seconds to wait.
    pub fn admit(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        match address {
            Some(address) => check(&self.addresses, &address),
            None => Ok(()),
        }
    }

    /// Signs `username` of `tenant` in with `password`.
    ///
    /// # Errors
    /// `invalid_grant` for a wrong username or password (the same answer for both), a disabled
    /// user or a malformed tenant; `429` past the account's limit.
    pub async fn sign_in(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
    ) -> Result<Tokens, ApiError> {
        let refused = ApiError::InvalidGrant("the username or password is not right");
        let tenant = TenantId::parse(tenant)
            .ok_or(ApiError::InvalidGrant("`tenant` is not a tenant name"))?;
        let username = username.to_lowercase();
        check(&self.accounts, &(tenant.clone(), username.clone()))?;
        let user = if username.chars().count() <= MAX_USERNAME {
            users::by_username(&self.store, &tenant, &username)
                .await
                .map_err(ApiError::store_unavailable)?
        } else {
            None
        };
        let hash = user.as_ref().and_then(|user| user.password_hash.as_deref());
        let matches = self.passwords.verify(password, hash).await;
        match user {
            Some(user) if matches && user.active => {
                let client = crate::views::connection(self.store.pool()).await?;
                let credential = refresh::credential_digest(user.password_hash.as_deref());
                let refresh_token = refresh::issue(
                    &client,
                    &tenant,
                    user.id,
                    None,
                    &credential,
                    self.refresh_expiry(),
                )
                .await
                .map_err(ApiError::store_unavailable)?;
                self.tokens(&tenant, &user, refresh_token)
            }
            _ => Err(refused),
        }
    }

    /// Hands out a new pair for a live refresh token, which is spent. A spent token used again
    /// revokes its family; a user disabled or deleted since cannot refresh.
    ///
    /// # Errors
    /// `invalid_grant` for any token that is not live, or a user who may not sign in.
    pub async fn refresh(&self, token: &str) -> Result<Tokens, ApiError> {
        let refused = ApiError::InvalidGrant("the refresh token is not valid");
        let mut client = crate::views::connection(self.store.pool()).await?;
        let tx = client
            .transaction()
            .await
            .map_err(ApiError::store_unavailable)?;
        let redeemed = refresh::redeem(&tx, token)
            .await
            .map_err(ApiError::store_unavailable)?;
        let holder = match redeemed {
            Redeemed::Live(holder) => holder,
            Redeemed::Reused(holder) => {
                tx.commit().await.map_err(ApiError::store_unavailable)?;
                tracing::warn!(tenant = %holder.tenant, user = %holder.user_id, "a spent refresh token was used again: its family is revoked");
                return Err(refused);
            }
            Redeemed::Invalid => return Err(refused),
        };
        let user = users::by_id(&self.store, &holder.tenant, holder.user_id)
            .await
            .map_err(ApiError::store_unavailable)?;
        // A user disabled or deleted since, or whose password changed since the family began
        // (a token without a record of the password is judged by the other two alone).
        let current = |user: &User| {
            let digest = refresh::credential_digest(user.password_hash.as_deref());
            holder
                .credential
                .as_ref()
                .is_none_or(|kept| *kept == digest)
        };
        let Some(user) = user.filter(|user| user.active && current(user)) else {
            refresh::revoke_family(&tx, holder.family)
                .await
                .map_err(ApiError::store_unavailable)?;
            tx.commit().await.map_err(ApiError::store_unavailable)?;
            return Err(refused);
        };
        let credential = refresh::credential_digest(user.password_hash.as_deref());
        let successor = refresh::issue(
            &tx,
            &holder.tenant,
            user.id,
            Some(holder.family),
            &credential,
            self.refresh_expiry(),
        )
        .await
        .map_err(ApiError::store_unavailable)?;
        tx.commit().await.map_err(ApiError::store_unavailable)?;
        self.tokens(&holder.tenant, &user, successor)
    }

    /// Signs out: the refresh token's family is revoked.
    ///
    /// # Errors
    /// The store is unreachable.
    pub async fn revoke(&self, token: &str) -> Result<(), ApiError> {
        let client = crate::views::connection(self.store.pool()).await?;
        refresh::revoke(&client, token)
            .await
            .map_err(ApiError::store_unavailable)
    }

    fn refresh_expiry(&self) -> chrono::DateTime<chrono::Utc> {
        let ttl = i64::try_from(self.settings.refresh_token_ttl_secs).unwrap_or(i64::MAX);
        chrono::Utc::now() + chrono::TimeDelta::try_seconds(ttl).unwrap_or(chrono::TimeDelta::MAX)
    }

    fn tokens(
        &self,
        tenant: &TenantId,
        user: &User,
        refresh_token: String,
    ) -> Result<Tokens, ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ttl = self.settings.access_token_ttl_secs;
        let claims = Claims {
            sub: user.id.to_string(),
            tid: Some(tenant.to_string()),
            roles: user.roles.clone(),
            exp: now.saturating_add(ttl),
            nbf: Some(now),
            iat: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key.kid.clone());
        let access_token =
            encode(&header, &claims, &self.key.encoding).map_err(ApiError::internal)?;
        Ok(Tokens {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token,
            refresh_token_expires_in: self.settings.refresh_token_ttl_secs,
        })
    }
}

/// Counts one attempt for `key`.
fn check<K: Clone + Eq + std::hash::Hash>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(whole_seconds(wait))
    })
}
