//! The command pipeline through HTTP: the document lifecycle, conditional requests,
//! idempotency, asynchronous commands and read-your-writes.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use herald_cli::server::Role;
use herald_tests::{Options, TestApp, eventually, header, json, send, write_apps};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_document_lives_through_create_read_update_archive_and_restore() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");

    let created = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 12.5}),
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, "etag"), "\"1\"");
    let location = header(&created, "location");
    let position = header(&created, "herald-position");
    assert!(!position.is_empty(), "writes carry Herald-Position");
    let body = json(created).await;
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(location, format!("/v1/petstore/product/{id}"));
    assert_eq!(body["version"], 1);
    assert_eq!(body["stock"], 0, "defaults applied");
    assert_eq!(body["status"], "draft");
    assert_eq!(body["created_by"], "sam");

    let read = app
        .get(&format!("{location}?min_position={position}"), &staff)
        .await;
    assert_eq!(read.status(), 200);
    assert_eq!(header(&read, "etag"), "\"1\"");
    assert!(!header(&read, "herald-position").is_empty());
    assert_eq!(
        json(read).await,
        body,
        "the view serves what the command returned"
    );

    let not_modified = send(
        app.request(Method::GET, &location, Some(&staff))
            .header("if-none-match", "\"1\""),
    )
    .await;
    assert_eq!(not_modified.status(), 304);

    let updated = app
        .patch(
            &location,
            &staff,
            &json!({"stock": 7, "description": "red"}),
        )
        .await;
    assert_eq!(updated.status(), 200);
    assert_eq!(header(&updated, "etag"), "\"2\"");
    let updated = json(updated).await;
    assert_eq!(
        (updated["stock"].clone(), updated["description"].clone()),
        (json!(7), json!("red"))
    );

    let cleared = app
        .patch(&location, &staff, &json!({"description": null}))
        .await;
    let position = header(&cleared, "herald-position");
    assert!(
        json(cleared).await.get("description").is_none(),
        "null clears an optional field"
    );
    let read = json(
        app.get(&format!("{location}?min_position={position}"), &staff)
            .await,
    )
    .await;
    assert!(read.get("description").is_none());
    assert_eq!(read["version"], 3);

    let archived = app.delete(&location, &admin).await;
    assert_eq!(archived.status(), 204);
    assert_eq!(header(&archived, "etag"), "\"4\"");
    let position = header(&archived, "herald-position");
    let gone = app
        .get(&format!("{location}?min_position={position}"), &staff)
        .await;
    assert_eq!(gone.status(), 404, "archived documents are gone from reads");
    let list = json(app.get("/v1/petstore/product", &staff).await).await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(0),
        "and from lists"
    );
    assert_eq!(
        app.delete(&location, &admin).await.status(),
        404,
        "archiving twice finds nothing"
    );

    let restored =
        send(app.request(Method::POST, &format!("{location}/restore"), Some(&admin))).await;
    assert_eq!(restored.status(), 200);
    assert_eq!(
        header(&restored, "etag"),
        "\"5\"",
        "archive then restore adds two versions"
    );
    let position = header(&restored, "herald-position");
    let back = json(
        app.get(&format!("{location}?min_position={position}"), &staff)
            .await,
    )
    .await;
    assert_eq!(back["version"], 5);
    assert_eq!(back["stock"], 7);
    let again = send(app.request(Method::POST, &format!("{location}/restore"), Some(&admin))).await;
    assert_eq!(
        again.status(),
        409,
        "restoring a live document is a conflict"
    );

    let types: Vec<String> = app
        .db()
        .await
        .query("SELECT type FROM herald.events ORDER BY version", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        [
            "petstore.product.created",
            "petstore.product.updated",
            "petstore.product.updated",
            "petstore.product.archived",
            "petstore.product.restored"
        ]
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn conditional_writes_check_the_version() {
    let apps = write_apps(&[(
        "shop",
        "order",
        "fields:\n  note: {type: string}\nacl: {create: user, read: user, update: user, delete: user}\nrequire_if_match: true\n",
    )])
    .unwrap_or_else(|e| panic!("{e}"));
    let app = TestApp::spawn_with(Options {
        apps,
        ..herald_tests::petstore()
    })
    .await;
    let user = app.token("u1", &[], "acme");
    let order = app.create("shop/order", &user, &json!({"note": "a"})).await;
    let path = format!(
        "/v1/shop/order/{}",
        order["id"].as_str().unwrap_or_default()
    );

    let missing = app.patch(&path, &user, &json!({"note": "b"})).await;
    assert_eq!(missing.status(), 428);
    assert_eq!(json(missing).await["code"], "precondition_required");

    let stale = send(
        app.request(Method::PATCH, &path, Some(&user))
            .header("if-match", "\"7\"")
            .json(&json!({"note": "b"})),
    )
    .await;
    assert_eq!(stale.status(), 412);
    assert_eq!(json(stale).await["code"], "version_mismatch");

    let fresh = send(
        app.request(Method::PATCH, &path, Some(&user))
            .header("if-match", "\"1\"")
            .json(&json!({"note": "b"})),
    )
    .await;
    assert_eq!(fresh.status(), 200);
    let replayed = send(
        app.request(Method::PATCH, &path, Some(&user))
            .header("if-match", "\"1\"")
            .json(&json!({"note": "c"})),
    )
    .await;
    assert_eq!(
        replayed.status(),
        412,
        "a second writer with the same If-Match loses"
    );
    let stale_delete = send(
        app.request(Method::DELETE, &path, Some(&user))
            .header("if-match", "\"1\""),
    )
    .await;
    assert_eq!(stale_delete.status(), 412);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_malformed_precondition_is_refused_and_changes_nothing() {
    let app = herald_tests::spawn_petstore().await;
    let admin = app.token("ada", &["admin"], "acme");
    let product = app
        .create(
            "petstore/product",
            &admin,
            &json!({"name": "Collar", "price": 9}),
        )
        .await;
    let path = format!(
        "/v1/petstore/product/{}",
        product["id"].as_str().unwrap_or_default()
    );

    for (method, value) in [
        (Method::DELETE, ""),
        (Method::DELETE, "1"),
        (Method::DELETE, "W/\"1\""),
        (Method::PATCH, ""),
        (Method::POST, ""),
    ] {
        let target = if method == Method::POST {
            format!("{path}/restore")
        } else {
            path.clone()
        };
        let mut request = app
            .request(method.clone(), &target, Some(&admin))
            .header("if-match", value);
        if method == Method::PATCH {
            request = request.json(&json!({"price": 10}));
        }
        let response = send(request).await;
        assert_eq!(response.status(), 412, "{method} with If-Match {value:?}");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
        assert_eq!(json(response).await["code"], "version_mismatch");
    }
    let history = json(app.get(&format!("{path}/history"), &admin).await).await;
    assert_eq!(
        history["data"].as_array().map(Vec::len),
        Some(1),
        "no event was appended: {history}"
    );

    for value in ["", "1", "\"1", "W/"] {
        let response = send(
            app.request(Method::GET, &path, Some(&admin))
                .header("if-none-match", value),
        )
        .await;
        assert_eq!(response.status(), 400, "If-None-Match {value:?}");
        let problem = json(response).await;
        assert_eq!(problem["code"], "invalid_header");
        assert_eq!(problem["errors"][0]["header"], "If-None-Match");
    }
    eventually("a matching If-None-Match to answer 304", || async {
        let response = send(
            app.request(Method::GET, &path, Some(&admin))
                .header("if-none-match", "W/\"1\""),
        )
        .await;
        (response.status() == 304).then_some(())
    })
    .await;
    app.stop_and_clean().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_outcome() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let body = json!({"name": "Bowl", "price": 3});
    let first = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "k-1")
            .json(&body),
    )
    .await;
    assert_eq!(first.status(), 201);
    let (etag, location) = (header(&first, "etag"), header(&first, "location"));
    let first_body = json(first).await;

    let retry = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "k-1")
            .json(&body),
    )
    .await;
    assert_eq!(retry.status(), 201, "the retry gets the first status");
    assert_eq!(
        (header(&retry, "etag"), header(&retry, "location")),
        (etag, location)
    );
    assert_eq!(json(retry).await, first_body, "and the first body");
    assert_eq!(app.count("herald.events").await, 1, "and appends nothing");

    let reused = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "k-1")
            .json(&json!({"name": "Other", "price": 1})),
    )
    .await;
    assert_eq!(reused.status(), 422);
    assert_eq!(json(reused).await["code"], "idempotency_key_reused");

    let anonymous = send(
        app.request(Method::POST, "/v1/petstore/product", None)
            .header("herald-tenant", "acme")
            .header("idempotency-key", "k-1")
            .json(&body),
    )
    .await;
    assert_eq!(
        anonymous.status(),
        401,
        "keys need a caller to be scoped to"
    );

    let someone_else = app.token("sue", &["staff"], "acme");
    let theirs = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&someone_else))
            .header("idempotency-key", "k-1")
            .json(&json!({"name": "Cup", "price": 1})),
    )
    .await;
    assert_eq!(theirs.status(), 201, "keys are scoped to the caller");

    // A rejected command is replayed as the same rejection.
    let dup = json!({"name": "Bowl", "price": 4});
    let rejected = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "k-2")
            .json(&dup),
    )
    .await;
    assert_eq!(rejected.status(), 409);
    let again = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "k-2")
            .json(&dup),
    )
    .await;
    assert_eq!(again.status(), 409);
    assert_eq!(json(again).await["code"], "unique_violation");
    assert_eq!(app.count("herald.events").await, 2);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_retry_while_the_command_is_pending_is_in_flight_until_a_handler_runs_it() {
    // No handler role: commands are accepted and wait in JetStream.
    let api_only = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Projector],
        ..herald_tests::petstore()
    })
    .await;
    let staff = api_only.token("sam", &["staff"], "acme");
    let request = || {
        api_only
            .request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "slow-1")
            .header("prefer", "respond-async")
            .json(&json!({"name": "Brush", "price": 2}))
    };
    let accepted = send(request()).await;
    assert_eq!(accepted.status(), 202);
    let status_url = header(&accepted, "location");
    assert!(status_url.starts_with("/v1/commands/"));
    let status = json(api_only.get(&status_url, &staff).await).await;
    assert_eq!(status["status"], "accepted");

    let retry = send(request()).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(
        header(&retry, "retry-after"),
        "1",
        "retry until it is decided"
    );
    assert_eq!(json(retry).await["code"], "idempotency_in_flight");

    let options = api_only.restart_options();
    api_only.stop().await.unwrap_or_else(|e| panic!("{e:#}"));
    let app = TestApp::spawn_with(options).await;
    let done = eventually("the command to be handled", || async {
        let status = json(app.get(&status_url, &staff).await).await;
        (status["status"] == "succeeded").then_some(status)
    })
    .await;
    assert_eq!(done["result"]["name"], "Brush");
    assert!(done["position"].is_string());
    assert!(done["completed_at"].is_string());
    let retry = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("idempotency-key", "slow-1")
            .json(&json!({"name": "Brush", "price": 2})),
    )
    .await;
    assert_eq!(
        retry.status(),
        201,
        "once handled, the retry gets the outcome"
    );
    assert_eq!(app.count("herald.events").await, 1);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_rejected_async_command_reports_its_problem() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let missing = "01a200ac-0000-7000-8000-000000000000";
    let accepted = send(
        app.request(Method::POST, "/v1/petstore/product", Some(&staff))
            .header("prefer", "respond-async")
            .json(&json!({"name": "Ghost", "price": 1, "supplier": missing})),
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let status_url = header(&accepted, "location");
    let status = eventually("the command to be rejected", || async {
        let status = json(app.get(&status_url, &staff).await).await;
        (status["status"] == "rejected").then_some(status)
    })
    .await;
    assert_eq!(status["problem"]["code"], "validation_failed");
    assert_eq!(status["problem"]["errors"][0]["code"], "ref_not_found");
    assert_eq!(status["problem"]["errors"][0]["pointer"], "/supplier");
    let other = app.token("sue", &["staff"], "acme");
    assert_eq!(
        app.get(&status_url, &other).await.status(),
        404,
        "a command is its caller's"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_read_waits_for_its_min_position_or_reports_lag() {
    let app = TestApp::spawn_with(Options {
        roles: vec![Role::Api, Role::Handler],
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let created = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Lamp", "price": 9}),
        )
        .await;
    let position = header(&created, "herald-position");
    let id = json(created).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Without a projector the view never gets there.
    let lagging = send(
        app.request(
            Method::GET,
            &format!("/v1/petstore/product/{id}?min_position={position}"),
            Some(&staff),
        )
        .header("prefer", "wait=1"),
    )
    .await;
    assert_eq!(lagging.status(), 503);
    assert!(lagging.headers().contains_key("retry-after"));
    assert_eq!(json(lagging).await["code"], "view_lagging");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn lists_page_with_an_opaque_cursor() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut ids = Vec::new();
    let mut position = String::new();
    for i in 0..7 {
        let created = app
            .post(
                "/v1/petstore/product",
                &staff,
                &json!({"name": format!("p{i}"), "price": i}),
            )
            .await;
        position = header(&created, "herald-position");
        ids.push(json(created).await["id"].clone());
    }
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "/v1/petstore/product?limit=3&min_position={position}"
    ));
    while let Some(path) = next.take() {
        let page = app.get(&path, &staff).await;
        assert_eq!(page.status(), 200);
        let link = header(&page, "link");
        let body: Value = json(page).await;
        seen.extend(
            body["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|d| d["id"].clone()),
        );
        if body["has_more"] == true {
            assert!(link.contains("rel=\"next\""));
            next = Some(format!(
                "/v1/petstore/product?limit=3&cursor={}",
                body["next_cursor"].as_str().unwrap_or_default()
            ));
        } else {
            assert_eq!(body["next_cursor"], Value::Null);
        }
    }
    assert_eq!(seen, ids, "every document once, in creation order");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_is_told_when_to_retry() {
    let app = TestApp::spawn_with(Options {
        configure: |settings| {
            settings.http.rate_limit_per_second = 1;
            settings.http.rate_limit_burst = 3;
        },
        ..herald_tests::petstore()
    })
    .await;
    let greedy = app.token("greedy", &[], "acme");
    let statuses = statuses_of_gets(&app, &greedy, 5).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "the burst passes: {statuses:?}"
    );
    let limited = app.get("/v1/petstore/product", &greedy).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = header(&limited, "retry-after").parse().unwrap_or(0);
    assert!(retry_after >= 1);
    assert!(header(&limited, "ratelimit").contains(&format!("t={retry_after}")));
    assert!(header(&limited, "ratelimit-policy").contains("q=3"));
    assert_eq!(json(limited).await["code"], "rate_limited");
    let patient = app.token("patient", &[], "acme");
    assert_eq!(
        app.get("/v1/petstore/product", &patient).await.status(),
        200,
        "buckets are per caller"
    );
    app.stop_and_clean().await;
}

async fn statuses_of_gets(app: &TestApp, token: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(
            app.get("/v1/petstore/product", token)
                .await
                .status()
                .as_u16(),
        );
    }
    statuses
}

#[tokio::test]
async fn the_openapi_description_is_public_and_follows_the_documents() {
    let app = herald_tests::spawn_petstore().await;
    let response = send(app.request(Method::GET, "/v1/openapi.json", None)).await;
    assert_eq!(response.status(), 200, "public: no token needed");
    let spec = json(response).await;
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/v1/petstore/product",
        "/v1/petstore/product/{id}",
        "/v1/petstore/product/{id}/restore",
        "/v1/commands/{id}",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is described");
    }
    let create = &spec["components"]["schemas"]["petstore.product.create"];
    assert_eq!(
        create["required"],
        json!(["name", "price"]),
        "required fields without a default"
    );
    assert_eq!(
        create["additionalProperties"], false,
        "unknown fields are refused"
    );
    assert_eq!(create["properties"]["price"]["minimum"], 0.0);
    assert_eq!(create["properties"]["sku"]["pattern"], "^[A-Z0-9-]{4,20}$");
    assert_eq!(
        create["properties"]["status"]["enum"],
        json!(["draft", "published", "retired"])
    );
    let patch = &spec["components"]["schemas"]["petstore.product.patch"];
    assert_eq!(
        patch["properties"]["description"]["type"],
        json!(["string", "null"]),
        "null clears an optional field"
    );
    assert!(patch.get("required").is_none());
    let read = &spec["components"]["schemas"]["petstore.product"];
    assert_eq!(read["properties"]["id"]["format"], "uuid");
    assert_eq!(
        spec["paths"]["/v1/petstore/product"]["post"]["responses"]["422"]["content"]["application/problem+json"]
            ["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let restock = &spec["paths"]["/v1/petstore/product/{id}/restock"]["post"];
    assert_eq!(restock["operationId"], "restock_product");
    assert_eq!(
        restock["requestBody"]["content"]["application/json"]["schema"]["properties"]["quantity"]["maximum"],
        10000.0
    );
    assert!(restock["responses"]["200"].is_object());
    let onboard = &spec["paths"]["/v1/petstore/supplier/onboard"];
    assert!(
        onboard.get("parameters").is_none(),
        "a command on the collection has no id: {onboard}"
    );
    assert_eq!(onboard["post"]["operationId"], "onboard_supplier");
    assert!(onboard["post"]["responses"]["201"]["headers"]["Location"].is_object());
    assert_eq!(
        onboard["post"]["requestBody"]["content"]["application/json"]["schema"]["required"],
        json!(["name", "email", "country"])
    );
    let docs = send(app.request(Method::GET, "/docs", None)).await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap_or_default()
            .contains("/v1/openapi.json")
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn every_problem_of_a_bad_request_is_reported_at_once() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let missing = "01a200ac-0000-7000-8000-000000000000";
    let problems = |body: Value| async move {
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = errors
            .iter()
            .map(|e| {
                (
                    e["pointer"].as_str().unwrap_or_default().to_owned(),
                    e["code"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        pairs.sort();
        pairs
    };
    let response = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Bad", "price": -1, "bogus": 1, "supplier": missing}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let expected = [
        ("/bogus", "unknown_field"),
        ("/price", "minimum"),
        ("/supplier", "ref_not_found"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(
        problems(json(response).await).await,
        expected,
        "stateless and stored-data problems together"
    );

    let product = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Good", "price": 1, "sku": "GOOD-1"}),
        )
        .await;
    let path = format!(
        "/v1/petstore/product/{}",
        product["id"].as_str().unwrap_or_default()
    );
    let response = app
        .patch(
            &path,
            &staff,
            &json!({"stock": -1, "sku": "OTHER-2", "supplier": missing}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let expected = [
        ("/sku", "immutable"),
        ("/stock", "minimum"),
        ("/supplier", "ref_not_found"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(problems(json(response).await).await, expected);

    let nowhere = format!("/v1/petstore/product/{missing}");
    assert_eq!(
        app.patch(&nowhere, &staff, &json!({"stock": -1}))
            .await
            .status(),
        404,
        "existence comes first"
    );
    assert_eq!(app.count("herald.events").await, 1);
    app.stop_and_clean().await;
}
