//! API keys for services: an admin creates one with roles it holds, the key works as a bearer
//! token in its tenant only, its secret is shown once and never listed, and revoking or
//! expiring it takes effect at once.

use herald_tests::{TestApp, header, json, send};
use reqwest::Method;
use serde_json::{Value, json};

async fn create_key(app: &TestApp, admin_token: &str, body: &Value) -> reqwest::Response {
    app.post("/v1/api-keys", admin_token, body).await
}

#[tokio::test]
async fn a_key_acts_with_its_roles_in_its_tenant_until_it_is_revoked() {
    let app = herald_tests::spawn_petstore().await;
    let admin = app.as_admin("ada");
    let admin_token = admin.token().unwrap_or_default().to_owned();

    let created = create_key(
        &app,
        &admin_token,
        &json!({"name": "importer", "roles": ["staff"], "expires_in_days": 30}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.starts_with("hk_"), "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();

    let product = app
        .post(
            "/v1/petstore/product",
            &key,
            &json!({"name": "Kite", "price": 3}),
        )
        .await;
    assert_eq!(product.status(), 201, "the key acts with the staff role");
    let position = header(&product, "herald-position");
    let product = json(product).await;
    assert_eq!(
        product["created_by"],
        format!("apikey:{}", id.replace('-', ""))
    );
    let other_tenant = send(
        app.request(
            Method::GET,
            &format!("/v1/petstore/product?min_position={position}"),
            Some(&key),
        )
        .header("herald-tenant", "globex"),
    )
    .await;
    assert_eq!(
        json(other_tenant).await["data"].as_array().map(Vec::len),
        Some(1),
        "the key's tenant, whatever Herald-Tenant says"
    );

    let listed = json(admin.get("/v1/api-keys").await).await;
    let listed_text = listed.to_string();
    assert!(
        !listed_text.contains(&key[key.len() - 20..]),
        "no secret is listed"
    );
    assert_eq!(listed["data"][0]["name"], "importer");
    assert_eq!(listed["data"][0]["roles"], json!(["staff"]));
    let elsewhere = app.as_admin("ada").in_tenant("globex");
    assert_eq!(
        json(elsewhere.get("/v1/api-keys").await).await["data"],
        json!([]),
        "another tenant's admin sees none"
    );
    assert_eq!(
        elsewhere
            .delete(&format!("/v1/api-keys/{id}"))
            .await
            .status(),
        404
    );

    let mut forged = key.clone();
    forged.pop();
    forged.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(app.get("/v1/petstore/product", &forged).await.status(), 401);

    assert_eq!(
        admin.delete(&format!("/v1/api-keys/{id}")).await.status(),
        204
    );
    let after = app.get("/v1/petstore/product", &key).await;
    assert_eq!(after.status(), 401, "revoked at once");
    assert_eq!(header(&after, "www-authenticate"), "Bearer");
    app.stop_and_clean().await;
}

#[tokio::test]
async fn only_admins_create_keys_and_only_with_roles_they_hold() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff", "billing"], "acme");
    let admin_token = app.token("ada", &["admin"], "acme");
    let body = json!({"name": "k", "roles": ["user"], "expires_in_days": 1});
    assert_eq!(create_key(&app, &staff, &body).await.status(), 403);
    assert_eq!(
        send(app.request(Method::POST, "/v1/api-keys", None).json(&body))
            .await
            .status(),
        401
    );
    let staff_admin = app.token("max", &["admin", "billing"], "acme");
    let with_custom = create_key(
        &app,
        &staff_admin,
        &json!({"name": "billing", "roles": ["billing"], "expires_in_days": 1}),
    )
    .await;
    assert_eq!(with_custom.status(), 201);
    let not_held = create_key(
        &app,
        &admin_token,
        &json!({"name": "billing", "roles": ["billing"], "expires_in_days": 1}),
    )
    .await;
    assert_eq!(not_held.status(), 422, "a custom role the creator lacks");
    assert_eq!(json(not_held).await["errors"][0]["pointer"], "/roles");
    let invalid = create_key(
        &app,
        &admin_token,
        &json!({"name": "", "roles": ["owner"], "expires_in_days": 0, "colour": "red"}),
    )
    .await;
    assert_eq!(invalid.status(), 422);
    let pointers: Vec<Value> = json(invalid).await["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["pointer"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        pointers,
        [json!("/colour"), json!("/expires_in_days"), json!("/name")],
        "every mistake of the body at once"
    );
    assert_eq!(
        app.count("herald.api_keys").await,
        1,
        "refusals stored nothing"
    );
    app.stop_and_clean().await;
}

#[tokio::test]
async fn an_expired_key_verifies_nothing() {
    let app = herald_tests::spawn_petstore().await;
    let admin_token = app.token("ada", &["admin"], "acme");
    let created = json(
        create_key(
            &app,
            &admin_token,
            &json!({"name": "short", "roles": ["user"], "expires_in_days": 1}),
        )
        .await,
    )
    .await;
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(app.get("/v1/petstore/product", &key).await.status(), 200);
    app.db()
        .await
        .execute(
            "UPDATE herald.api_keys SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(app.get("/v1/petstore/product", &key).await.status(), 401);
    app.stop_and_clean().await;
}
