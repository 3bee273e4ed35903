//! The built-in login (`identity.enabled`): users are `auth.user` documents managed by admins
//! with commands; `POST /v1/auth/token` signs in and refreshes, refresh tokens rotate and a
//! reused one revokes its family, signing out revokes, a disabled user cannot refresh, sign-in
//! is rate-limited and never tells a wrong username from a wrong password, passwords are
//! stored only as argon2id hashes that nobody is shown, and changing one ends older sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_bus::settings::Settings;
use herald_tests::{Options, TestApp, eventually, json, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header, decode_header};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn with_identity() -> Options {
    Options {
        configure: |settings: &mut Settings| settings.identity.enabled = true,
        ..herald_tests::petstore()
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(with_identity()).await
}

/// `POST path` with `body` and no credentials.
async fn post_anonymous(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    send(app.request(Method::POST, path, None).json(body)).await
}

async fn sign_in(app: &TestApp, tenant: &str, username: &str, password: &str) -> reqwest::Response {
    let grant = json!({"grant_type": "password", "tenant": tenant, "username": username, "password": password});
    post_anonymous(app, "/v1/auth/token", &grant).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    let grant = json!({"grant_type": "refresh_token", "refresh_token": refresh_token});
    post_anonymous(app, "/v1/auth/token", &grant).await
}

/// Creates a user as an admin of `acme` and returns its document.
async fn create_user(app: &TestApp, username: &str, roles: &[&str]) -> Value {
    let admin = app.as_admin("root");
    let created = admin
        .post(
            "/v1/auth/user",
            &json!({"username": username, "password": PASSWORD, "roles": roles}),
        )
        .await;
    assert_eq!(created.status(), 201, "the user is created");
    json(created).await
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_user_signs_in_refreshes_and_signs_out() {
    let app = spawn().await;
    let user = create_user(&app, "ada", &["staff"]).await;
    assert!(
        user.get("password").is_none(),
        "no password is shown: {user}"
    );

    let signed_in = sign_in(&app, "acme", "Ada", PASSWORD).await;
    assert_eq!(signed_in.status(), 200, "usernames are not case-sensitive");
    assert_eq!(
        herald_tests::header(&signed_in, "cache-control"),
        "no-store"
    );
    let tokens = json(signed_in).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = text(&tokens, "access_token");
    let header = decode_header(&access).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwks = json(send(app.request(Method::GET, "/.well-known/jwks.json", None)).await).await;
    assert_eq!(jwks["keys"][0]["kid"], json!(header.kid), "{jwks}");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "only the public half is published"
    );

    let product = app
        .post(
            "/v1/petstore/product",
            &access,
            &json!({"name": "Kite", "price": 3}),
        )
        .await;
    assert_eq!(
        product.status(),
        201,
        "the access token carries the user's roles"
    );
    assert_eq!(json(product).await["created_by"], user["id"]);

    let first_refresh = text(&tokens, "refresh_token");
    let renewed = refresh(&app, &first_refresh).await;
    assert_eq!(renewed.status(), 200);
    let renewed = json(renewed).await;
    let second_refresh = text(&renewed, "refresh_token");
    assert_ne!(second_refresh, first_refresh, "refresh tokens rotate");

    let reused = refresh(&app, &first_refresh).await;
    assert_eq!(reused.status(), 400);
    assert_eq!(json(reused).await["code"], "invalid_grant");
    let successor = refresh(&app, &second_refresh).await;
    assert_eq!(
        successor.status(),
        400,
        "reusing a spent token revoked its whole family"
    );

    let again = json(sign_in(&app, "acme", "ada", PASSWORD).await).await;
    let signed_out = post_anonymous(
        &app,
        "/v1/auth/revoke",
        &json!({"refresh_token": text(&again, "refresh_token")}),
    )
    .await;
    assert_eq!(signed_out.status(), 204);
    assert_eq!(
        refresh(&app, &text(&again, "refresh_token")).await.status(),
        400,
        "signing out revokes"
    );
    let unknown = post_anonymous(
        &app,
        "/v1/auth/revoke",
        &json!({"refresh_token": "nonsense"}),
    )
    .await;
    assert_eq!(
        unknown.status(),
        204,
        "revoking tells nothing about a token"
    );
}

#[tokio::test]
async fn a_wrong_username_and_a_wrong_password_answer_the_same() {
    let app = spawn().await;
    let user = create_user(&app, "grace", &["user"]).await;
    let id = text(&user, "id");

    let wrong_password = sign_in(&app, "acme", "grace", "not the password").await;
    let wrong_user = sign_in(&app, "acme", "nobody", PASSWORD).await;
    let wrong_tenant = sign_in(&app, "globex", "grace", PASSWORD).await;
    let mut answers = Vec::new();
    for response in [wrong_password, wrong_user, wrong_tenant] {
        assert_eq!(response.status(), 400);
        let mut problem = json(response).await;
        problem.as_object_mut().map(|p| p.remove("request_id"));
        answers.push(problem);
    }
    assert_eq!(answers[0]["code"], "invalid_grant");
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[0], answers[2], "{answers:?}");

    let admin = app.as_admin("root");
    let disabled = admin.run("auth/user", &id, "disable", &json!({})).await;
    assert_eq!(disabled.status(), 200);
    let mut refused = json(sign_in(&app, "acme", "grace", PASSWORD).await).await;
    refused.as_object_mut().map(|p| p.remove("request_id"));
    assert_eq!(
        refused, answers[0],
        "a disabled user is refused like a wrong password"
    );
}

#[tokio::test]
async fn a_disabled_user_cannot_refresh_and_every_change_is_an_event_with_its_actor() {
    let app = spawn().await;
    let user = create_user(&app, "linus", &["user"]).await;
    let id = text(&user, "id");
    let tokens = json(sign_in(&app, "acme", "linus", PASSWORD).await).await;
    let admin = app.as_admin("root");

    let changed = admin
        .patch(&format!("/v1/auth/user/{id}"), &json!({"roles": ["staff"]}))
        .await;
    assert_eq!(changed.status(), 200);
    let renewed = json(refresh(&app, &text(&tokens, "refresh_token")).await).await;
    let access = text(&renewed, "access_token");
    let product = app
        .post(
            "/v1/petstore/product",
            &access,
            &json!({"name": "Drum", "price": 9}),
        )
        .await;
    assert_eq!(
        product.status(),
        201,
        "new roles arrive with the next refresh"
    );

    assert_eq!(
        admin
            .run("auth/user", &id, "disable", &json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        refresh(&app, &text(&renewed, "refresh_token"))
            .await
            .status(),
        400,
        "a disabled user's refresh token stops working"
    );
    assert_eq!(
        admin
            .run("auth/user", &id, "enable", &json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        refresh(&app, &text(&renewed, "refresh_token"))
            .await
            .status(),
        400,
        "the family was revoked when it was refused"
    );
    assert_eq!(sign_in(&app, "acme", "linus", PASSWORD).await.status(), 200);

    let history = eventually("the user's history", || async {
        let history = json(admin.get(&format!("/v1/auth/user/{id}/history")).await).await;
        (history["data"].as_array().map(Vec::len) == Some(4)).then_some(history)
    })
    .await;
    let types: Vec<&str> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "auth.user.created",
            "auth.user.updated",
            "auth.user.disabled",
            "auth.user.enabled"
        ]
    );
    let actors: Vec<&Value> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| &event["actor"]["sub"])
        .collect();
    assert!(actors.iter().all(|sub| **sub == json!("root")), "{history}");
    assert!(!history.to_string().contains("argon2"), "{history}");
}

#[tokio::test]
async fn passwords_are_kept_only_as_hashes_nobody_is_shown() {
    let app = spawn().await;
    let user = create_user(&app, "hedy", &["user"]).await;
    let id = text(&user, "id");
    let admin = app.as_admin("root");

    let read = eventually("the user in the view", || async {
        let read = admin.get(&format!("/v1/auth/user/{id}")).await;
        (read.status() == 200).then_some(read)
    })
    .await;
    let listed = admin.get("/v1/auth/user?username=eq.hedy").await;
    for body in [json(read).await, json(listed).await] {
        let body = body.to_string();
        assert!(body.contains("hedy"), "{body}");
        assert!(
            !body.contains("argon2") && !body.contains(PASSWORD),
            "{body}"
        );
    }

    let db = app.db().await;
    let stored: Vec<String> = db
        .query(
            "SELECT data::text FROM herald.events WHERE collection = 'auth.user'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|row| row.try_get(0).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(
        stored[0].contains("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored:?}"
    );
    let anywhere: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM herald.events WHERE data::text LIKE $1)
                  + (SELECT count(*) FROM herald.commands WHERE outcome::text LIKE $1)
                  + (SELECT count(*) FROM herald.streams WHERE snapshot::text LIKE $1)",
            &[&format!("%{PASSWORD}%")],
        )
        .await
        .and_then(|row| row.try_get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anywhere, 0, "the password itself is stored nowhere");

    let too_short = admin
        .patch(
            &format!("/v1/auth/user/{id}"),
            &json!({"password": "short"}),
        )
        .await;
    assert_eq!(too_short.status(), 422);
    let problem = json(too_short).await;
    assert_eq!(problem["errors"][0]["pointer"], "/password", "{problem}");
    assert_eq!(problem["errors"][0]["code"], "min_length", "{problem}");

    let before = json(sign_in(&app, "acme", "hedy", PASSWORD).await).await;
    let changed = admin
        .patch(
            &format!("/v1/auth/user/{id}"),
            &json!({"password": "a new passphrase"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        refresh(&app, &text(&before, "refresh_token"))
            .await
            .status(),
        400,
        "a password change ends the sessions that began before it"
    );
    assert_eq!(sign_in(&app, "acme", "hedy", PASSWORD).await.status(), 400);
    assert_eq!(
        sign_in(&app, "acme", "hedy", "a new passphrase")
            .await
            .status(),
        200
    );

    let taken = admin
        .post(
            "/v1/auth/user",
            &json!({"username": "hedy", "password": PASSWORD}),
        )
        .await;
    assert_eq!(taken.status(), 409, "usernames are unique in a tenant");
    let elsewhere = app
        .as_admin("root")
        .in_tenant("globex")
        .post(
            "/v1/auth/user",
            &json!({"username": "hedy", "password": PASSWORD}),
        )
        .await;
    assert_eq!(elsewhere.status(), 201, "but not across tenants");
}

fn configure_low_limits(settings: &mut Settings) {
    settings.identity.enabled = true;
    settings.identity.logins_per_minute_per_account = 5;
    settings.identity.logins_per_minute_per_address = 60;
}

#[tokio::test]
async fn ten_thousand_wrong_sign_ins_are_bounded_by_the_limits() {
    let app = TestApp::spawn_with(Options {
        configure: configure_low_limits,
        ..herald_tests::petstore()
    })
    .await;
    create_user(&app, "ada", &["user"]).await;
    create_user(&app, "alan", &["user"]).await;

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let attempts = futures::stream::iter(0..10_000).map(|i| {
        let app = &app;
        async move {
            let username = if i % 2 == 0 { "ada" } else { "someone-else" };
            let response = sign_in(app, "acme", username, &format!("guess {i}")).await;
            let limited = response.status() == 429;
            assert!(
                !limited
                    || herald_tests::header(&response, "retry-after")
                        .parse::<u64>()
                        .is_ok(),
                "a 429 says when to retry"
            );
            response.status().as_u16()
        }
    });
    use futures::StreamExt;
    let mut answers = attempts.buffer_unordered(32);
    while let Some(status) = answers.next().await {
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [400, 429],
        "{statuses:?}"
    );
    assert!(
        statuses[&400] <= 60,
        "at most a minute's worth was tried: {statuses:?}"
    );

    let locked = sign_in(&app, "acme", "ada", PASSWORD).await;
    assert_eq!(locked.status(), 429, "the address is over its limit");
}

fn configure_account_limit(settings: &mut Settings) {
    settings.identity.enabled = true;
    settings.identity.logins_per_minute_per_account = 3;
    settings.identity.logins_per_minute_per_address = 1_000;
}

#[tokio::test]
async fn one_account_is_limited_without_locking_out_the_others() {
    let app = TestApp::spawn_with(Options {
        configure: configure_account_limit,
        ..herald_tests::petstore()
    })
    .await;
    create_user(&app, "ada", &["user"]).await;
    create_user(&app, "alan", &["user"]).await;
    for _ in 0..3 {
        assert_eq!(
            sign_in(&app, "acme", "ada", "wrong guess").await.status(),
            400
        );
    }
    assert_eq!(sign_in(&app, "acme", "ada", PASSWORD).await.status(), 429);
    assert_eq!(sign_in(&app, "acme", "alan", PASSWORD).await.status(), 200);
}

/// Signs `claims` as Herald's own key would be named, but with `key` and `algorithm`.
fn forge(algorithm: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn forged_tokens_and_too_few_rights_get_nothing() {
    let app = spawn().await;
    let jwks = json(send(app.request(Method::GET, "/.well-known/jwks.json", None)).await).await;
    let kid = text(&jwks["keys"][0], "kid");
    let public = URL_SAFE_NO_PAD
        .decode(text(&jwks["keys"][0], "x"))
        .unwrap_or_else(|e| panic!("{e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = json!({"sub": "mallory", "tid": "acme", "roles": ["admin"], "exp": now + 600,
        "iss": "herald", "aud": "herald"});

    // Algorithm confusion: the public key used as an HMAC secret.
    let confused = forge(
        Algorithm::HS256,
        &kid,
        &EncodingKey::from_secret(&public),
        &claims,
    );
    // Another Ed25519 key under Herald's key name.
    let other = ed25519_pkcs8(rand::random());
    let impostor = forge(
        Algorithm::EdDSA,
        &kid,
        &EncodingKey::from_ed_der(&other),
        &claims,
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut past = claims.clone();
    past["exp"] = json!(now - 120);
    let secret = app
        .settings
        .auth
        .hs256_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &past,
        &EncodingKey::from_secret(secret.unwrap_or_default().as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Herald's own key itself, read from the database, with claims that do not hold.
    let seed: Vec<u8> = app
        .db()
        .await
        .query_one("SELECT seed FROM herald.signing_key", &[])
        .await
        .and_then(|row| row.try_get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let own = EncodingKey::from_ed_der(&ed25519_pkcs8(
        seed.try_into().unwrap_or_else(|_| panic!("a 32-byte seed")),
    ));
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("elsewhere");
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("elsewhere");
    let mut no_tenant = claims.clone();
    no_tenant.as_object_mut().map(|c| c.remove("tid"));
    let body = json!({"username": "eve", "password": PASSWORD});
    let genuine = forge(Algorithm::EdDSA, &kid, &own, &claims);
    assert_eq!(
        app.post("/v1/auth/user", &genuine, &body).await.status(),
        201,
        "the control"
    );
    let refused = [
        confused,
        impostor,
        unsigned,
        expired,
        forge(Algorithm::EdDSA, &kid, &own, &wrong_audience),
        forge(Algorithm::EdDSA, &kid, &own, &wrong_issuer),
        forge(Algorithm::EdDSA, &kid, &own, &no_tenant),
        forge(Algorithm::EdDSA, "another-kid", &own, &claims),
    ];
    let body = json!({"username": "mallory", "password": PASSWORD});
    for token in refused {
        let response = app.post("/v1/auth/user", &token, &body).await;
        assert_eq!(response.status(), 401, "{token}");
    }
    let anonymous = post_anonymous(&app, "/v1/auth/user", &body).await;
    assert_eq!(anonymous.status(), 401);
    let staff = app.as_staff("sam").post("/v1/auth/user", &body).await;
    assert_eq!(staff.status(), 404, "users are hidden from non-admins");

    create_user(&app, "ada", &["user"]).await;
    let globex = app.as_admin("root").in_tenant("globex");
    let listed = json(globex.get("/v1/auth/user").await).await;
    assert_eq!(
        listed["data"],
        json!([]),
        "another tenant's admin sees none"
    );

    let malformed = post_anonymous(&app, "/v1/auth/token", &json!({"grant_type": "magic"})).await;
    assert_eq!(malformed.status(), 400);
    assert_eq!(json(malformed).await["code"], "malformed_json");
}

/// The Ed25519 key of `seed`, as PKCS#8 DER.
fn ed25519_pkcs8(seed: [u8; 32]) -> Vec<u8> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    key.to_pkcs8_der()
        .unwrap_or_else(|e| panic!("{e}"))
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn without_identity_there_is_no_login() {
    let app = herald_tests::spawn_petstore().await;
    assert_eq!(
        send(app.request(Method::GET, "/.well-known/jwks.json", None))
            .await
            .status(),
        404
    );
    let grant = json!({"grant_type": "password", "tenant": "acme", "username": "ada", "password": PASSWORD});
    assert_eq!(
        post_anonymous(&app, "/v1/auth/token", &grant)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.as_admin("root").get("/v1/auth/user").await.status(),
        404
    );
    let description = json(send(app.request(Method::GET, "/v1/openapi.json", None)).await).await;
    assert!(description["paths"].get("/v1/auth/token").is_none());
}

#[tokio::test]
async fn the_description_has_the_login_and_a_write_only_password() {
    let app = spawn().await;
    let description = json(send(app.request(Method::GET, "/v1/openapi.json", None)).await).await;
    let token = &description["paths"]["/v1/auth/token"]["post"];
    assert_eq!(token["security"], json!([]), "signing in needs no token");
    assert!(token["responses"].get("200").is_some());
    assert!(description["paths"].get("/v1/auth/revoke").is_some());
    assert!(description["paths"].get("/.well-known/jwks.json").is_some());
    let password =
        &description["components"]["schemas"]["auth.user.create"]["properties"]["password"];
    assert_eq!(password["writeOnly"], true, "{password}");
    assert_eq!(password["minLength"], 8);
}
