//! The app's commands: their decisions without any service, then over HTTP on an isolated
//! Herald (real Postgres and NATS: `HERALD_TEST_DATABASE_URL`, `HERALD_TEST_NATS_URL`).

use herald_testkit::decision::{Decisions, Event, staff, user};
use herald_testkit::{Options, TestApp, json};
use serde_json::json;

fn tickets() -> Decisions {
    Decisions::load("apps", &{{name}}::app()).unwrap_or_else(|e| panic!("{e}"))
}

fn opened(priority: i64) -> Event {
    Event::new(
        "created",
        json!({"title": "Printer", "priority": priority, "status": "open"}),
    )
}

#[test]
fn close_closes_an_open_ticket_once() {
    tickets()
        .given("{{name}}.ticket", [opened(1)])
        .when(&staff("sam"), "close", json!({}))
        .then([Event::new("closed", json!({"status": "closed"}))]);
    tickets()
        .given(
            "{{name}}.ticket",
            [opened(1), Event::new("closed", json!({"status": "closed"}))],
        )
        .when(&staff("sam"), "close", json!({}))
        .then_refused("not_open");
}

#[test]
fn escalate_raises_the_priority_up_to_five() {
    tickets()
        .given("{{name}}.ticket", [opened(2)])
        .when(&staff("sam"), "escalate", json!({"reason": "on fire"}))
        .then([
            Event::new("escalated", json!({"reason": "on fire", "from": 2}))
                .sets(json!({"priority": 3})),
        ]);
    tickets()
        .given("{{name}}.ticket", [opened(5)])
        .when(&staff("sam"), "escalate", json!({"reason": "still"}))
        .then_refused("already_urgent");
    tickets()
        .given("{{name}}.ticket", [opened(2)])
        .when(&user("uma"), "escalate", json!({"reason": "me"}))
        .then_refused("forbidden");
    tickets()
        .given("{{name}}.ticket", [opened(2)])
        .when(&staff("sam"), "escalate", json!({}))
        .then_refused("validation_failed");
}

#[tokio::test]
async fn a_user_files_a_ticket_and_staff_escalate_it() {
    let app = TestApp::spawn_with(Options::for_app({{name}}::app())).await;
    let (uma, sam) = (app.as_user("uma"), app.as_staff("sam"));
    let ticket = uma
        .create("{{name}}/ticket", &app.random_document("{{name}}.ticket"))
        .await;
    let id = ticket["id"].as_str().unwrap_or_default();

    let by_user = uma
        .run("{{name}}/ticket", id, "escalate", &json!({"reason": "please"}))
        .await;
    assert_eq!(by_user.status(), 403);
    let elsewhere = sam
        .in_tenant("globex")
        .run("{{name}}/ticket", id, "escalate", &json!({"reason": "x"}))
        .await;
    assert_eq!(elsewhere.status(), 404, "another tenant's ticket is not there");
    let priority = ticket["priority"].as_i64().unwrap_or(1);
    let escalated = sam
        .run("{{name}}/ticket", id, "escalate", &json!({"reason": "on fire"}))
        .await;
    if priority < 5 {
        assert_eq!(json(escalated).await["priority"], priority + 1);
    } else {
        assert_eq!(json(escalated).await["code"], "already_urgent");
    }
    let closed = uma.run("{{name}}/ticket", id, "close", &json!({})).await;
    assert_eq!(json(closed).await["status"], "closed", "the owner may close it");
    app.stop_and_clean().await;
}
