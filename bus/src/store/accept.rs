//! Recording commands as accepted before they are published, grouped: the api records every
//! command it receives, and under load one multi-row insert records all that arrived while
//! the previous one was being written (see [`super::batch`]).

use deadpool_postgres::Pool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::StoreError;
use super::batch::Batcher;
use crate::command::CommandEnvelope;

/// Most commands recorded by one statement.
const MAX_GROUP: usize = 128;
/// Inserts in flight at once, each on its own connection.
const WRITERS: usize = 2;

struct Record {
    command: CommandEnvelope,
    /// Whether this request inserted the row (rather than found it recorded already).
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct AcceptGroup {
    batcher: Batcher<Record>,
}

impl AcceptGroup {
    /// `None` outside a runtime: commands are then recorded one by one.
    pub(crate) fn start(pool: &Pool) -> Option<Self> {
        let pool = pool.clone();
        let batcher = Batcher::start(WRITERS, MAX_GROUP, move |records| {
            let pool = pool.clone();
            async move { record_and_reply(&pool, records).await }
        })?;
        Some(Self { batcher })
    }

    /// Records `command` with the next group: `Some(true)` when it was new; `None` when the
    /// writers are gone.
    pub(crate) async fn record(
        &self,
        command: &CommandEnvelope,
    ) -> Option<Result<bool, StoreError>> {
        let (reply, inserted) = oneshot::channel();
        let record = Record {
            command: command.clone(),
            reply,
        };
        self.batcher.push(record).ok()?;
        inserted.await.ok()
    }
}

async fn record_and_reply(pool: &Pool, records: Vec<Record>) {
    if records.len() > 1
        && let Ok(inserted) = insert_group(pool, &records).await
    {
        let mut inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        for record in records {
            // Only the first of two requests with one id inserted it.
            let new = inserted.remove(&record.command.id.0);
            drop(record.reply.send(Ok(new)));
        }
        return;
    }
    // One record, or a group that failed: each on its own, with its own error.
    let alone = records.iter().map(|record| async {
        let client = pool.get().await?;
        Ok(insert_accepted(&client, &record.command).await? == 1)
    });
    let results = futures::future::join_all(alone).await;
    for (record, result) in records.into_iter().zip(results) {
        drop(record.reply.send(result));
    }
}

/// Inserts the group's rows; returns the ids it inserted (not those already recorded).
async fn insert_group(pool: &Pool, records: &[Record]) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO herald.commands
                 (id, tenant, principal, collection, idempotency_key, request_hash, status)
             SELECT id, tenant, principal, collection, key, hash, 'accepted'
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                  AS u(id, tenant, principal, collection, key, hash)
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
        )
        .await?;
    let commands = records.iter().map(|r| &r.command);
    let ids: Vec<Uuid> = commands.clone().map(|c| c.id.0).collect();
    let tenants: Vec<&str> = commands
        .clone()
        .map(|c| c.principal.tenant.as_str())
        .collect();
    let principals: Vec<&str> = commands.clone().map(|c| c.principal.actor_sub()).collect();
    let collections: Vec<String> = commands
        .clone()
        .map(|c| c.collection().to_string())
        .collect();
    let keys: Vec<Option<&str>> = commands
        .clone()
        .map(|c| c.idempotency_key.as_deref())
        .collect();
    let hashes: Vec<&str> = commands.map(|c| c.request_hash.as_str()).collect();
    let rows = client
        .query(
            &statement,
            &[&ids, &tenants, &principals, &collections, &keys, &hashes],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Records a command as accepted; does nothing when its id is already known.
pub(crate) async fn insert_accepted(
    client: &impl deadpool_postgres::GenericClient,
    command: &CommandEnvelope,
) -> Result<u64, StoreError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO herald.commands
                 (id, tenant, principal, collection, idempotency_key, request_hash, status)
             VALUES ($1, $2, $3, $4, $5, $6, 'accepted')
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    Ok(client
        .execute(
            &statement,
            &[
                &command.id.0,
                &command.principal.tenant.as_str(),
                &command.principal.actor_sub(),
                &command.collection().to_string(),
                &command.idempotency_key,
                &command.request_hash,
            ],
        )
        .await?)
}
