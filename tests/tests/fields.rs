//! Document fields end to end through HTTP: every field type, every validation code with its
//! JSON pointer, defaults, JSON Merge Patch semantics and versions, `unique`, `nullable`, and
//! the start-up refusal of invalid YAML declarations.
//!
//! The schema module has unit tests of its own; these go through the api (stateless checks),
//! the command handler (immutable, merged-document validation, references, unique values) and
//! the projected view (read back with `?min_position=`).

use std::collections::BTreeSet;
use std::path::Path;

use herald_bus::schema::Registry;
use herald_bus::settings::Settings;
use herald_cli::server::{Herald, Role};
use herald_tests::{Options, TestApp, header, json, send, write_apps};
use reqwest::{Method, Response};
use serde_json::{Value, json};

/// Every action open to any signed-in caller, so these tests are about fields, not access.
const ACL: &str = "acl: {create: user, read: user, update: user, delete: user}\n";

/// A target collection for `ref` fields: `lab.target`.
const TARGET: &str = "fields:\n  name: {type: string}\n";

/// Starts Herald on the given `(app, doc, yaml)` sources, each with [`ACL`] appended.
async fn spawn(sources: &[(&str, &str, &str)]) -> TestApp {
    let with_acl: Vec<(String, String, String)> = sources
        .iter()
        .map(|(app, doc, yaml)| ((*app).to_owned(), (*doc).to_owned(), format!("{yaml}{ACL}")))
        .collect();
    let borrowed: Vec<(&str, &str, &str)> = with_acl
        .iter()
        .map(|(a, d, y)| (a.as_str(), d.as_str(), y.as_str()))
        .collect();
    let apps = write_apps(&borrowed).expect("write the apps folder");
    TestApp::spawn_with(Options {
        apps,
        ..herald_tests::petstore()
    })
    .await
}

fn id_of(document: &Value) -> String {
    document["id"].as_str().unwrap_or_default().to_owned()
}

/// The declared fields of a document: everything but the server-managed attributes.
fn fields(document: &Value) -> Value {
    let mut map = document.as_object().cloned().unwrap_or_default();
    for managed in herald_bus::schema::MANAGED_FIELDS {
        map.remove(managed);
    }
    Value::Object(map)
}

/// `(pointer, code)` pairs, for comparing error sets whatever their order.
fn pairs(expected: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect()
}

/// Asserts a `422 validation_failed` problem and returns its `(pointer, code)` pairs.
async fn validation_errors(response: Response, what: &str) -> BTreeSet<(String, String)> {
    let status = response.status();
    let content_type = header(&response, "content-type");
    let body = json(response).await;
    assert_eq!(status, 422, "{what}: expected 422, got {status}: {body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type}"
    );
    assert_eq!(body["code"], "validation_failed", "{what}: {body}");
    assert_eq!(body["status"], 422, "{what}: {body}");
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        !errors.is_empty(),
        "{what}: a validation problem lists its errors: {body}"
    );
    let found: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            assert!(
                e["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{what}: every error has a detail: {e}"
            );
            (
                e["pointer"].as_str().unwrap_or("<none>").to_owned(),
                e["code"].as_str().unwrap_or("<none>").to_owned(),
            )
        })
        .collect();
    let set: BTreeSet<(String, String)> = found.iter().cloned().collect();
    assert_eq!(
        set.len(),
        found.len(),
        "{what}: no error is reported twice: {found:?}"
    );
    set
}

/// Asserts a problem with `status` and `code`.
async fn problem(response: Response, status: u16, code: &str, what: &str) {
    let got = response.status();
    let body = json(response).await;
    assert_eq!(got, status, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
}

/// Reads a document once the view has caught up with `position` (a write's `Herald-Position`).
async fn read_at(app: &TestApp, path: &str, token: &str, position: &str) -> Response {
    assert!(!position.is_empty(), "the write carried a Herald-Position");
    app.get(&format!("{path}?min_position={position}"), token)
        .await
}

/// Sends a write and returns its status, ETag, Herald-Position and body.
async fn write(builder: reqwest::RequestBuilder) -> (u16, String, String, Value) {
    let response = send(builder).await;
    let status = response.status().as_u16();
    let (etag, position) = (
        header(&response, "etag"),
        header(&response, "herald-position"),
    );
    (status, etag, position, json(response).await)
}

const ITEM: &str = r"fields:
  s:  {type: string, filter: true}
  i:  {type: integer, filter: true}
  n:  {type: number, filter: true}
  b:  {type: boolean, filter: true}
  dt: {type: datetime, filter: true}
  d:  {type: date, filter: true}
  u:  {type: uuid, filter: true}
  e:  {type: email, filter: true}
  w:  {type: url, filter: true}
  o:
    type: object
    fields:
      x: {type: integer}
      inner:
        type: object
        fields:
          label: {type: string}
  a:  {type: array, items: {type: integer}, filter: true}
  r:  {type: ref, to: lab.target, filter: true}
";

#[tokio::test]
async fn every_field_type_round_trips_and_every_wrong_value_is_reported_at_once() {
    let app = spawn(&[("lab", "target", TARGET), ("lab", "item", ITEM)]).await;
    let user = app.token("u1", &[], "acme");
    let target = app.create("lab/target", &user, &json!({"name": "t"})).await;

    let valid = json!({
        "s": "héllo wörld",
        "i": 9_007_199_254_740_993_i64,
        "n": 1.5,
        "b": false,
        "dt": "2024-05-01T12:00:00+02:00",
        "d": "2024-02-29",
        "u": "0190f5a4-7b1c-7c3e-9a55-3f1e2d4c5b6a",
        "e": "ada@example.com",
        "w": "https://example.com/a?b=c",
        "o": {"x": 1, "inner": {"label": "deep"}},
        "a": [3, 1, 2],
        "r": id_of(&target),
    });
    let (status, etag, position, created) = write(
        app.request(Method::POST, "/v1/lab/item", Some(&user))
            .json(&valid),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(etag, "\"1\"");
    assert_eq!(
        fields(&created),
        valid,
        "the create response holds the values as sent"
    );
    assert_eq!(created["version"], 1);
    let path = format!("/v1/lab/item/{}", id_of(&created));
    let read = read_at(&app, &path, &user, &position).await;
    assert_eq!(read.status(), 200);
    let read = json(read).await;
    assert_eq!(
        fields(&read),
        valid,
        "the view serves the values as sent (i64 beyond 2^53 included)"
    );
    assert_eq!(
        read, created,
        "and the same document as the create response"
    );

    // One wrong JSON type for every kind, in one body: every error comes back at once.
    let wrong_types = json!({
        "s": 12, "i": 2.5, "n": "1", "b": "true", "dt": 5, "d": true, "u": 1,
        "e": false, "w": [], "o": [1], "a": {"0": 1}, "r": 7,
    });
    let errors = validation_errors(
        app.post("/v1/lab/item", &user, &wrong_types).await,
        "wrong types",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[
            ("/s", "type"),
            ("/i", "type"),
            ("/n", "type"),
            ("/b", "type"),
            ("/dt", "type"),
            ("/d", "type"),
            ("/u", "type"),
            ("/e", "type"),
            ("/w", "type"),
            ("/o", "type"),
            ("/a", "type"),
            ("/r", "type"),
        ])
    );

    // The right JSON type in the wrong format, and wrong types deep inside objects and arrays.
    let wrong_formats = json!({
        "dt": "2024-05-01",
        "d": "2024-02-30",
        "u": "not-a-uuid",
        "e": "not-an-email",
        "w": "ftp://example.com/file",
        "r": "123",
        "o": {"x": "1", "inner": {"label": 5}},
        "a": [1, "two", 3.5],
    });
    let errors = validation_errors(
        app.post("/v1/lab/item", &user, &wrong_formats).await,
        "wrong formats",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[
            ("/dt", "format"),
            ("/d", "format"),
            ("/u", "format"),
            ("/e", "format"),
            ("/w", "format"),
            ("/r", "format"),
            ("/o/x", "type"),
            ("/o/inner/label", "type"),
            ("/a/1", "type"),
            ("/a/2", "type"),
        ])
    );

    // The same checks apply to a PATCH, and a refused PATCH changes nothing.
    let errors = validation_errors(
        app.patch(
            &path,
            &user,
            &json!({"b": 0, "d": "2024-13-01", "o": {"inner": {"label": []}}}),
        )
        .await,
        "patch",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[("/b", "type"), ("/d", "format"), ("/o/inner/label", "type")])
    );
    let read = json(app.get(&path, &user).await).await;
    assert_eq!(read["version"], 1);
    app.stop_and_clean().await;
}

const GADGET: &str = r#"fields:
  name:     {type: string, required: true, min: 2, max: 4}
  code:     {type: string, pattern: "^[A-Z]{3}$"}
  qty:      {type: integer, min: 1, max: 10}
  ratio:    {type: number, min: -1.5, max: 1.5}
  status:   {type: string, enum: [draft, live]}
  level:    {type: integer, enum: [1, 2, 3]}
  tags:     {type: array, items: {type: string, max: 3}, min_items: 1, max_items: 3}
  serial:   {type: string, immutable: true}
  computed: {type: string, read_only: true}
  dims:
    type: object
    fields:
      width:  {type: number, min: 0}
      height: {type: number, min: 0}
  target:   {type: ref, to: lab.target}
  targets:  {type: array, items: {type: ref, to: lab.target}}
"#;

#[tokio::test]
async fn every_constraint_reports_its_code_at_its_pointer() {
    let app = spawn(&[("lab", "target", TARGET), ("lab", "gadget", GADGET)]).await;
    let user = app.token("u1", &[], "acme");

    // Bounds are inclusive, and string lengths count characters: "ééé" is 6 bytes, "äöü" too.
    let edge = json!({
        "name": "ééé", "code": "ABC", "qty": 10, "ratio": -1.5, "status": "live", "level": 3,
        "tags": ["äöü", "ab", "c"], "serial": "S1", "dims": {"width": 0, "height": 2.5},
    });
    let gadget = app.create("lab/gadget", &user, &edge).await;
    assert_eq!(fields(&gadget), edge);
    let path = format!("/v1/lab/gadget/{}", id_of(&gadget));
    let low = json!({"name": "éé", "qty": 1, "ratio": 1.5, "tags": ["ü"]});
    assert_eq!(fields(&app.create("lab/gadget", &user, &low).await), low);

    // Every stateless constraint at once, at top level, nested and in array items.
    let body = json!({
        "name": "ééééé",
        "code": "abc",
        "qty": 0,
        "ratio": 2,
        "status": "gone",
        "level": 4,
        "tags": ["a", "b", "four"],
        "computed": "x",
        "extra": 1,
        "dims": {"width": -1, "depth": 3},
    });
    let errors = validation_errors(app.post("/v1/lab/gadget", &user, &body).await, "many").await;
    assert_eq!(
        errors,
        pairs(&[
            ("/name", "max_length"),
            ("/code", "pattern"),
            ("/qty", "minimum"),
            ("/ratio", "maximum"),
            ("/status", "enum"),
            ("/level", "enum"),
            ("/tags/2", "max_length"),
            ("/computed", "read_only"),
            ("/extra", "unknown_field"),
            ("/dims/width", "minimum"),
            ("/dims/depth", "unknown_field"),
        ])
    );
    let body = json!({"name": "é", "qty": 11, "ratio": -2, "tags": [], "dims": {"height": -0.5}});
    let errors = validation_errors(app.post("/v1/lab/gadget", &user, &body).await, "bounds").await;
    assert_eq!(
        errors,
        pairs(&[
            ("/name", "min_length"),
            ("/qty", "maximum"),
            ("/ratio", "minimum"),
            ("/tags", "min_items"),
            ("/dims/height", "minimum"),
        ])
    );
    let body = json!({"tags": ["a", "b", "c", "d"], "id": "0190f5a4-7b1c-7c3e-9a55-3f1e2d4c5b6a", "version": 3});
    let errors =
        validation_errors(app.post("/v1/lab/gadget", &user, &body).await, "required").await;
    assert_eq!(
        errors,
        pairs(&[
            ("/name", "required"),
            ("/tags", "max_items"),
            ("/id", "read_only"),
            ("/version", "read_only")
        ])
    );

    // A PATCH gets the same checks, except `required` for what it leaves out.
    let body = json!({"computed": "x", "extra": 1, "dims": {"depth": 1}, "qty": 0, "tags": ["ok", "long"], "created_by": "me"});
    let errors = validation_errors(app.patch(&path, &user, &body).await, "patch").await;
    assert_eq!(
        errors,
        pairs(&[
            ("/computed", "read_only"),
            ("/extra", "unknown_field"),
            ("/dims/depth", "unknown_field"),
            ("/qty", "minimum"),
            ("/tags/1", "max_length"),
            ("/created_by", "read_only"),
        ])
    );

    // `immutable`: set on create only; sending the same value again is no change.
    let errors = validation_errors(
        app.patch(&path, &user, &json!({"serial": "S2"})).await,
        "immutable",
    )
    .await;
    assert_eq!(errors, pairs(&[("/serial", "immutable")]));
    let errors = validation_errors(
        app.patch(&path, &user, &json!({"serial": null})).await,
        "clear immutable",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[("/serial", "immutable")]),
        "clearing is changing"
    );
    let (status, etag, _, same) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"serial": "S1", "name": "ééé"})),
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(etag, "\"1\"", "the same value is no change");
    assert_eq!(same["serial"], "S1");
    let (status, etag, _, changed) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"serial": "S1", "qty": 2})),
    )
    .await;
    assert_eq!((status, etag.as_str()), (200, "\"2\""), "{changed}");
    let unset = app
        .create("lab/gadget", &user, &json!({"name": "no"}))
        .await;
    let unset_path = format!("/v1/lab/gadget/{}", id_of(&unset));
    let errors = validation_errors(
        app.patch(&unset_path, &user, &json!({"serial": "S9"}))
            .await,
        "set later",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[("/serial", "immutable")]),
        "an immutable field left out on create stays unset"
    );

    // `ref`: the id must name a live document of the target collection.
    let missing = uuid::Uuid::now_v7().to_string();
    let errors = validation_errors(
        app.post(
            "/v1/lab/gadget",
            &user,
            &json!({"name": "ab", "target": missing}),
        )
        .await,
        "ref",
    )
    .await;
    assert_eq!(errors, pairs(&[("/target", "ref_not_found")]));
    let live = id_of(
        &app.create("lab/target", &user, &json!({"name": "live"}))
            .await,
    );
    let doomed = id_of(
        &app.create("lab/target", &user, &json!({"name": "doomed"}))
            .await,
    );
    assert_eq!(
        app.delete(&format!("/v1/lab/target/{doomed}"), &user)
            .await
            .status(),
        204
    );
    let errors = validation_errors(
        app.post(
            "/v1/lab/gadget",
            &user,
            &json!({"name": "ab", "target": doomed}),
        )
        .await,
        "archived ref",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[("/target", "ref_not_found")]),
        "an archived document cannot be referenced"
    );
    let body = json!({"name": "ab", "targets": [live, live, missing, doomed]});
    let errors = validation_errors(
        app.post("/v1/lab/gadget", &user, &body).await,
        "refs in an array",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[
            ("/targets/2", "ref_not_found"),
            ("/targets/3", "ref_not_found")
        ])
    );
    let errors = validation_errors(
        app.patch(&path, &user, &json!({"target": doomed})).await,
        "patch ref",
    )
    .await;
    assert_eq!(errors, pairs(&[("/target", "ref_not_found")]));
    let other_tenant = app.token("u2", &[], "other");
    let errors = validation_errors(
        app.post(
            "/v1/lab/gadget",
            &other_tenant,
            &json!({"name": "ab", "target": live}),
        )
        .await,
        "foreign ref",
    )
    .await;
    assert_eq!(
        errors,
        pairs(&[("/target", "ref_not_found")]),
        "another tenant's document is not found"
    );
    let linked = app
        .create(
            "lab/gadget",
            &user,
            &json!({"name": "ab", "target": live, "targets": [live]}),
        )
        .await;
    assert_eq!(linked["target"], live.as_str());
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"target": live})),
    )
    .await;
    assert_eq!(
        (status, body["target"].as_str()),
        (200, Some(live.as_str())),
        "{body}"
    );
    app.stop_and_clean().await;
}

const DEED: &str = r"fields:
  title: {type: string}
  spec:
    type: object
    immutable: true
    fields:
      a: {type: integer}
      b: {type: integer}
  meta:
    type: object
    fields:
      serial: {type: string, immutable: true}
      note:   {type: string}
";

/// `immutable` on an object field and on a field nested in an object (both accepted by the
/// loader) must hold like it does at top level.
#[tokio::test]
async fn immutable_holds_for_object_fields_and_nested_fields() {
    let app = spawn(&[("lab", "deed", DEED)]).await;
    let user = app.token("u1", &[], "acme");
    let deed = app
        .create(
            "lab/deed",
            &user,
            &json!({"title": "x", "spec": {"a": 1, "b": 2}, "meta": {"serial": "S1", "note": "n"}}),
        )
        .await;
    let path = format!("/v1/lab/deed/{}", id_of(&deed));
    let mut failures = Vec::new();

    let errors = validation_errors(
        app.patch(&path, &user, &json!({"spec": {"a": 9}})).await,
        "object changed",
    )
    .await;
    assert_eq!(errors, pairs(&[("/spec", "immutable")]));
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"meta": {"note": "m"}})),
    )
    .await;
    assert_eq!(
        (status, body["meta"].clone()),
        (200, json!({"serial": "S1", "note": "m"})),
        "{body}"
    );

    // A merge patch that leaves the immutable object as it is changes nothing: 200.
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"spec": {"a": 1}})),
    )
    .await;
    if status != 200 || body["spec"] != json!({"a": 1, "b": 2}) {
        failures.push(format!(
            "PATCH {{spec: {{a: 1}}}} (same value, merged) → {status} {body}; expected 200"
        ));
    }
    // A nested immutable field cannot change.
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .json(&json!({"meta": {"serial": "S2"}})),
    )
    .await;
    let codes: Vec<(Value, Value)> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["pointer"].clone(), e["code"].clone()))
        .collect();
    if status != 422 || codes != [(json!("/meta/serial"), json!("immutable"))] {
        failures.push(format!("PATCH {{meta: {{serial: S2}}}} → {status} {body}; expected 422 immutable at /meta/serial"));
    }
    app.stop_and_clean().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

const ORDER: &str = r"fields:
  title:  {type: string, required: true}
  stock:  {type: integer, default: 0}
  status: {type: string, enum: [draft, live], default: draft}
  flags:  {type: array, items: {type: string}, default: [new]}
  box:
    type: object
    default: {}
    fields:
      unit:  {type: string, default: cm}
      width: {type: number}
  opts:
    type: object
    fields:
      color: {type: string, default: red}
      size:  {type: integer}
      deep:
        type: object
        fields:
          level: {type: integer, default: 1}
";

#[tokio::test]
async fn defaults_are_applied_on_create_at_every_level() {
    let app = spawn(&[("lab", "order", ORDER)]).await;
    let user = app.token("u1", &[], "acme");

    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/order", Some(&user))
            .json(&json!({"title": "a", "opts": {"size": 2, "deep": {}}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let expected = json!({
        "title": "a",
        "stock": 0,
        "status": "draft",
        "flags": ["new"],
        "box": {"unit": "cm"},
        "opts": {"size": 2, "color": "red", "deep": {"level": 1}},
    });
    assert_eq!(
        fields(&created),
        expected,
        "defaults fill missing fields, nested ones too"
    );
    let read = read_at(
        &app,
        &format!("/v1/lab/order/{}", id_of(&created)),
        &user,
        &position,
    )
    .await;
    assert_eq!(read.status(), 200);
    assert_eq!(
        fields(&json(read).await),
        expected,
        "and are stored, not only shown"
    );

    // Values sent win over defaults; an object without a default stays absent.
    let given = json!({"title": "b", "stock": 5, "status": "live", "flags": [], "box": {"unit": "m", "width": 2}});
    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/order", Some(&user))
            .json(&given),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(fields(&created), given);
    let read = read_at(
        &app,
        &format!("/v1/lab/order/{}", id_of(&created)),
        &user,
        &position,
    )
    .await;
    assert_eq!(fields(&json(read).await), given);

    // A default does not excuse a wrong value.
    let errors = validation_errors(
        app.post(
            "/v1/lab/order",
            &user,
            &json!({"title": "c", "status": "gone", "box": {"unit": 1}}),
        )
        .await,
        "bad",
    )
    .await;
    assert_eq!(errors, pairs(&[("/status", "enum"), ("/box/unit", "type")]));
    app.stop_and_clean().await;
}

const NOTE: &str = r"fields:
  title: {type: string, required: true}
  note:  {type: string}
  count: {type: integer}
  tags:  {type: array, items: {type: string}}
  dims:
    type: object
    fields:
      width:  {type: number}
      height: {type: number}
      unit:   {type: string, required: true}
";

#[tokio::test]
async fn patch_is_a_json_merge_patch_and_versions_count_events() {
    let app = spawn(&[("lab", "note", NOTE)]).await;
    let user = app.token("u1", &[], "acme");
    let patch = |path: &str, body: &Value| app.request(Method::PATCH, path, Some(&user)).json(body);

    let body = json!({"title": "t", "note": "n", "count": 1, "tags": ["a", "b"], "dims": {"width": 1, "height": 2, "unit": "cm"}});
    let (status, etag, _, created) = write(
        app.request(Method::POST, "/v1/lab/note", Some(&user))
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, etag.as_str(), created["version"].clone()),
        (201, "\"1\"", json!(1)),
        "{created}"
    );
    let path = format!("/v1/lab/note/{}", id_of(&created));

    // `null` clears an optional field: absent afterwards, in the response and in the view.
    let (status, etag, position, cleared) = write(patch(&path, &json!({"note": null}))).await;
    assert_eq!(
        (status, etag.as_str(), cleared["version"].clone()),
        (200, "\"2\"", json!(2)),
        "{cleared}"
    );
    assert!(
        cleared.get("note").is_none(),
        "cleared field is absent: {cleared}"
    );
    let read = read_at(&app, &path, &user, &position).await;
    assert_eq!(header(&read, "etag"), "\"2\"");
    let read = json(read).await;
    assert!(
        read.get("note").is_none(),
        "cleared field is absent from the view: {read}"
    );
    assert_eq!(read["version"], 2);

    // `null` on a required field, at top level or nested, is refused.
    let errors = validation_errors(
        app.patch(&path, &user, &json!({"title": null})).await,
        "clear required",
    )
    .await;
    assert_eq!(errors, pairs(&[("/title", "required")]));
    let errors = validation_errors(
        app.patch(&path, &user, &json!({"dims": {"unit": null}}))
            .await,
        "clear nested required",
    )
    .await;
    assert_eq!(errors, pairs(&[("/dims/unit", "required")]));

    // Objects merge key by key; arrays are replaced whole.
    let (status, etag, _, merged) = write(patch(&path, &json!({"dims": {"width": 5}}))).await;
    assert_eq!((status, etag.as_str()), (200, "\"3\""), "{merged}");
    assert_eq!(
        merged["dims"],
        json!({"width": 5, "height": 2, "unit": "cm"}),
        "siblings are kept"
    );
    let (status, etag, _, replaced) = write(patch(&path, &json!({"tags": ["c"]}))).await;
    assert_eq!((status, etag.as_str()), (200, "\"4\""), "{replaced}");
    assert_eq!(replaced["tags"], json!(["c"]));
    let (status, etag, _, nested_clear) =
        write(patch(&path, &json!({"dims": {"height": null}}))).await;
    assert_eq!((status, etag.as_str()), (200, "\"5\""), "{nested_clear}");
    assert_eq!(
        nested_clear["dims"],
        json!({"width": 5, "unit": "cm"}),
        "null clears a nested optional field"
    );

    // A PATCH that changes nothing succeeds and does not move the version.
    for no_op in [
        json!({"title": "t", "count": 1}),
        json!({"note": null}),
        json!({"dims": {"width": 5}}),
        json!({"tags": ["c"]}),
        json!({}),
    ] {
        let (status, etag, position, body) = write(patch(&path, &no_op)).await;
        assert_eq!((status, etag.as_str()), (200, "\"5\""), "{no_op} → {body}");
        assert_eq!(body["version"], 5, "{no_op}");
        assert!(
            !position.is_empty(),
            "{no_op}: every write response carries Herald-Position"
        );
    }

    // `application/merge-patch+json` is the media type of a merge patch.
    let (status, etag, _, body) = write(
        app.request(Method::PATCH, &path, Some(&user))
            .header("content-type", "application/merge-patch+json")
            .body(json!({"count": 2}).to_string()),
    )
    .await;
    assert_eq!(
        (status, etag.as_str(), body["count"].clone()),
        (200, "\"6\"", json!(2)),
        "{body}"
    );

    // Archive and restore are one version each.
    let (status, etag, position, _) = write(app.request(Method::DELETE, &path, Some(&user))).await;
    assert_eq!((status, etag.as_str()), (204, "\"7\""));
    assert_eq!(read_at(&app, &path, &user, &position).await.status(), 404);
    let (status, etag, position, restored) =
        write(app.request(Method::POST, &format!("{path}/restore"), Some(&user))).await;
    assert_eq!(
        (status, etag.as_str(), restored["version"].clone()),
        (200, "\"8\"", json!(8)),
        "{restored}"
    );
    let read = read_at(&app, &path, &user, &position).await;
    assert_eq!(header(&read, "etag"), "\"8\"");
    let read = json(read).await;
    assert_eq!(read["version"], 8);
    assert_eq!(
        fields(&read),
        json!({"title": "t", "count": 2, "tags": ["c"], "dims": {"width": 5, "unit": "cm"}})
    );

    // The merged document is validated: a partial object must complete what is required.
    let bare = app
        .create("lab/note", &user, &json!({"title": "bare"}))
        .await;
    let bare_path = format!("/v1/lab/note/{}", id_of(&bare));
    let errors = validation_errors(
        app.patch(&bare_path, &user, &json!({"dims": {"width": 1}}))
            .await,
        "merged",
    )
    .await;
    assert_eq!(errors, pairs(&[("/dims/unit", "required")]));
    let (status, etag, _, body) = write(patch(
        &bare_path,
        &json!({"dims": {"width": 1, "unit": "m"}}),
    ))
    .await;
    assert_eq!((status, etag.as_str()), (200, "\"2\""), "{body}");
    app.stop_and_clean().await;
}

const MEMBER: &str = r"fields:
  handle: {type: string, required: true, unique: true}
  nick:   {type: string, unique: true}
  bio:    {type: string}
";

#[tokio::test]
async fn unique_values_are_reserved_per_tenant_until_changed() {
    let app = spawn(&[("lab", "member", MEMBER)]).await;
    let acme = app.token("u1", &[], "acme");
    let other = app.token("u2", &[], "other");

    let ada = app
        .create("lab/member", &acme, &json!({"handle": "ada", "nick": "n1"}))
        .await;
    let path = format!("/v1/lab/member/{}", id_of(&ada));
    problem(
        app.post("/v1/lab/member", &acme, &json!({"handle": "ada"}))
            .await,
        409,
        "unique_violation",
        "same tenant",
    )
    .await;
    problem(
        app.post(
            "/v1/lab/member",
            &acme,
            &json!({"handle": "zed", "nick": "n1"}),
        )
        .await,
        409,
        "unique_violation",
        "second unique field",
    )
    .await;
    assert_eq!(
        app.post(
            "/v1/lab/member",
            &other,
            &json!({"handle": "ada", "nick": "n1"})
        )
        .await
        .status(),
        201,
        "another tenant has its own values"
    );

    // Archived: the value stays reserved, so restoring never conflicts.
    assert_eq!(app.delete(&path, &acme).await.status(), 204);
    problem(
        app.post("/v1/lab/member", &acme, &json!({"handle": "ada"}))
            .await,
        409,
        "unique_violation",
        "while archived",
    )
    .await;
    let restored = send(app.request(Method::POST, &format!("{path}/restore"), Some(&acme))).await;
    assert_eq!(restored.status(), 200);
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&acme))
            .json(&json!({"bio": "x", "handle": "ada"})),
    )
    .await;
    assert_eq!(
        status, 200,
        "a document never conflicts with itself: {body}"
    );

    // Changing the value frees the old one; clearing an optional one too.
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&acme))
            .json(&json!({"handle": "grace"})),
    )
    .await;
    assert_eq!(
        (status, body["handle"].clone()),
        (200, json!("grace")),
        "{body}"
    );
    let reuse = app
        .create("lab/member", &acme, &json!({"handle": "ada"}))
        .await;
    problem(
        app.post("/v1/lab/member", &acme, &json!({"handle": "grace"}))
            .await,
        409,
        "unique_violation",
        "new value taken",
    )
    .await;
    let (status, _, _, body) = write(
        app.request(Method::PATCH, &path, Some(&acme))
            .json(&json!({"nick": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.post(
            "/v1/lab/member",
            &acme,
            &json!({"handle": "zed", "nick": "n1"})
        )
        .await
        .status(),
        201,
        "a cleared value is free"
    );

    // A PATCH to a taken value is refused like a create, and changes nothing.
    let reuse_path = format!("/v1/lab/member/{}", id_of(&reuse));
    problem(
        app.patch(&reuse_path, &acme, &json!({"handle": "grace"}))
            .await,
        409,
        "unique_violation",
        "patch",
    )
    .await;
    let read = json(app.get(&reuse_path, &acme).await).await;
    assert_eq!(
        (read["handle"].clone(), read["version"].clone()),
        (json!("ada"), json!(1))
    );
    app.stop_and_clean().await;
}

/// `unique` compares values, not their spelling: the validator accepts `3.0` as the integer 3
/// (and `enum` matches numbers by value), and a UUID in capitals as that UUID (the view stores
/// it in a `uuid` column), so each must collide with the canonical spelling.
#[tokio::test]
async fn unique_compares_values_not_their_spelling() {
    let yaml = "fields:\n  no: {type: integer, unique: true}\n  key: {type: uuid, unique: true}\n";
    let app = spawn(&[("lab", "seat", yaml)]).await;
    let user = app.token("u1", &[], "acme");
    let key = "0190f5a4-7b1c-7c3e-9a55-3f1e2d4c5b6a";
    app.create("lab/seat", &user, &json!({"no": 3, "key": key}))
        .await;
    let mut failures = Vec::new();
    for (what, body) in [
        ("integer 3.0 after 3", json!({"no": 3.0})),
        (
            "the same UUID in capitals",
            json!({"key": key.to_uppercase()}),
        ),
    ] {
        let response = app.post("/v1/lab/seat", &user, &body).await;
        let status = response.status();
        let body = json(response).await;
        if status != 409 || body["code"] != "unique_violation" {
            failures.push(format!(
                "{what}: expected 409 unique_violation, got {status} {body}"
            ));
        }
    }
    app.stop_and_clean().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

const MEMO: &str = r"fields:
  title: {type: string, required: true}
  note:  {type: string, nullable: true}
  plain: {type: string}
  when:  {type: datetime, nullable: true, filter: true}
";

#[tokio::test]
async fn null_on_create_is_accepted_only_by_nullable_fields() {
    let app = spawn(&[("lab", "memo", MEMO)]).await;
    let user = app.token("u1", &[], "acme");

    // Unspecified by DOCUMENTS.md/HTTP.md beyond "`nullable`"; the code stores an explicit
    // `null` on create for a nullable field and serves it back as `null`.
    let body = json!({"title": "t", "note": null, "when": null});
    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/memo", Some(&user))
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(fields(&created), body);
    let path = format!("/v1/lab/memo/{}", id_of(&created));
    let read = read_at(&app, &path, &user, &position).await;
    assert_eq!(read.status(), 200);
    assert_eq!(fields(&json(read).await), body);

    // Not nullable: an optional field refuses `null` on create with `type` (what the validator
    // does; the contract only lists the code), a required one with `required`.
    let errors = validation_errors(
        app.post("/v1/lab/memo", &user, &json!({"title": "t", "plain": null}))
            .await,
        "plain",
    )
    .await;
    assert_eq!(errors, pairs(&[("/plain", "type")]));
    let errors = validation_errors(
        app.post(
            "/v1/lab/memo",
            &user,
            &json!({"title": null, "plain": null}),
        )
        .await,
        "title",
    )
    .await;
    assert_eq!(errors, pairs(&[("/title", "required"), ("/plain", "type")]));

    // In a merge patch `null` means "remove", for nullable and non-nullable fields alike.
    let full = app
        .create(
            "lab/memo",
            &user,
            &json!({"title": "t", "note": "x", "plain": "y", "when": "2024-05-01T12:00:00Z"}),
        )
        .await;
    let full_path = format!("/v1/lab/memo/{}", id_of(&full));
    let (status, etag, position, body) = write(
        app.request(Method::PATCH, &full_path, Some(&user))
            .json(&json!({"note": null, "plain": null, "when": null})),
    )
    .await;
    assert_eq!((status, etag.as_str()), (200, "\"2\""), "{body}");
    assert_eq!(fields(&body), json!({"title": "t"}));
    let read = read_at(&app, &full_path, &user, &position).await;
    assert_eq!(fields(&json(read).await), json!({"title": "t"}));
    app.stop_and_clean().await;
}

const READING: &str = "fields:\n  qty: {type: integer, filter: true}\n";
const DIARY: &str = "fields:\n  day: {type: date, filter: true}\n";

/// A value the api accepts (`201`) must reach the view: the typed filter columns must not
/// refuse it, or the projection of the whole collection stalls.
#[tokio::test]
async fn every_accepted_value_reaches_the_view() {
    let app = spawn(&[("lab", "reading", READING), ("lab", "diary", DIARY)]).await;
    let user = app.token("u1", &[], "acme");
    let mut failures = Vec::new();

    // The validator accepts `3.0` for an integer (see schema/format.rs).
    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/reading", Some(&user))
            .json(&json!({"qty": 3.0})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let read = read_at(
        &app,
        &format!("/v1/lab/reading/{}", id_of(&created)),
        &user,
        &position,
    )
    .await;
    let read_status = read.status();
    let read = json(read).await;
    if read_status != 200 || read["qty"].as_f64() != Some(3.0) {
        failures.push(format!(
            "integer 3.0 with filter: true: created, then GET → {read_status} {read}"
        ));
    }
    // Whatever happened to it, a later ordinary document of the collection must be readable.
    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/reading", Some(&user))
            .json(&json!({"qty": 4})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let read = read_at(
        &app,
        &format!("/v1/lab/reading/{}", id_of(&created)),
        &user,
        &position,
    )
    .await;
    if read.status() != 200 {
        failures.push(format!(
            "a later {{qty: 4}} in the same collection: GET → {}",
            read.status()
        ));
    }

    // Year 0000 is a well-formed RFC 3339 full-date; either refuse it or store it.
    let (status, _, position, created) = write(
        app.request(Method::POST, "/v1/lab/diary", Some(&user))
            .json(&json!({"day": "0000-01-01"})),
    )
    .await;
    if status == 201 {
        let read = read_at(
            &app,
            &format!("/v1/lab/diary/{}", id_of(&created)),
            &user,
            &position,
        )
        .await;
        let read_status = read.status();
        let read = json(read).await;
        if read_status != 200 || read["day"] != "0000-01-01" {
            failures.push(format!(
                "date 0000-01-01 with filter: true: created, then GET → {read_status} {read}"
            ));
        }
    } else {
        assert_eq!(status, 422, "{created}");
    }
    app.stop_and_clean().await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `(doc, yaml, line, reason)`: one YAML mistake per file of app `shop`.
const MISTAKES: [(&str, &str, usize, &str); 6] = [
    (
        "syntax",
        "fields:\n  name: {type: string\n  price: {type: number}\n",
        3,
        "invalid YAML",
    ),
    (
        "kind",
        "fields:\n  name: {type: string}\n  price: {type: nubmer}\n",
        3,
        "unknown type `nubmer`",
    ),
    (
        "field_key",
        "fields:\n  name: {type: string, requird: true}\n",
        2,
        "unknown key `requird`",
    ),
    (
        "doc_key",
        "fields:\n  name: {type: string}\nacls: {read: user}\n",
        3,
        "unknown key `acls`",
    ),
    (
        "reference",
        "fields:\n  name: {type: string}\n  vendor:\n    type: ref\n    to: shop.vendor\n",
        5,
        "`shop.vendor`, which is not a declared document",
    ),
    (
        "regex",
        "fields:\n  name: {type: string}\n  sku: {type: string, pattern: \"^[A-Z\"}\n",
        3,
        "not a valid regular expression",
    ),
];

fn file_of(dir: &Path, doc: &str) -> String {
    dir.join("shop")
        .join(format!("{doc}.yaml"))
        .display()
        .to_string()
}

#[tokio::test]
async fn yaml_mistakes_stop_herald_with_file_line_and_reason() {
    // Each mistake alone: the error names the file, the line and what is wrong.
    for (doc, yaml, line, reason) in MISTAKES {
        let dir = write_apps(&[("shop", doc, yaml)]).expect("write the apps folder");
        let errors = match Registry::load(&dir) {
            Ok(_) => panic!("{doc}: an invalid declaration loaded"),
            Err(errors) => errors,
        };
        let text = errors.to_string();
        assert_eq!(errors.0.len(), 1, "{doc}: one mistake, one error: {text}");
        let prefix = format!("{}:{line}:", file_of(&dir, doc));
        assert!(
            text.starts_with(&prefix),
            "{doc}: `{text}` should start with `{prefix}`"
        );
        assert!(
            text.contains(reason),
            "{doc}: `{text}` should say `{reason}`"
        );
        assert_eq!(errors.0[0].line, Some(line), "{doc}");
        drop(std::fs::remove_dir_all(&dir));
    }

    // All of them at once, next to a valid document: every mistake is reported, one per line.
    let mut sources: Vec<(&str, &str, &str)> = MISTAKES
        .iter()
        .map(|(doc, yaml, _, _)| ("shop", *doc, *yaml))
        .collect();
    sources.push(("shop", "fine", "fields:\n  name: {type: string}\n"));
    let dir = write_apps(&sources).expect("write the apps folder");
    let text = match Registry::load(&dir) {
        Ok(_) => panic!("an apps folder with mistakes loaded"),
        Err(errors) => errors.to_string(),
    };
    assert_eq!(text.lines().count(), MISTAKES.len(), "{text}");
    for (doc, _, line, reason) in MISTAKES {
        let prefix = format!("{}:{line}:", file_of(&dir, doc));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(reason)),
            "{doc} missing from:\n{text}"
        );
    }
    assert!(!text.contains("fine.yaml"), "{text}");

    // The server refuses to start on it, saying which files are wrong.
    let mut settings = Settings::default();
    settings.apps.dir.clone_from(&dir);
    let error = match Herald::build(settings, &Role::ALL, herald_cli::App::default()).await {
        Ok(_) => panic!("Herald started on invalid apps"),
        Err(error) => format!("{error:#}"),
    };
    for (doc, _, line, reason) in MISTAKES {
        let prefix = format!("{}:{line}:", file_of(&dir, doc));
        assert!(
            error.contains(&prefix) && error.contains(reason),
            "{doc} missing from:\n{error}"
        );
    }
    drop(std::fs::remove_dir_all(&dir));
}
