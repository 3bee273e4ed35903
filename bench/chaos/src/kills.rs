//! F1: every role runs in two processes; at random moments one process is killed with
//! `SIGKILL` and started again, role after role, while clients write. Afterwards every
//! acknowledged create has its event exactly once, every `202` is decided, every task ran once,
//! the relay copied every event once, and the view equals a rebuild.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::run::{CLIENTS, Ctx, finish, say};
use crate::table::Row;
use crate::world::Role;
use crate::writes::Writers;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Row> {
    let layout: Vec<&[Role]> = Role::ALL
        .iter()
        .flat_map(|role| [std::slice::from_ref(role), std::slice::from_ref(role)])
        .collect();
    let mut world = ctx.world("f1", &layout, &[]).await?;
    let writers = Writers::start(world.api_addrs(), world.token()?, CLIENTS, None)?;
    let started = Instant::now();
    let until = started + ctx.pick(Duration::from_secs(25), Duration::from_secs(90));
    let mut kills: BTreeMap<&str, usize> = BTreeMap::new();
    let mut roles = Vec::new();
    while Instant::now() < until {
        let pause = rand::rng().random_range(700..2_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if roles.is_empty() {
            roles = Role::ALL.to_vec();
            roles.shuffle(&mut rand::rng());
        }
        let Some(role) = roles.pop() else { continue };
        let members: Vec<usize> = (0..world.members.len())
            .filter(|&i| world.members[i].roles == [role])
            .collect();
        let Some(&victim) = members.get(rand::rng().random_range(0..members.len().max(1))) else {
            continue;
        };
        world.kill_and_restart(victim).await?;
        if role == Role::Api {
            // Two api processes down at once would be an outage, not a kill.
            world.wait_ready(victim).await?;
        }
        *kills.entry(role.name()).or_default() += 1;
    }
    say("F1: writes stopped, checking");
    let (mut row, _) = finish(
        &world,
        writers,
        started,
        Row::new("F1", crate::cli::Scenario::F1.title()),
    )
    .await?;
    row.recovery = format!("{:.1} s to settle", row.verdict.settle_secs);
    let every_role = Role::ALL.iter().all(|r| kills.contains_key(r.name()));
    let killed: Vec<String> = kills.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    row.expect(every_role, format!("SIGKILL: {}", killed.join(", ")));
    world.tear_down(!row.passed()).await?;
    Ok(row)
}
