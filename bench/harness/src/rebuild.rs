//! W6: the projector builds the seeded view, then rebuilds it from position zero on an
//! operator's request; the figure is the rebuild's rate as Herald's catalog recorded it.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::time::Instant;

use crate::context::{PROJECTION, Results, Servers, say};
use crate::database::poll_until;
use crate::setup::{BenchDatabase, HeraldEnv, OPERATOR_TENANT};
use crate::table::{Row, Verdict, thousands};

/// W6: waits for the first build, asks for a rebuild and times it.
pub(crate) async fn measure_rebuild(
    db: &BenchDatabase,
    servers: &Servers,
    env: &HeraldEnv,
    documents: u64,
    results: &mut Results,
) -> anyhow::Result<()> {
    say("W6: the projector builds the seeded view, then rebuilds it on request");
    wait_for_catch_up(db, documents).await?;
    request_rebuild(servers, env).await?;
    let (events, seconds) = wait_for_build(db, documents).await?;
    let rate = events as f64 / seconds.max(0.001);
    let row = Row {
        id: "W6",
        workload: format!("rebuild a view from {} events", thousands(events as f64)),
        herald: format!("{} events/s ({seconds:.1} s)", thousands(rate)),
        baseline: String::new(),
        ratio: None,
        target: "≥ 50,000 events/s".into(),
        verdict: Verdict::of(rate >= 50_000.0),
    };
    say(&format!("  {}", row.herald));
    results.push(row);
    results.record("w6", json!({"events": events, "seconds": seconds}));
    Ok(())
}

/// Build deadlines are generous: a slow build is a figure to report, not a harness failure.
fn build_deadline(documents: u64) -> Instant {
    Instant::now() + Duration::from_secs(120 + documents / 1_000)
}

/// Waits until the first version of the view has applied every event it was created with.
async fn wait_for_catch_up(db: &BenchDatabase, documents: u64) -> anyhow::Result<()> {
    let client = db.connect().await?;
    poll_until(
        build_deadline(documents),
        "the view to catch up",
        || async {
            let caught_up = client
                .query_opt(
                    "SELECT 1 FROM herald.projections
                 WHERE name = $1 AND state = 'active' AND events_done >= events_total",
                    &[&PROJECTION],
                )
                .await?
                .is_some();
            Ok(caught_up.then_some(()))
        },
    )
    .await
}

/// Asks Herald, as an operator, to rebuild the view from position zero.
async fn request_rebuild(servers: &Servers, env: &HeraldEnv) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(format!(
            "http://{}/v1/admin/projections/{PROJECTION}/rebuild",
            servers.herald_addr
        ))
        .bearer_auth(env.token(OPERATOR_TENANT)?)
        .send()
        .await?
        .error_for_status()
        .context("the rebuild was refused")?;
    Ok(())
}

/// Waits until the newest version of the view is active; returns the events it was built from and the
/// seconds from the version's creation to its activation, as the catalog recorded them.
async fn wait_for_build(db: &BenchDatabase, documents: u64) -> anyhow::Result<(u64, f64)> {
    let client = db.connect().await?;
    let last_report = std::cell::Cell::new(Instant::now());
    poll_until(build_deadline(documents), "the view to be rebuilt", || {
        let (client, last_report) = (&client, &last_report);
        async move {
            let Some(row) = client
                .query_opt(
                    "SELECT state, events_total, events_done,
                            extract(epoch FROM activated_at - created_at)::float8
                     FROM herald.projections WHERE name = $1 ORDER BY version DESC LIMIT 1",
                    &[&PROJECTION],
                )
                .await?
            else {
                return Ok(None);
            };
            let state: String = row.try_get(0)?;
            let total: i64 = row.try_get(1)?;
            let done: i64 = row.try_get(2)?;
            if state == "active" {
                let seconds: Option<f64> = row.try_get(3)?;
                return Ok(Some((
                    u64::try_from(total).unwrap_or(0),
                    seconds.unwrap_or(0.0),
                )));
            }
            if last_report.get().elapsed() > Duration::from_secs(5) {
                say(&format!(
                    "  {} of {} events applied",
                    thousands(done as f64),
                    thousands(total as f64)
                ));
                last_report.set(Instant::now());
            }
            Ok(None)
        }
    })
    .await
}
