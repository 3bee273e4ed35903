//! The write workloads compared with the baseline: W1 creates, and W2 updates, spread over
//! many documents and then piled on a few hot ones.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::context::{Bench, HOT_DOCUMENTS, Results, WRITE_TENANT, say};
use crate::database::{baseline_ids, settle, stream_versions, view_ids};
use crate::measured::{Measured, compare, load, load_both, load_peer, peer_figures, ratio};
use crate::rss::with_peak_rss;
use crate::sources::{Create, Update};
use crate::table::{Row, Verdict, thousands, throughput};

/// What W1 leaves for the later workloads: Herald's create rate, and each server's peak
/// memory while it was creating.
pub(crate) struct Creates {
    pub(crate) herald_rate: f64,
    pub(crate) herald_peak: u64,
    pub(crate) baseline_peak: u64,
}

/// The documents of the write tenant, on each server, that W2 updates and W3 reads.
pub(crate) struct Targets {
    pub(crate) herald: Vec<Uuid>,
    pub(crate) direct: Vec<Uuid>,
}

/// W1: creates on both servers, reading each server's memory as it works.
pub(crate) async fn measure_creates(
    bench: &Bench<'_>,
    results: &mut Results,
) -> anyhow::Result<Creates> {
    say("W1: creates");
    let (herald, herald_peak) = with_peak_rss(
        bench.herald_pid,
        load(
            bench.servers.herald_addr,
            Create::new(bench.herald_writes.clone(), "w1"),
            bench.closed,
            bench.scale,
            true,
        ),
    )
    .await?;
    let (direct, baseline_peak) = with_peak_rss(
        bench.baseline_pid,
        load(
            bench.servers.baseline_addr,
            Create::new(bench.direct_writes.clone(), "w1"),
            bench.closed,
            bench.scale,
            true,
        ),
    )
    .await?;
    let peer = load_peer(bench, Create::new(bench.direct_writes.clone(), "w1")).await?;
    results.push_with_peer(
        compare("W1", "create, 64 connections", &herald, &direct, 0.5),
        peer_figures(&herald, peer.as_ref()),
    );
    let herald_rate = herald.total.requests_per_sec;
    results.record(
        "w1",
        json!({"herald": herald, "direct": direct, "fastapi": peer}),
    );
    Ok(Creates {
        herald_rate,
        herald_peak,
        baseline_peak,
    })
}

/// W2: updates on the documents W1 created; returns those documents for W3.
pub(crate) async fn measure_updates(
    bench: &Bench<'_>,
    results: &mut Results,
) -> anyhow::Result<Targets> {
    say("W2: updates over 10k documents and on 10 hot ones");
    let targets = Targets {
        herald: view_ids(bench.db, WRITE_TENANT).await?,
        direct: baseline_ids(bench.db, WRITE_TENANT).await?,
    };
    let spread = measure_spread_updates(bench, &targets, results).await?;
    let hot = measure_hot_updates(bench, &targets, results).await?;
    results.record("w2", json!({"spread": spread, "hot": hot}));
    Ok(targets)
}

/// Updates spread over every target, so concurrent ones rarely meet on one document.
async fn measure_spread_updates(
    bench: &Bench<'_>,
    targets: &Targets,
    results: &mut Results,
) -> anyhow::Result<Value> {
    let (herald, direct) = load_both(
        bench,
        Update::new(
            bench.herald_writes.clone(),
            "update",
            targets.herald.clone(),
        ),
        Update::new(
            bench.direct_writes.clone(),
            "update",
            targets.direct.clone(),
        ),
    )
    .await?;
    let peer = load_peer(
        bench,
        Update::new(
            bench.direct_writes.clone(),
            "update",
            targets.direct.clone(),
        ),
    )
    .await?;
    results.push_with_peer(
        compare(
            "W2",
            &format!(
                "update (PATCH) spread over {} documents",
                thousands(targets.herald.len() as f64)
            ),
            &herald,
            &direct,
            0.5,
        ),
        peer_figures(&herald, peer.as_ref()),
    );
    Ok(json!({"herald": herald, "direct": direct, "fastapi": peer}))
}

/// Updates piled on a few documents, so concurrent ones conflict: every update Herald
/// acknowledged must have been appended to the log.
async fn measure_hot_updates(
    bench: &Bench<'_>,
    targets: &Targets,
    results: &mut Results,
) -> anyhow::Result<Value> {
    let hot: Vec<Uuid> = targets.herald.iter().take(HOT_DOCUMENTS).copied().collect();
    let before = stream_versions(bench.db, &hot).await?;
    // No warm-up: every acknowledged update of the window must be in the log.
    let herald = load(
        bench.servers.herald_addr,
        Update::new(bench.herald_writes.clone(), "hot update", hot.clone()),
        bench.closed,
        bench.scale,
        false,
    )
    .await?;
    settle(&bench.db.url).await?;
    let appended = stream_versions(bench.db, &hot).await? - before;
    let acknowledged = i64::try_from(herald.total.statuses.success).unwrap_or(i64::MAX);
    let direct_hot: Vec<Uuid> = targets.direct.iter().take(HOT_DOCUMENTS).copied().collect();
    let direct = load(
        bench.servers.baseline_addr,
        Update::new(bench.direct_writes.clone(), "hot update", direct_hot),
        bench.closed,
        bench.scale,
        false,
    )
    .await?;
    results.push(hot_update_row(&herald, &direct, acknowledged, appended));
    Ok(
        json!({"herald": herald, "direct": direct, "acknowledged": acknowledged, "appended": appended}),
    )
}

/// The hot-update row: passes when no acknowledged update is missing from the log.
fn hot_update_row(herald: &Measured, direct: &Measured, acknowledged: i64, appended: i64) -> Row {
    let lost = (acknowledged - appended).max(0);
    Row {
        id: "W2",
        workload: "update (PATCH) on 10 hot documents".into(),
        herald: format!(
            "{}; {} acknowledged, {} appended, {lost} lost, {} conflicts",
            throughput(herald),
            thousands(acknowledged as f64),
            thousands(appended as f64),
            herald.total.statuses.client_error
        ),
        baseline: throughput(direct),
        ratio: Some(ratio(herald, direct)),
        target: "no lost update".into(),
        verdict: Verdict::of(lost == 0 && herald.total.statuses.success > 0),
    }
}
