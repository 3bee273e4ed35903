//! Hostile and malformed bodies: each gets a precise 4xx problem, never a 5xx, a panic or a
//! hang, and nothing is stored.

use herald_tests::{TestApp, json, send};
use reqwest::Method;

async fn post_raw(app: &TestApp, token: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let response = send(
        app.request(Method::POST, "/v1/petstore/product", Some(token))
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    let status = response.status().as_u16();
    (status, json(response).await)
}

#[tokio::test]
async fn hostile_bodies_get_precise_errors_and_change_nothing() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"name\":\"x\",\"price\":1,\"dimensions\":{}1{}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let many_tags = format!(
        "{{\"name\":\"t\",\"price\":1,\"tags\":[{}]}}",
        vec!["\"x\""; 100_000].join(",")
    );
    let long_key = format!(
        "{{\"{}\":1,\"name\":\"k\",\"price\":1}}",
        "k".repeat(200_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "10 000 nested arrays",
            deep.into_bytes(),
            400,
            "malformed_json",
        ),
        (
            "5 000 nested objects",
            deep_object.into_bytes(),
            400,
            "malformed_json",
        ),
        (
            "a number beyond f64",
            br#"{"name":"n","price":1e400}"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            "an integer beyond i64",
            br#"{"name":"n","price":1,"stock":18446744073709551616}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            "a fractional integer",
            br#"{"name":"n","price":1,"stock":1.5}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            "100 000 array items",
            many_tags.into_bytes(),
            422,
            "validation_failed",
        ),
        (
            "a 200 000 character key",
            long_key.into_bytes(),
            422,
            "validation_failed",
        ),
        (
            "a byte order mark",
            b"\xEF\xBB\xBF{\"name\":\"b\",\"price\":1}".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "trailing garbage",
            br#"{"name":"g","price":1} {}"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            "a lone surrogate",
            br#"{"name":"\ud800","price":1}"#.to_vec(),
            400,
            "malformed_json",
        ),
        (
            "a NUL in a string",
            br#"{"name":"a\u0000b","price":1}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            "an array body",
            b"[1,2,3]".to_vec(),
            422,
            "validation_failed",
        ),
        (
            "a string body",
            b"\"name\"".to_vec(),
            422,
            "validation_failed",
        ),
        ("null", b"null".to_vec(), 422, "validation_failed"),
    ];
    for (what, body, status, code) in cases {
        let (actual, problem) = post_raw(&app, &staff, body).await;
        assert_eq!(
            (actual, problem["code"].as_str().unwrap_or_default()),
            (status, code),
            "{what}: {problem}"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.len() < 500,
            "{what}: the problem does not echo the input ({} bytes)",
            detail.len()
        );
    }
    // Duplicate keys: the last one wins, as in most JSON parsers; still validated.
    let (status, _) = post_raw(
        &app,
        &staff,
        br#"{"name":"d","price":-1,"price":2}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        app.count("herald.events").await,
        1,
        "only the valid body was stored"
    );
    app.stop_and_clean().await;
}
