//! Commands a document declares (`commands:` in its YAML): the example's `publish` over HTTP,
//! its event in history, event pages, the relay, a task trigger and the view; and a command
//! with params, whose values are checked against both their declaration and the document.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use herald_bus::access::Principal;
use herald_bus::document::DocumentState;
use herald_bus::rust_command::{CollectionCommand, Emit, Refusal, RustCommand};
use herald_tests::{
    Options, TestApp, eventually, header, json, petstore_with, relayed, send, view_matches_the_log,
    write_apps,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Another id of the same shape, which no document has.
fn uuid_like(id: &str) -> String {
    let last = if id.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &id[..id.len() - 1])
}

async fn draft(app: &TestApp, token: &str) -> String {
    let product = app
        .create(
            "petstore/product",
            token,
            &json!({"name": "Kite", "price": 30}),
        )
        .await;
    assert_eq!(product["status"], "draft");
    product["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn publish_moves_a_draft_on_sale_once_and_only_staff_may_run_it() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let user = app.token("uma", &["user"], "acme");
    let stranger = app.token("sam", &["staff"], "other");
    let id = draft(&app, &staff).await;
    let path = format!("/v1/petstore/product/{id}");

    let by_user = send(app.request(Method::POST, &format!("{path}/publish"), Some(&user))).await;
    assert_eq!(
        by_user.status(),
        403,
        "a reader may see the product, not publish it"
    );
    let anonymous = send(app.request(Method::POST, &format!("{path}/publish"), None)).await;
    assert_eq!(anonymous.status(), 401);
    let other_tenant =
        send(app.request(Method::POST, &format!("{path}/publish"), Some(&stranger))).await;
    assert_eq!(
        other_tenant.status(),
        404,
        "another tenant's product is not there"
    );
    let nowhere = app
        .post(
            &format!("/v1/petstore/product/{}/publish", uuid_like(&id)),
            &staff,
            &json!({"at": "noon"}),
        )
        .await;
    assert_eq!(
        nowhere.status(),
        404,
        "a missing document comes before the params"
    );
    let by_user_with_params = app
        .post(&format!("{path}/publish"), &user, &json!({"at": "noon"}))
        .await;
    assert_eq!(
        by_user_with_params.status(),
        403,
        "the right comes before the params"
    );
    let unknown = send(app.request(Method::POST, &format!("{path}/explode"), Some(&staff))).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json(unknown).await["code"], "not_found");
    let stale = send(
        app.request(Method::POST, &format!("{path}/publish"), Some(&staff))
            .header("if-match", "\"7\""),
    )
    .await;
    assert_eq!(stale.status(), 412);

    // No body at all is `{}`: `publish` has no params. A retry with the same key may send `{}`.
    let published = send(
        app.request(Method::POST, &format!("{path}/publish"), Some(&staff))
            .header("idempotency-key", "publish-kite"),
    )
    .await;
    assert_eq!(published.status(), 200);
    assert_eq!(header(&published, "etag"), "\"2\"");
    let position = header(&published, "herald-position");
    assert!(!position.is_empty());
    let document = json(published).await;
    assert_eq!(
        (document["status"].clone(), document["version"].clone()),
        (json!("published"), json!(2))
    );

    let again = app
        .post(&format!("{path}/publish"), &staff, &json!({}))
        .await;
    assert_eq!(again.status(), 409);
    let problem = json(again).await;
    assert_eq!(problem["code"], "not_draft");
    assert_eq!(problem["detail"], "Only a draft product can be published");
    let unknown_param = app
        .post(&format!("{path}/publish"), &staff, &json!({"when": "now"}))
        .await;
    assert_eq!(unknown_param.status(), 422, "publish takes no params");

    let read = json(
        app.get(&format!("{path}?min_position={position}"), &staff)
            .await,
    )
    .await;
    assert_eq!(read["status"], "published", "the view applied the event");
    assert!(view_matches_the_log(&app, "petstore.product").await);

    let history = json(app.get(&format!("{path}/history"), &staff).await).await;
    let last = &history["data"][1];
    assert_eq!(last["type"], "petstore.product.published", "{history}");
    assert_eq!(
        last["changes"]["status"],
        json!({"before": "draft", "after": "published"})
    );
    let page = json(
        app.get(
            "/v1/petstore/product/events?types=petstore.product.published",
            &staff,
        )
        .await,
    )
    .await;
    let types: Vec<Value> = page["data"]
        .as_array()
        .map(|events| events.iter().map(|e| e["type"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(types, [json!("petstore.product.published")]);
    let subjects = eventually("the relay to publish the event", || async {
        let relayed = relayed(&app).await;
        let subjects: Vec<String> = relayed.into_iter().map(|(subject, _)| subject).collect();
        subjects
            .iter()
            .any(|s| s.ends_with(".acme.petstore.product.published"))
            .then_some(subjects)
    })
    .await;
    assert_eq!(subjects.len(), 2, "created, then published: {subjects:?}");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_published_event_triggers_a_task() {
    const TASKS: &str = "
describe_published:
  on: petstore.product.published
  kind: command
  command:
    target: petstore.product
    action: update
    id: $event.document_id
    body: {description: On sale now}
";
    let app = TestApp::spawn_with(Options {
        apps: petstore_with(&[("petstore", "tasks", TASKS)]),
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let id = draft(&app, &staff).await;
    let path = format!("/v1/petstore/product/{id}");
    let published = app
        .post(&format!("{path}/publish"), &staff, &json!({}))
        .await;
    assert_eq!(published.status(), 200);
    eventually("the task's update", || async {
        let product = json(app.get(&path, &staff).await).await;
        (product["description"] == "On sale now").then_some(())
    })
    .await;
    app.stop_and_clean().await;
}

const TICKET: &str = "
fields:
  title: {type: string, required: true}
  note: {type: string, max: 20}
  priority: {type: integer, min: 1, max: 5}
  state: {type: string, enum: [open, closed], default: open, read_only: true}
acl: {create: user, read: user, update: user, history: user}
commands:
  close:
    acl: user
    emits: closed
    set: {state: closed}
  annotate:
    description: Add a note and set the priority
    acl: user
    params:
      note: {type: string, required: true, max: 20}
      priority: {type: integer, min: 1, max: 9}
    emits: annotated
    set: {note: {param: note}, priority: {param: priority}}
  escalate:
    acl: user
    kind: rust
    params:
      reason: {type: string, required: true}
    emits: escalated
  explode:
    acl: user
    kind: rust
    emits: exploded
  file:
    description: File a ticket from a form; urgent words raise its priority
    on: collection
    acl: user
    kind: rust
    params:
      title: {type: string, required: true}
      body: {type: string, max: 200}
    emits: [filed, escalated]
";

/// Raises a ticket's priority by one, up to 5, recording why and from where.
struct Escalate;

#[derive(Deserialize)]
struct Reason {
    reason: String,
}

impl RustCommand for Escalate {
    type Params = Reason;

    fn decide(
        &self,
        ticket: &DocumentState,
        params: Reason,
        _caller: &Principal,
    ) -> Result<Vec<Emit>, Refusal> {
        let priority = ticket
            .fields
            .get("priority")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if priority >= 5 {
            return Err(Refusal::new(
                "already_urgent",
                "The ticket is as urgent as it gets",
            ));
        }
        Ok(vec![
            Emit::new(
                "escalated",
                json!({"reason": params.reason, "from": priority}),
            )
            .set("priority", priority + 1),
        ])
    }
}

/// Code with a bug: it panics.
struct Explode;

impl RustCommand for Explode {
    type Params = Value;

    fn decide(&self, _: &DocumentState, _: Value, _: &Principal) -> Result<Vec<Emit>, Refusal> {
        panic!("explode has a bug")
    }
}

/// A Herald serving the desk app, with its Rust commands.
async fn spawn_desk() -> TestApp {
    let apps = write_apps(&[("desk", "ticket", TICKET)]).unwrap_or_else(|e| panic!("{e}"));
    TestApp::spawn_with(Options {
        apps,
        app: desk(),
        ..herald_tests::petstore()
    })
    .await
}

fn desk() -> herald_cli::App {
    herald_cli::App::new()
        .command("desk.ticket.escalate", Escalate)
        .command("desk.ticket.explode", Explode)
        .collection_command("desk.ticket.file", File)
}

/// Files a ticket from a form: it is filed, and escalated at once when the body says "urgent".
struct File;

#[derive(Deserialize)]
struct Form {
    title: String,
    body: Option<String>,
}

impl CollectionCommand for File {
    type Params = Form;

    fn decide(&self, form: Form, caller: &Principal) -> Result<Vec<Emit>, Refusal> {
        if form.title.trim().is_empty() {
            return Err(Refusal::new("blank_title", "A ticket needs a title"));
        }
        let filed = Emit::new("filed", json!({"by": caller.actor_sub()}))
            .set("title", form.title.trim())
            .set("priority", 1);
        let urgent = form.body.as_deref().is_some_and(|b| b.contains("urgent"));
        if urgent {
            let escalated =
                Emit::new("escalated", json!({"reason": "urgent", "from": 1})).set("priority", 2);
            return Ok(vec![filed, escalated]);
        }
        Ok(vec![filed])
    }
}

#[tokio::test]
async fn params_are_checked_against_their_declaration_and_the_document() {
    let app = spawn_desk().await;
    let user = app.token("uma", &["user"], "acme");
    let ticket = app
        .create("desk/ticket", &user, &json!({"title": "Printer"}))
        .await;
    let path = format!(
        "/v1/desk/ticket/{}/annotate",
        ticket["id"].as_str().unwrap_or_default()
    );

    let missing = app
        .post(&path, &user, &json!({"priority": 0, "colour": "red"}))
        .await;
    assert_eq!(missing.status(), 422);
    let problem = json(missing).await;
    let pointers: Vec<Value> = problem["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["pointer"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        pointers,
        [json!("/colour"), json!("/priority"), json!("/note")],
        "every mistake at once, the body's in key order, then what is missing: {problem}"
    );
    let too_urgent = app
        .post(&path, &user, &json!({"note": "soon", "priority": 7}))
        .await;
    assert_eq!(
        too_urgent.status(),
        422,
        "a valid param must still make a valid document"
    );
    assert_eq!(json(too_urgent).await["errors"][0]["pointer"], "/priority");

    let annotated = app
        .post(&path, &user, &json!({"note": "soon", "priority": 2}))
        .await;
    assert_eq!(annotated.status(), 200);
    let ticket = json(annotated).await;
    assert_eq!(
        (ticket["note"].clone(), ticket["priority"].clone()),
        (json!("soon"), json!(2))
    );
    let async_run = send(
        app.request(Method::POST, &path, Some(&user))
            .header("prefer", "respond-async")
            .json(&json!({"note": "later"})),
    )
    .await;
    assert_eq!(async_run.status(), 202);
    let status_path = header(&async_run, "location");
    let status = eventually("the command to be handled", || async {
        let status = json(app.get(&status_path, &user).await).await;
        (status["status"] == "succeeded").then_some(status)
    })
    .await;
    assert_eq!(status["result"]["note"], "later");
    assert_eq!(
        status["result"]["priority"], 2,
        "a param left out leaves its field as it is: {status}"
    );
    let ticket_path = path.trim_end_matches("/annotate").to_owned();
    let by_patch = app
        .patch(&ticket_path, &user, &json!({"state": "closed"}))
        .await;
    assert_eq!(by_patch.status(), 422, "`state` is read-only to writes");
    let closed = app
        .post(&format!("{ticket_path}/close"), &user, &json!({}))
        .await;
    assert_eq!(
        closed.status(),
        200,
        "a command's right is the right to set its fields"
    );
    assert_eq!(json(closed).await["state"], "closed");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_rust_command_decides_in_code_and_its_event_folds_by_what_it_set() {
    let app = spawn_desk().await;
    let user = app.token("uma", &["user"], "acme");
    let ticket = app
        .create(
            "desk/ticket",
            &user,
            &json!({"title": "Printer", "priority": 3}),
        )
        .await;
    let path = format!(
        "/v1/desk/ticket/{}",
        ticket["id"].as_str().unwrap_or_default()
    );

    let missing = app
        .post(&format!("{path}/escalate"), &user, &json!({}))
        .await;
    assert_eq!(
        missing.status(),
        422,
        "the YAML's params are checked before the code runs"
    );
    let escalated = app
        .post(
            &format!("{path}/escalate"),
            &user,
            &json!({"reason": "jammed"}),
        )
        .await;
    assert_eq!(escalated.status(), 200);
    let position = header(&escalated, "herald-position");
    assert_eq!(json(escalated).await["priority"], 4);
    let read = json(
        app.get(&format!("{path}?min_position={position}"), &user)
            .await,
    )
    .await;
    assert_eq!(
        read["priority"], 4,
        "the view folds the event by the fields it set"
    );

    let page = json(
        app.get("/v1/desk/ticket/events?types=desk.ticket.escalated", &user)
            .await,
    )
    .await;
    assert_eq!(
        page["data"][0]["data"],
        json!({"reason": "jammed", "from": 3}),
        "the event's data is the code's own"
    );
    let history = json(app.get(&format!("{path}/history"), &user).await).await;
    assert_eq!(
        history["data"][1]["changes"]["priority"],
        json!({"before": 3, "after": 4})
    );

    let to_five = app
        .post(
            &format!("{path}/escalate"),
            &user,
            &json!({"reason": "on fire"}),
        )
        .await;
    assert_eq!(to_five.status(), 200);
    let refused = app
        .post(
            &format!("{path}/escalate"),
            &user,
            &json!({"reason": "still"}),
        )
        .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(json(refused).await["code"], "already_urgent");
    let broken = app
        .post(&format!("{path}/explode"), &user, &json!({}))
        .await;
    assert_eq!(
        broken.status(),
        500,
        "a panic in the code is the app's fault, opaque"
    );
    assert_eq!(json(broken).await["code"], "internal");
    let history = json(app.get(&format!("{path}/history"), &user).await).await;
    assert_eq!(
        history["data"].as_array().map(Vec::len),
        Some(3),
        "created and escalated twice; the refusal and the panic appended nothing"
    );
    assert!(view_matches_the_log(&app, "desk.ticket").await);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn the_example_restocks_in_rust_and_refuses_a_retired_product() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let user = app.token("uma", &["user"], "acme");
    let id = draft(&app, &staff).await;
    let path = format!("/v1/petstore/product/{id}");

    for quantity in [json!(0), json!(10_001), json!("5")] {
        let refused = app
            .post(
                &format!("{path}/restock"),
                &staff,
                &json!({"quantity": quantity}),
            )
            .await;
        assert_eq!(refused.status(), 422, "quantity {quantity}");
    }
    let by_user = app
        .post(&format!("{path}/restock"), &user, &json!({"quantity": 5}))
        .await;
    assert_eq!(by_user.status(), 403);
    let restocked = app
        .post(&format!("{path}/restock"), &staff, &json!({"quantity": 5}))
        .await;
    assert_eq!(restocked.status(), 200);
    assert_eq!(json(restocked).await["stock"], 5);
    let again = app
        .post(&format!("{path}/restock"), &staff, &json!({"quantity": 7}))
        .await;
    let position = header(&again, "herald-position");
    assert_eq!(json(again).await["stock"], 12);
    let read = json(
        app.get(&format!("{path}?min_position={position}"), &staff)
            .await,
    )
    .await;
    assert_eq!(read["stock"], 12, "the view adds up the restocks");
    let page = json(
        app.get(
            "/v1/petstore/product/events?types=petstore.product.restocked",
            &staff,
        )
        .await,
    )
    .await;
    let data: Vec<Value> = page["data"]
        .as_array()
        .map(|events| events.iter().map(|e| e["data"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(data, [json!({"quantity": 5}), json!({"quantity": 7})]);

    let retired = app
        .patch(&path, &staff, &json!({"status": "retired"}))
        .await;
    assert_eq!(retired.status(), 200);
    let refused = app
        .post(&format!("{path}/restock"), &staff, &json!({"quantity": 1}))
        .await;
    assert_eq!(refused.status(), 409);
    let problem = json(refused).await;
    assert_eq!(problem["code"], "product_retired");
    assert!(view_matches_the_log(&app, "petstore.product").await);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_command_on_the_collection_creates_a_document_like_a_create() {
    let app = spawn_desk().await;
    let user = app.token("uma", &["user"], "acme");

    let filed = app
        .post(
            "/v1/desk/ticket/file",
            &user,
            &json!({"title": " Printer ", "body": "urgent: on fire"}),
        )
        .await;
    assert_eq!(filed.status(), 201);
    let location = header(&filed, "location");
    let position = header(&filed, "herald-position");
    assert_eq!(
        header(&filed, "etag"),
        "\"2\"",
        "filed and escalated: version 2"
    );
    let ticket = json(filed).await;
    assert_eq!(
        (
            ticket["title"].clone(),
            ticket["priority"].clone(),
            ticket["state"].clone()
        ),
        (json!("Printer"), json!(2), json!("open")),
        "the first event creates the document, defaults filled in: {ticket}"
    );
    assert_eq!(
        location,
        format!(
            "/v1/desk/ticket/{}",
            ticket["id"].as_str().unwrap_or_default()
        )
    );
    let history = json(app.get(&format!("{location}/history"), &user).await).await;
    let types: Vec<Value> = history["data"]
        .as_array()
        .map(|events| events.iter().map(|e| e["type"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        [json!("desk.ticket.filed"), json!("desk.ticket.escalated")]
    );

    let blank = app
        .post("/v1/desk/ticket/file", &user, &json!({"title": " "}))
        .await;
    assert_eq!(blank.status(), 409);
    assert_eq!(json(blank).await["code"], "blank_title");
    let invalid = app
        .post("/v1/desk/ticket/file", &user, &json!({"body": 3}))
        .await;
    assert_eq!(invalid.status(), 422);
    assert_eq!(
        json(invalid).await["errors"].as_array().map(Vec::len),
        Some(2)
    );
    let anonymous = send(app.request(Method::POST, "/v1/desk/ticket/file", None)).await;
    assert_eq!(anonymous.status(), 401);
    let on_a_document = app
        .post(&format!("{location}/file"), &user, &json!({"title": "x"}))
        .await;
    assert_eq!(
        on_a_document.status(),
        404,
        "a command on the collection has no id"
    );
    let by_id_route = app
        .post("/v1/desk/ticket/escalate", &user, &json!({}))
        .await;
    assert_eq!(
        by_id_route.status(),
        404,
        "a command on a document needs its id"
    );
    let read = app.get("/v1/desk/ticket/file", &user).await;
    assert_eq!(read.status(), 405, "the command's path only takes POST");
    assert_eq!(header(&read, "allow"), "POST");
    let patched = app.patch("/v1/desk/ticket/file", &user, &json!({})).await;
    assert_eq!(patched.status(), 405);
    let on_a_document_path = app.post(&location, &user, &json!({})).await;
    assert_eq!(
        on_a_document_path.status(),
        405,
        "a document's path takes no POST"
    );
    assert_eq!(header(&on_a_document_path, "allow"), "GET, PATCH, DELETE");
    let unknown = app.post("/v1/desk/ticket/launch", &user, &json!({})).await;
    assert_eq!(unknown.status(), 404);
    // Read once the view holds the filed ticket: lists are eventually consistent.
    let listed = format!("/v1/desk/ticket?limit=10&min_position={position}");
    let page = json(app.get(&listed, &user).await).await;
    assert_eq!(
        page["data"].as_array().map(Vec::len),
        Some(1),
        "the refusals created nothing"
    );
    assert!(view_matches_the_log(&app, "desk.ticket").await);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn the_example_onboards_a_supplier_pending_review() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let user = app.token("uma", &["user"], "acme");
    let form = json!({"name": "Acme Kites", "email": "sales@acme.test", "country": "NL"});

    let by_user = app
        .post("/v1/petstore/supplier/onboard", &user, &form)
        .await;
    assert_eq!(by_user.status(), 403);
    let onboarded = app
        .post("/v1/petstore/supplier/onboard", &staff, &form)
        .await;
    assert_eq!(onboarded.status(), 201);
    let supplier = json(onboarded).await;
    assert_eq!(
        (supplier["name"].clone(), supplier["review"].clone()),
        (json!("Acme Kites"), json!("pending"))
    );
    let twice = app
        .post("/v1/petstore/supplier/onboard", &staff, &form)
        .await;
    assert_eq!(twice.status(), 409, "`name` is unique");
    let page = json(
        app.get(
            "/v1/petstore/supplier/events?types=petstore.supplier.onboarded",
            &staff,
        )
        .await,
    )
    .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    app.stop_and_clean().await;
}
