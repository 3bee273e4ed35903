//! The event relay: every committed event reaches `<PREFIX>_EVENTS` once, in log order, even
//! when relays are killed at random moments while writers append.

use std::time::Duration;

use herald_bus::nats::Bus;
use herald_cli::server::Role;
use herald_handler::relay;
use herald_tests::{Options, TestApp, eventually, log_ids, relayed};
use rand::Rng;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn relays_killed_at_random_moments_publish_every_event_once_in_order() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        ..herald_tests::petstore()
    })
    .await;
    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let staff = app.token("sam", &["staff"], "acme");
    let writers = {
        let (base, http, staff) = (app.base.clone(), app.http.clone(), staff.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                let response = http
                    .post(format!("{base}/v1/petstore/product"))
                    .bearer_auth(&staff)
                    .json(&json!({"name": format!("e{i}"), "price": i}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(response.status(), 201);
            }
        })
    };
    let mut settings = app.settings.relay.clone();
    settings.batch_size = 7;
    let start = |stop: CancellationToken| {
        tokio::spawn(relay::run(
            bus.clone(),
            app.settings.database.clone(),
            settings.clone(),
            stop,
        ))
    };
    // Kill a relay at a random moment (dropping it mid-publish or mid-checkpoint), start the
    // next; the delays inject the faults, nothing waits on them for correctness.
    for _ in 0..5 {
        let stop = CancellationToken::new();
        let relay = start(stop.clone());
        let lifetime = rand::rng().random_range(20..250);
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        relay.abort();
        drop(relay.await);
        stop.cancel();
    }
    writers.await.unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    let last = start(stop.clone());
    let log = log_ids(&app).await;
    assert_eq!(log.len(), 60);
    let messages = eventually("the relay to publish the whole log", || async {
        let messages = relayed(&app).await;
        (messages.len() >= log.len()).then_some(messages)
    })
    .await;
    let ids: Vec<String> = messages
        .iter()
        .map(|(_, p)| p["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids, log, "every event once, in log order");
    let (subject, payload) = &messages[0];
    assert_eq!(
        subject,
        &format!("{}.evt.acme.petstore.product.created", app.prefix)
    );
    assert_eq!(payload["tenant"], "acme");
    assert_eq!(payload["type"], "petstore.product.created");
    assert_eq!(payload["data"]["name"], "e0");
    assert!(payload["metadata"]["command_id"].is_string());
    stop.cancel();
    last.await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    app.stop_and_clean().await;
}
