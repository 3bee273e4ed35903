//! A document's history and its state as of a version or time, with the `history` right and
//! hidden fields hidden in the past too.

use herald_tests::{Options, TestApp, header, json, send, write_apps};
use reqwest::Method;
use serde_json::{Value, json};

const NOTE: &str = "fields:
  title: {type: string, required: true}
  body: {type: string}
  secret: {type: string, acl: {read: admin, write: user}}
acl: {create: user, read: [staff, owner], update: [staff, owner], delete: [staff, owner], history: [staff, owner]}
";
const MEMO: &str = "fields:
  title: {type: string, required: true}
acl: {create: user, read: user, update: user}
";

async fn spawn() -> TestApp {
    let apps = write_apps(&[("desk", "note", NOTE), ("desk", "memo", MEMO)])
        .unwrap_or_else(|e| panic!("{e}"));
    TestApp::spawn_with(Options {
        apps,
        ..herald_tests::petstore()
    })
    .await
}

#[tokio::test]
async fn history_lists_every_event_with_its_actor_command_and_changes_oldest_first() {
    let app = spawn().await;
    let uma = app.token("uma", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");
    let created = app
        .create(
            "desk/note",
            &uma,
            &json!({"title": "draft", "secret": "s1"}),
        )
        .await;
    let path = format!(
        "/v1/desk/note/{}",
        created["id"].as_str().unwrap_or_default()
    );
    let patched = send(
        app.request(Method::PATCH, &path, Some(&staff))
            .header("idempotency-key", "edit-1")
            .json(&json!({"title": "final", "body": "text", "secret": "s2"})),
    )
    .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(app.delete(&path, &staff).await.status(), 204);

    let history = json(app.get(&format!("{path}/history"), &uma).await).await;
    let entries = history["data"].as_array().cloned().unwrap_or_default();
    let versions: Vec<i64> = entries
        .iter()
        .filter_map(|e| e["version"].as_i64())
        .collect();
    assert_eq!(
        versions,
        vec![1, 2, 3],
        "every event, oldest first, archived included"
    );
    assert_eq!(entries[0]["type"], "desk.note.created");
    assert_eq!(entries[0]["actor"]["sub"], "uma");
    assert_eq!(
        entries[0]["changes"],
        json!({"title": {"before": null, "after": "draft"}}),
        "the admin-only field is hidden from the owner, in the past too"
    );
    assert_eq!(
        entries[1]["actor"],
        json!({"sub": "sam", "roles": ["staff"]})
    );
    assert_eq!(entries[1]["idempotency_key"], "edit-1");
    assert!(entries[1]["command_id"].is_string());
    assert_eq!(
        entries[1]["changes"],
        json!({"title": {"before": "draft", "after": "final"}, "body": {"before": null, "after": "text"}})
    );
    assert_eq!(entries[2]["type"], "desk.note.archived");
    assert_eq!(entries[2]["changes"], json!({}));
    assert_eq!(history["has_more"], false);

    let as_admin = json(app.get(&format!("{path}/history"), &admin).await).await;
    assert_eq!(
        as_admin["data"][1]["changes"]["secret"],
        json!({"before": "s1", "after": "s2"}),
        "an admin sees the hidden field's changes"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn history_pages_with_a_signed_cursor_and_is_guarded_by_its_right() {
    let app = spawn().await;
    let uma = app.token("uma", &[], "acme");
    let ulf = app.token("ulf", &[], "acme");
    let created = app.create("desk/note", &uma, &json!({"title": "v1"})).await;
    let path = format!(
        "/v1/desk/note/{}",
        created["id"].as_str().unwrap_or_default()
    );
    for i in 2..=5 {
        let r = app
            .patch(&path, &uma, &json!({"title": format!("v{i}")}))
            .await;
        assert_eq!(r.status(), 200);
    }
    let mut versions = Vec::new();
    let mut next = format!("{path}/history?limit=2");
    loop {
        let response = app.get(&next, &uma).await;
        let link = header(&response, "link");
        let page = json(response).await;
        versions.extend(
            page["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["version"].as_i64()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(link.contains("rel=\"next\""), "{link}");
                next = format!("{path}/history?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    for bad in ["nope", "AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA"] {
        let response = app.get(&format!("{path}/history?cursor={bad}"), &uma).await;
        assert_eq!(response.status(), 400);
        assert_eq!(json(response).await["errors"][0]["parameter"], "cursor");
    }
    assert_eq!(
        app.get(&format!("{path}/history?limit=0"), &uma)
            .await
            .status(),
        400
    );
    // Another user may not read the note at all; another tenant does not see it.
    assert_eq!(
        app.get(&format!("{path}/history"), &ulf).await.status(),
        404
    );
    let stranger = app.token("uma", &["staff"], "globex");
    assert_eq!(
        app.get(&format!("{path}/history"), &stranger)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(app.request(Method::GET, &format!("{path}/history"), None))
            .await
            .status(),
        401
    );
    // Memos may be read by every user, but their history only by admins.
    let memo = app.create("desk/memo", &uma, &json!({"title": "m"})).await;
    let memo_path = format!("/v1/desk/memo/{}", memo["id"].as_str().unwrap_or_default());
    assert_eq!(
        app.get(&format!("{memo_path}/history"), &ulf)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get(&format!("{memo_path}?as_of=1"), &ulf)
            .await
            .status(),
        403
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn as_of_returns_the_document_as_it_was_at_a_version_or_a_time() {
    let app = spawn().await;
    let uma = app.token("uma", &[], "acme");
    let created = app
        .create("desk/note", &uma, &json!({"title": "one", "body": "b"}))
        .await;
    let path = format!(
        "/v1/desk/note/{}",
        created["id"].as_str().unwrap_or_default()
    );
    let mut seen: Vec<Value> = vec![created];
    for (i, patch) in [
        json!({"title": "two"}),
        json!({"body": null}),
        json!({"title": "four"}),
    ]
    .iter()
    .enumerate()
    {
        let response = app.patch(&path, &uma, patch).await;
        assert_eq!(response.status(), 200, "patch {i}");
        seen.push(json(response).await);
    }
    for (index, expected) in seen.iter().enumerate() {
        let version = index + 1;
        let response = app.get(&format!("{path}?as_of={version}"), &uma).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "etag"), format!("\"{version}\""));
        assert_eq!(
            &json(response).await,
            expected,
            "the state at version {version}"
        );
    }
    let at_two = seen[1]["updated_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let by_time = json(app.get(&format!("{path}?as_of={at_two}"), &uma).await).await;
    assert_eq!(by_time, seen[1], "the state at version 2's time");
    let before = app
        .get(&format!("{path}?as_of=2000-01-01T00:00:00Z"), &uma)
        .await;
    assert_eq!(before.status(), 404, "it did not exist yet");
    for bad in ["0", "yesterday", "-3"] {
        let response = app.get(&format!("{path}?as_of={bad}"), &uma).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json(response).await["errors"][0]["parameter"], "as_of");
    }
    app.stop_and_clean().await;
}
