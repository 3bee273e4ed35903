//! API versions (`versions.yaml`): an app serves v1 and v2 side by side over the same
//! documents and events, v2 under its own names; a deprecated version says so in its headers,
//! a retired one answers `410` and changes nothing, an unknown one is `404`, and each version
//! has its own description.

use std::time::Duration;

use herald_tests::sse::SseStream;
use herald_tests::{Options, TestApp, eventually, header, json, send};
use reqwest::Method;
use serde_json::{Value, json};

/// v1 on its way out (in the future), v2 renaming `name` to `title` and `publish` to `release`,
/// and without `cost`.
const VERSIONS: &str = "
v1:
  deprecated: 2026-01-01
  sunset: 2099-12-31
v2:
  product:
    rename: {name: title}
    drop: [cost]
    rename_commands: {publish: release}
";

/// v1 retired in the past.
const RETIRED: &str = "
v1:
  deprecated: 2025-01-01
  sunset: 2025-06-30
v2:
";

async fn spawn(versions: &'static str) -> TestApp {
    TestApp::spawn_with(Options {
        apps: herald_tests::petstore_with(&[("petstore", "versions", versions)]),
        ..herald_tests::petstore()
    })
    .await
}

#[tokio::test]
async fn v1_and_v2_are_served_side_by_side_over_the_same_documents() {
    let app = spawn(VERSIONS).await;
    let staff = app.as_staff("sam");

    let created = staff
        .post(
            "/v2/petstore/product",
            &json!({"title": "Kite", "price": 3, "cost": 1}),
        )
        .await;
    assert_eq!(created.status(), 422, "v2 has no `cost`");
    let problem = json(created).await;
    assert_eq!(problem["errors"][0]["pointer"], "/cost", "{problem}");
    assert_eq!(problem["errors"][0]["code"], "unknown_field");

    let missing = staff
        .post("/v2/petstore/product", &json!({"price": 3}))
        .await;
    let problem = json(missing).await;
    assert_eq!(
        problem["errors"][0]["pointer"], "/title",
        "v2's name for the field: {problem}"
    );

    let created = staff
        .post(
            "/v2/petstore/product",
            &json!({"title": "Kite", "price": 3}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let location = header(&created, "location");
    let created_at = header(&created, "herald-position");
    let product = json(created).await;
    let id = product["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(location, format!("/v2/petstore/product/{id}"));
    assert_eq!(product["title"], "Kite", "{product}");
    assert!(product.get("name").is_none(), "{product}");

    let as_v1 = staff
        .get(&format!(
            "/v1/petstore/product/{id}?min_position={created_at}"
        ))
        .await;
    let as_v1 = json(as_v1).await;
    assert_eq!(as_v1["name"], "Kite", "the same document in v1: {as_v1}");
    let old_name = staff
        .patch(
            &format!("/v2/petstore/product/{id}"),
            &json!({"name": "Box"}),
        )
        .await;
    assert_eq!(old_name.status(), 422, "v1's name is not v2's");

    let patched = staff
        .patch(
            &format!("/v2/petstore/product/{id}"),
            &json!({"title": "Kite II"}),
        )
        .await;
    assert_eq!(patched.status(), 200);

    assert_eq!(json(patched).await["title"], "Kite II");
    let drum = staff
        .post(
            "/v2/petstore/product",
            &json!({"title": "Drum", "price": 9}),
        )
        .await;
    let position = header(&drum, "herald-position");

    let page = staff
        .get(&format!(
            "/v2/petstore/product?title=neq.Drum&order=title.desc&limit=1&min_position={position}"
        ))
        .await;
    assert_eq!(page.status(), 200);
    let page = json(page).await;
    assert_eq!(page["data"][0]["title"], "Kite II", "{page}");
    let refused = staff.get("/v2/petstore/product?name=eq.Kite").await;
    assert_eq!(refused.status(), 400);
    assert_eq!(json(refused).await["errors"][0]["parameter"], "name");

    let two = staff
        .get(&format!(
            "/v2/petstore/product?order=title&limit=1&min_position={position}"
        ))
        .await;
    let link = header(&two, "link");
    assert!(link.starts_with("</v2/petstore/product?"), "{link}");
    assert!(
        link.contains("order=title") && link.contains("cursor="),
        "{link}"
    );
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_owned();
    let second = json(staff.get(&next).await).await;
    assert_eq!(
        second["data"][0]["title"], "Kite II",
        "the next page, from v2's link: {second}"
    );

    let released = staff
        .post(&format!("/v2/petstore/product/{id}/release"), &json!({}))
        .await;
    assert_eq!(released.status(), 200, "v2's name of `publish`");
    assert_eq!(json(released).await["status"], "published");
    let old_command = staff
        .post(&format!("/v2/petstore/product/{id}/publish"), &json!({}))
        .await;
    assert_eq!(old_command.status(), 404);

    let history = json(
        staff
            .get(&format!("/v2/petstore/product/{id}/history"))
            .await,
    )
    .await;
    assert_eq!(
        history["data"][1]["changes"]["title"]["after"], "Kite II",
        "{history}"
    );
    let events = json(
        staff
            .get(&format!("/v2/petstore/product/{id}/events"))
            .await,
    )
    .await;
    assert_eq!(events["data"][0]["data"]["title"], "Kite", "{events}");
    assert!(events["data"][0]["data"].get("name").is_none());

    let stream = send(
        app.request(Method::GET, "/v2/petstore/product/events", staff.token())
            .header("accept", "text/event-stream")
            .header(
                "last-event-id",
                herald_bus::position::LogPosition::START.token(),
            ),
    )
    .await;
    let mut stream = SseStream::new(stream);
    let first = stream
        .next(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("the stream ended"));
    assert_eq!(first.data["data"]["title"], "Kite", "{:?}", first.data);
}

#[tokio::test]
async fn a_deprecated_version_says_so_and_points_to_its_successor() {
    let app = spawn(VERSIONS).await;
    let staff = app.as_staff("sam");
    let listed = staff.get("/v1/petstore/product").await;
    assert_eq!(listed.status(), 200);
    assert_eq!(header(&listed, "deprecation"), "@1767225600");
    assert_eq!(header(&listed, "sunset"), "Thu, 31 Dec 2099 00:00:00 GMT");
    assert_eq!(
        header(&listed, "link"),
        "</v2/petstore/product>; rel=\"successor-version\""
    );
    let current = staff.get("/v2/petstore/product").await;
    assert!(current.headers().get("deprecation").is_none());

    let metrics = send(app.request(Method::GET, "/metrics", app.as_admin("root").token())).await;
    let text = metrics.text().await.unwrap_or_default();
    assert!(
        text.contains("herald_api_version_calls_total{app=\"petstore\",version=\"v1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("herald_api_version_calls_total{app=\"petstore\",version=\"v2\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_version_past_its_sunset_is_gone_and_changes_nothing() {
    let app = spawn(RETIRED).await;
    let staff = app.as_staff("sam");
    let refused = staff
        .post("/v1/petstore/product", &json!({"name": "Kite", "price": 3}))
        .await;
    assert_eq!(refused.status(), 410);
    assert_eq!(header(&refused, "sunset"), "Mon, 30 Jun 2025 00:00:00 GMT");
    let problem = json(refused).await;
    assert_eq!(problem["code"], "gone", "{problem}");
    assert_eq!(app.count("herald.events").await, 0, "nothing was written");
    assert_eq!(app.count("herald.commands").await, 0);

    let created = staff
        .post("/v2/petstore/product", &json!({"name": "Kite", "price": 3}))
        .await;
    assert_eq!(created.status(), 201, "the successor serves");
    let read = staff.get("/v1/petstore/product").await;
    assert_eq!(read.status(), 410, "reads too");
}

#[tokio::test]
async fn unknown_versions_are_not_found_and_each_version_is_described() {
    let app = spawn(VERSIONS).await;
    let staff = app.as_staff("sam");
    for path in [
        "/v3/petstore/product",
        "/v2/commands/00000000-0000-0000-0000-000000000000",
        "/v2/nothing/here",
    ] {
        assert_eq!(staff.get(path).await.status(), 404, "{path}");
    }
    let anonymous = |path: &str| send(app.request(Method::GET, path, None));
    let v2: Value = json(anonymous("/v2/openapi.json").await).await;
    assert!(v2["paths"].get("/v2/petstore/product").is_some());
    assert!(
        v2["paths"]
            .get("/v2/petstore/product/{id}/release")
            .is_some()
    );
    assert!(
        v2["paths"]
            .get("/v2/petstore/product/{id}/publish")
            .is_none()
    );
    assert!(
        v2["paths"].get("/v1/events").is_none(),
        "Herald's own routes are v1's"
    );
    let create = &v2["components"]["schemas"]["petstore.product.create"]["properties"];
    assert!(
        create.get("title").is_some()
            && create.get("name").is_none()
            && create.get("cost").is_none(),
        "{create}"
    );
    let v1: Value = json(anonymous("/v1/openapi.json").await).await;
    assert!(
        v1["components"]["schemas"]["petstore.product.create"]["properties"]
            .get("name")
            .is_some()
    );
    assert_eq!(anonymous("/v3/openapi.json").await.status(), 404);
    let docs = anonymous("/docs/v2").await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap_or_default()
            .contains("/v2/openapi.json")
    );
    assert_eq!(anonymous("/docs/v3").await.status(), 404);
    let apps_without_versions = eventually("the supplier list", || async {
        let response = staff.get("/v1/petstore/supplier").await;
        (response.status() == 200).then_some(response)
    })
    .await;
    assert!(
        apps_without_versions.headers().get("deprecation").is_some(),
        "the app's v1 is deprecated"
    );
}
