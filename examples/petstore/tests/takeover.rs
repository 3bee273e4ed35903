//! Leases under real process deaths: `herald serve --role projector --role relay` processes are
//! SIGKILLed at random moments while writers append; a standby takes over each time, the view
//! ends equal to the fold of the log and the events stream holds every event once, in order.
//! Needs Postgres and NATS (`HERALD_TEST_DATABASE_URL`, `HERALD_TEST_NATS_URL`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_cli::server::Role;
use herald_testkit::{
    Options, TestApp, eventually, header, log_ids, relayed, view_matches_the_log,
};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::process::{Child, Command};

/// A projector and relay process on the test's database and prefix.
fn start_worker_process(app: &TestApp) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald-petstore"));
    command
        .args(["serve", "--role", "projector", "--role", "relay"])
        .env(
            "HERALD_DATABASE__URL",
            app.settings.database.url.expose_secret(),
        )
        .env("HERALD_NATS__URL", &app.settings.nats.url)
        .env("HERALD_NATS__PREFIX", &app.prefix)
        .env(
            "HERALD_APPS__DIR",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("apps"),
        )
        .env("HERALD_PROJECTOR__LEASE_RETRY_MS", "100")
        .env("HERALD_LOG__LEVEL", "error")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    match command.spawn() {
        Ok(child) => child,
        Err(error) => panic!("cannot start herald: {error}"),
    }
}

#[tokio::test]
async fn killed_projector_and_relay_processes_are_replaced_by_standbys_without_loss() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        ..Options::for_app(herald_petstore::app())
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut processes = VecDeque::from([start_worker_process(&app)]);
    let first = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "first", "price": 1}),
        )
        .await;
    let position = header(&first, "herald-position");
    eventually("the first process to project", || async {
        let read = app
            .get(
                &format!("/v1/petstore/product?min_position={position}"),
                &staff,
            )
            .await;
        (read.status() == 200).then_some(())
    })
    .await;
    processes.push_back(start_worker_process(&app));

    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (base, http, staff, writing) = (
            app.base.clone(),
            app.http.clone(),
            staff.clone(),
            writing.clone(),
        );
        tokio::spawn(async move {
            let mut last = String::new();
            let mut i = 0;
            while writing.load(Ordering::SeqCst) {
                i += 1;
                let created = http
                    .post(format!("{base}/v1/petstore/product"))
                    .bearer_auth(&staff)
                    .json(&json!({"name": format!("k{i}"), "price": i}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(created.status(), 201);
                last = header(&created, "herald-position");
            }
            last
        })
    };
    // Each round kills the oldest process (the lease holder) at a random moment and starts a
    // new standby; the delays inject the faults, nothing waits on them for correctness.
    for _ in 0..3 {
        let lifetime = rand::rng().random_range(200..700);
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        if let Some(mut holder) = processes.pop_front() {
            holder.kill().await.unwrap_or_else(|e| panic!("{e}"));
        }
        processes.push_back(start_worker_process(&app));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    writing.store(false, Ordering::SeqCst);
    let last = writer.await.unwrap_or_else(|e| panic!("{e}"));

    eventually("a standby to bring the view up to date", || async {
        let read = app
            .get(&format!("/v1/petstore/product?min_position={last}"), &staff)
            .await;
        (read.status() == 200).then_some(())
    })
    .await;
    assert!(
        view_matches_the_log(&app, "petstore.product").await,
        "the view equals the fold of the log"
    );
    let log = log_ids(&app).await;
    assert!(log.len() > 10, "writers appended while processes died");
    let relayed = eventually("a standby relay to publish the whole log", || async {
        let messages = relayed(&app).await;
        (messages.len() >= log.len()).then_some(messages)
    })
    .await;
    let ids: Vec<String> = relayed
        .iter()
        .map(|(_, p)| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids, log, "every event relayed once, in log order");
    for mut process in processes {
        process.kill().await.unwrap_or_else(|e| panic!("{e}"));
    }
    app.stop_and_clean().await;
}
