//! The users of the built-in login, read from the write side: a user's stream snapshot, found
//! by id or through the `username` reservation. A user created, changed or disabled a moment
//! ago is seen at once, without waiting for the `auth.user` view.

use herald_bus::document::DocumentState;
use herald_bus::ids::{Collection, TenantId};
use herald_bus::schema::IDENTITY_APP;
use herald_bus::store::{EventStore, PgStore, StoreError};
use serde_json::Value;
use uuid::Uuid;

/// What signing in needs to know of a user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub roles: Vec<String>,
    pub password_hash: Option<String>,
    /// Neither disabled nor deleted.
    pub active: bool,
}

fn collection() -> Collection {
    Collection::new(IDENTITY_APP, "user")
}

/// The user `id` of `tenant`.
///
/// # Errors
/// The store is unreachable or holds an unreadable snapshot.
pub async fn by_id(
    store: &PgStore,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<User>, StoreError> {
    let stream = collection().stream(id);
    let loaded = store.load_stream(tenant, stream.as_str()).await?;
    Ok(loaded.map(|loaded| User::from(loaded.state)))
}

/// The user of `tenant` named `username`.
///
/// # Errors
/// The store is unreachable or holds an unreadable snapshot.
pub async fn by_username(
    store: &PgStore,
    tenant: &TenantId,
    username: &str,
) -> Result<Option<User>, StoreError> {
    let stream_id: Option<String> = {
        let client = store.pool().get().await?;
        let row = client
            .query_opt(
                "SELECT stream_id FROM herald.unique_keys
                 WHERE tenant = $1 AND collection = $2 AND field = 'username' AND value = $3",
                &[&tenant.as_str(), &collection().to_string(), &username],
            )
            .await?;
        row.map(|row| row.try_get(0)).transpose()?
    };
    let Some(stream_id) = stream_id else {
        return Ok(None);
    };
    let loaded = store.load_stream(tenant, &stream_id).await?;
    Ok(loaded.map(|loaded| User::from(loaded.state)))
}

impl From<DocumentState> for User {
    fn from(state: DocumentState) -> Self {
        let fields = &state.fields;
        let roles = fields
            .get("roles")
            .and_then(Value::as_array)
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let disabled = fields
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Self {
            id: state.id,
            roles,
            password_hash: fields
                .get("password")
                .and_then(Value::as_str)
                .map(str::to_owned),
            active: !state.archived && !disabled,
        }
    }
}
