//! F5: while clients write, events the view cannot read (a number no double holds, as a damaged
//! or foreign writer could leave) are put in the log by hand. The view retries them with
//! back-off, parks them and goes on; the admin API and `/metrics` show them. Then the rows are
//! repaired, the parked events are re-applied through the admin API, and the view equals a
//! rebuild.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;
use uuid::Uuid;

use crate::check::parked_in_view;
use crate::cli::Scenario;
use crate::run::{CLIENTS, Ctx, ONE_PROCESS, finish, say};
use crate::table::Row;
use crate::world::{TENANT, World};
use crate::writes::Writers;

/// Unreadable events put in the log.
const BAD_EVENTS: usize = 3;
/// How long parking (five tries with back-off) and re-applying may take.
const PARK_DEADLINE: Duration = Duration::from_secs(60);

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let calm = ctx.pick(Duration::from_secs(3), Duration::from_secs(10));
    let world = ctx.world("f5", ONE_PROCESS, &[]).await?;
    // Fewer clients: the parking takes half a minute of back-off, and every create of it is
    // checked and rebuilt afterwards.
    let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS / 4, None)?;
    let started = Instant::now();
    tokio::time::sleep(calm).await;

    let db = world.db.connect().await?;
    let mut bad = Vec::new();
    for _ in 0..BAD_EVENTS {
        bad.push(append_unreadable(&db).await?);
    }
    say("F5: unreadable events appended; waiting for the view to park them");
    let parked_at = Instant::now();
    wait_for_parked(&world, BAD_EVENTS).await?;
    let parking = parked_at.elapsed();
    let acked_while_parked = writers.acknowledged();
    tokio::time::sleep(calm).await;
    let acked_after = writers.acknowledged();
    let metric = parked_metric(&world).await?;

    // Repair the rows, ask for the re-application, and wait for the view to take them.
    db.execute(
        "UPDATE herald.events
         SET data = jsonb_build_object('name', 'repaired ' || event_id, 'price', 1)
         WHERE event_id = ANY($1)",
        &[&bad],
    )
    .await?;
    replay(&world).await?;
    let replayed_at = Instant::now();
    wait_for_parked(&world, 0).await?;
    let replaying = replayed_at.elapsed();
    let (mut row, _) = finish(
        &world,
        writers,
        started,
        Row::new("F5", Scenario::F5.title()),
    )
    .await?;
    row.recovery = format!(
        "parked in {:.1} s, re-applied in {:.1} s",
        parking.as_secs_f64(),
        replaying.as_secs_f64()
    );
    row.expect(
        acked_after > acked_while_parked,
        format!(
            "{} creates acknowledged while events were parked",
            acked_after - acked_while_parked
        ),
    );
    row.expect(
        metric == Some(BAD_EVENTS as u64),
        format!("/metrics herald_parked_events of the view: {metric:?}"),
    );
    let repaired = repaired_in_view(&db, &bad).await?;
    row.expect(
        repaired == BAD_EVENTS,
        format!("{repaired} of {BAD_EVENTS} repaired documents in the view"),
    );
    world.tear_down(!row.passed()).await?;
    Ok(row)
}

/// Appends a `created` event for a new product whose price no double holds, as a damaged or
/// foreign writer would; returns its event id.
async fn append_unreadable(db: &tokio_postgres::Client) -> anyhow::Result<Uuid> {
    let (event_id, document_id) = (Uuid::now_v7(), Uuid::now_v7());
    db.execute(
        "INSERT INTO herald.events
             (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata)
         VALUES ($1, $2, 'petstore.product', $3, 1, $4,
                 'petstore.product.created', '{\"name\": \"damaged\", \"price\": 1e400}'::jsonb,
                 '{\"actor\": {\"sub\": \"importer\", \"roles\": []}}')",
        &[
            &TENANT,
            &format!("petstore.product.{document_id}"),
            &document_id,
            &event_id,
        ],
    )
    .await
    .context("cannot append by hand")?;
    Ok(event_id)
}

async fn wait_for_parked(world: &World, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + PARK_DEADLINE;
    loop {
        let parked = parked_in_view(world).await?;
        if parked == count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the view has {parked} parked events, not {count}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The view's parked events as `/metrics` counts them.
async fn parked_metric(world: &World) -> anyhow::Result<Option<u64>> {
    let addr = world.api_addrs().first().copied().context("no api")?;
    let text = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(world.operator_token()?)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("herald_parked_events{reader=\"petstore.product.v"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok()))
}

/// Asks the projectors to re-apply the view's parked events.
async fn replay(world: &World) -> anyhow::Result<()> {
    let addr = world.api_addrs().first().copied().context("no api")?;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/admin/parked-events/replay"))
        .bearer_auth(world.operator_token()?)
        .json(&serde_json::json!({}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the replay was refused: {}", response.status());
    }
    Ok(())
}

/// How many of the repaired events' documents the view shows.
async fn repaired_in_view(db: &tokio_postgres::Client, events: &[Uuid]) -> anyhow::Result<usize> {
    let found: i64 = db
        .query_one(
            "SELECT count(*) FROM herald_views.\"petstore.product\" v
             JOIN herald.events e ON e.document_id = v.id AND e.tenant = v.tenant
             WHERE e.event_id = ANY($1) AND v.doc->>'name' LIKE 'repaired %'",
            &[&events],
        )
        .await?
        .try_get(0)?;
    Ok(usize::try_from(found).unwrap_or(0))
}
