//! The harness's queries on the run's database: waiting until Herald has worked off its
//! backlog, the documents a workload targets, and the baseline's copy of the listing.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;
use uuid::Uuid;

use crate::context::{LIST_TENANT, PROJECTION, SPREAD_DOCUMENTS, WRITE_TENANT};
use crate::setup::BenchDatabase;

/// Asks `check` every 100 ms until it answers, failing once `deadline` has passed.
pub(crate) async fn poll_until<T, F, Fut>(
    deadline: Instant,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    loop {
        if let Some(answer) = check().await? {
            return Ok(answer);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until Herald has worked off everything the runs before left it — every command of
/// the last seconds decided, the view and the relay through the whole log — so a run
/// (Herald's or the baseline's) never shares the machine with the backlog of the one before
/// it. An older undecided command is not waited for: only a crash can leave one.
pub(crate) async fn settle(database_url: &str) -> anyhow::Result<()> {
    let client = crate::setup::connect(database_url).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    poll_until(deadline, "Herald to work off its backlog", || async {
        let busy: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM herald.commands
                                WHERE status = 'accepted' AND created_at > now() - interval '3 seconds')
                     OR EXISTS (
                         SELECT 1 FROM herald.projections p
                         JOIN herald.checkpoints c ON c.name = p.checkpoint
                         JOIN herald.events e ON e.collection = p.name
                          AND (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE p.state = 'active')
                     OR EXISTS (
                         SELECT 1 FROM herald.checkpoints c
                         JOIN herald.events e ON (e.tx_id, e.position) > (c.tx_id, c.position)
                         WHERE c.name = 'relay')",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok((!busy).then_some(()))
    })
    .await
}

/// The tenant's event count once Herald has settled (no command still being handled).
pub(crate) async fn settled_events(database_url: &str, tenant: &str) -> anyhow::Result<u64> {
    settle(database_url).await?;
    let client = crate::setup::connect(database_url).await?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM herald.events WHERE tenant = $1",
            &[&tenant],
        )
        .await?
        .try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Gives the baseline the same listing documents, then fresh statistics for both tables.
pub(crate) async fn copy_listing_to_baseline(db: &BenchDatabase) -> anyhow::Result<()> {
    let client = db.connect().await?;
    let table: String = client
        .query_one(
            "SELECT format('herald_views.%I', checkpoint) FROM herald.projections
             WHERE name = $1 AND state = 'active'",
            &[&PROJECTION],
        )
        .await?
        .try_get(0)?;
    client
        .execute(
            &format!(
                "INSERT INTO direct.product (tenant, id, version, doc, f_price, f_status, created_at, updated_at)
                 SELECT tenant, id, version, doc, f_price, f_status, created_at, updated_at
                 FROM {table} WHERE tenant = $1"
            ),
            &[&LIST_TENANT],
        )
        .await
        .context("cannot copy the listing documents to the baseline")?;
    for table in ["direct.product", table.as_str()] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await?;
    }
    Ok(())
}

pub(crate) async fn view_ids(db: &BenchDatabase, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    ids(db, &format!("herald_views.\"{PROJECTION}\""), tenant).await
}

pub(crate) async fn baseline_ids(db: &BenchDatabase, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    ids(db, "direct.product", tenant).await
}

async fn ids(db: &BenchDatabase, table: &str, tenant: &str) -> anyhow::Result<Vec<Uuid>> {
    let client = db.connect().await?;
    let rows = client
        .query(
            &format!("SELECT id FROM {table} WHERE tenant = $1 ORDER BY id LIMIT $2"),
            &[&tenant, &SPREAD_DOCUMENTS],
        )
        .await?;
    if rows.is_empty() {
        bail!("no documents of {tenant} in {table} to update or read");
    }
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// The events appended to these documents so far (their versions, added up).
pub(crate) async fn stream_versions(db: &BenchDatabase, ids: &[Uuid]) -> anyhow::Result<i64> {
    let client = db.connect().await?;
    let streams: Vec<String> = ids.iter().map(|id| format!("{PROJECTION}.{id}")).collect();
    Ok(client
        .query_one(
            "SELECT coalesce(sum(version), 0)::bigint FROM herald.streams
             WHERE tenant = $1 AND stream_id = ANY($2)",
            &[&WRITE_TENANT, &streams],
        )
        .await?
        .try_get(0)?)
}
