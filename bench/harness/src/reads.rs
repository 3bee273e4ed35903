//! The read workloads compared with the baseline: W3 reads by id of the documents W2
//! updated, and W4 lists over the seeded documents, with the plan Postgres picks for them.

use serde_json::json;

use crate::context::{Bench, LIST_TENANT, PROJECTION, Results, say};
use crate::measured::{compare, load_both, load_peer, peer_figures};
use crate::sources::{Api, List, Read};
use crate::table::{Verdict, thousands};
use crate::writes::Targets;

/// W3: reads by id on both servers.
pub(crate) async fn measure_reads(
    bench: &Bench<'_>,
    targets: Targets,
    results: &mut Results,
) -> anyhow::Result<()> {
    say("W3: reads by id");
    let (herald, direct) = load_both(
        bench,
        Read::new(bench.herald_writes.clone(), targets.herald),
        Read::new(bench.direct_writes.clone(), targets.direct.clone()),
    )
    .await?;
    let peer = load_peer(
        bench,
        Read::new(bench.direct_writes.clone(), targets.direct),
    )
    .await?;
    results.push_with_peer(
        compare("W3", "read by id", &herald, &direct, 0.9),
        peer_figures(&herald, peer.as_ref()),
    );
    results.record(
        "w3",
        json!({"herald": herald, "direct": direct, "fastapi": peer}),
    );
    Ok(())
}

/// W4: a filtered, sorted page of the seeded documents on both servers. Herald's row fails
/// when Postgres would not use an index for it, whatever the throughput.
pub(crate) async fn measure_lists(bench: &Bench<'_>, results: &mut Results) -> anyhow::Result<()> {
    say("W4: lists over the seeded documents");
    let list_api = Api::herald(&bench.env.token(LIST_TENANT)?)?;
    let (herald, direct) = load_both(
        bench,
        List::new(list_api),
        List::new(Api::direct(LIST_TENANT)),
    )
    .await?;
    let peer = load_peer(bench, List::new(Api::direct(LIST_TENANT))).await?;
    let plan = list_plan(bench.db).await?;
    let mut row = compare(
        "W4",
        &format!(
            "list: 2 filters + sort, page of 50, over {} documents",
            thousands(bench.scale.documents as f64)
        ),
        &herald,
        &direct,
        0.8,
    );
    row.herald = format!("{}; plan: {plan}", row.herald);
    if !plan.contains("Index") {
        row.verdict = Verdict::Fail;
    }
    results.push_with_peer(row, peer_figures(&herald, peer.as_ref()));
    results.record(
        "w4",
        json!({"herald": herald, "direct": direct, "fastapi": peer, "plan": plan}),
    );
    Ok(())
}

/// The top of the plan Postgres picks for W4's query on the view.
async fn list_plan(db: &crate::setup::BenchDatabase) -> anyhow::Result<String> {
    let client = db.connect().await?;
    let rows = client
        .query(
            &format!(
                "EXPLAIN SELECT * FROM herald_views.\"{PROJECTION}\"
                 WHERE tenant = '{LIST_TENANT}' AND NOT archived AND f_status = 'published'
                   AND f_price < 100
                 ORDER BY f_price DESC, id DESC LIMIT 51"
            ),
            &[],
        )
        .await?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()?;
    let scan = lines
        .iter()
        .find(|l| l.contains("Scan"))
        .map_or("?", |l| l.trim().trim_start_matches("->").trim());
    Ok(scan
        .split(" on ")
        .next()
        .unwrap_or(scan)
        .split("  (")
        .next()
        .unwrap_or(scan)
        .to_owned())
}
