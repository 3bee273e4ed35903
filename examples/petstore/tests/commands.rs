//! The example's commands, tested the way an app's own tests are written with the test kit:
//! first their decisions (given the events a product has, when a caller sends a command, then
//! these events or that refusal), then over HTTP on an isolated Herald, as callers with their
//! roles and tenants. Needs Postgres and NATS for the second part (`HERALD_TEST_DATABASE_URL`,
//! `HERALD_TEST_NATS_URL`).

use herald_testkit::decision::{Decisions, Event, staff, user};
use herald_testkit::{Options, TestApp, json};
use secrecy::SecretString;
use serde_json::json;

/// The example as it ships, tasks included; its webhook's signing secret is the test's own.
fn example() -> Options {
    Options {
        configure: |settings| {
            let secret = SecretString::from("whsec_cGV0c3RvcmUtZXhhbXBsZS10ZXN0LXNlY3JldC0zMmI=");
            settings.webhooks.secrets.insert("warehouse".into(), secret);
        },
        ..Options::for_app(herald_petstore::app())
    }
}

fn petstore() -> Decisions {
    Decisions::load("apps", &herald_petstore::app()).unwrap_or_else(|e| panic!("{e}"))
}

fn kite() -> Event {
    Event::new(
        "created",
        json!({"name": "Kite", "price": 30, "stock": 0, "status": "draft"}),
    )
}

#[test]
fn publish_puts_a_draft_on_sale_and_refuses_anything_else() {
    let petstore = petstore();

    petstore
        .given("petstore.product", [kite()])
        .when(&staff("sam"), "publish", json!({}))
        .then([Event::new("published", json!({"status": "published"}))]);
    petstore
        .given(
            "petstore.product",
            [
                kite(),
                Event::new("published", json!({"status": "published"})),
            ],
        )
        .when(&staff("sam"), "publish", json!({}))
        .then_refused("not_draft");
    petstore
        .given("petstore.product", [kite()])
        .when(&user("uma"), "publish", json!({}))
        .then_refused("forbidden");
}

#[test]
fn restock_adds_to_the_stock_unless_the_product_is_retired() {
    let petstore = petstore();
    let restocked = Event::new("restocked", json!({"quantity": 5}));

    let product = petstore
        .given(
            "petstore.product",
            [kite(), restocked.clone().sets(json!({"stock": 5}))],
        )
        .when(&staff("sam"), "restock", json!({"quantity": 7}))
        .then([Event::new("restocked", json!({"quantity": 7})).sets(json!({"stock": 12}))]);
    assert_eq!(product.fields["stock"], 12);
    petstore
        .given(
            "petstore.product",
            [kite(), Event::new("updated", json!({"status": "retired"}))],
        )
        .when(&staff("sam"), "restock", json!({"quantity": 1}))
        .then_refused("product_retired");
    petstore
        .given(
            "petstore.product",
            [Event::new(
                "created",
                json!({"name": "Kite", "price": 30, "stock": i64::MAX, "status": "draft"}),
            )],
        )
        .when(&staff("sam"), "restock", json!({"quantity": 1}))
        .then_refused("stock_overflow");
    for quantity in [json!(0), json!(10_001), json!("5"), json!(null)] {
        petstore
            .given("petstore.product", [kite()])
            .when(&staff("sam"), "restock", json!({"quantity": quantity}))
            .then_refused("validation_failed");
    }
}

#[test]
fn onboard_creates_a_supplier_pending_review() {
    let supplier = petstore()
        .given("petstore.supplier", [])
        .when(
            &staff("sam"),
            "onboard",
            json!({"name": "Acme", "email": "sales@acme.test", "country": "NL"}),
        )
        .then([Event::new(
            "onboarded",
            json!({"name": "Acme", "email": "sales@acme.test", "country": "NL", "review": "pending"}),
        )]);
    assert_eq!(supplier.version, 1);
}

#[tokio::test]
async fn staff_restock_what_users_may_only_read_and_other_tenants_never_see() {
    let app = TestApp::spawn_with(example()).await;
    let staff = app.as_staff("sam");
    let user = app.as_user("uma");
    let mut product = app.random_document("petstore.product");
    // A draft with room in its stock; every other field is random.
    product["status"] = json!("draft");
    product["stock"] = json!(2);
    let created = staff.create("petstore/product", &product).await;
    let id = created["id"].as_str().unwrap_or_default();

    let by_user = user
        .run("petstore/product", id, "restock", &json!({"quantity": 3}))
        .await;
    assert_eq!(by_user.status(), 403);
    let elsewhere = staff
        .in_tenant("globex")
        .run("petstore/product", id, "restock", &json!({"quantity": 3}))
        .await;
    assert_eq!(elsewhere.status(), 404);
    let restocked = staff
        .run("petstore/product", id, "restock", &json!({"quantity": 3}))
        .await;
    assert_eq!(restocked.status(), 200);
    assert_eq!(json(restocked).await["stock"], 5);
    let published = staff
        .run("petstore/product", id, "publish", &json!({}))
        .await;
    assert_eq!(json(published).await["status"], "published");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn every_random_product_the_yaml_accepts_is_created() {
    let app = TestApp::spawn_with(example()).await;
    let staff = app.as_staff("sam");
    for _ in 0..20 {
        let product = app.random_document("petstore.product");
        let response = staff.post("/v1/petstore/product", &product).await;
        let status = response.status();
        // `name` is unique: two random names may meet, which is the one refusal allowed.
        let problem = json(response).await;
        assert!(
            status == 201 || problem["code"] == "unique_violation",
            "{product} was refused: {problem}"
        );
    }
    app.stop_and_clean().await;
}
