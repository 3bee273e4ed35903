//! Security through HTTP: authentication on every `/v1` route, role and owner rules, tenant
//! isolation, field access, anonymous callers, and the RFC 9457 problems every refusal carries.
//!
//! Tokens the harness cannot issue (expired, not yet valid, without `tid` or `exp`, with a
//! foreign `alg`) are minted here with a small local HMAC-SHA256, checked against
//! `herald_api::auth::issue_token` before use so a broken signer cannot make a test pass.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_tests::{Options, TestApp, eventually, header, json, petstore_apps, send, write_apps};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Events and commands recorded so far: a refused request must change neither.
async fn footprint(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("herald.events").await,
        app.count("herald.commands").await,
        app.count("herald.api_keys").await,
    )
}

/// Checks that `response` is an RFC 9457 problem with `status` and `code` as the contract
/// describes, and returns its body.
async fn problem(response: reqwest::Response, status: u16, code: &str, what: &str) -> Value {
    let actual = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let request_id = header(&response, "x-request-id");
    let authenticate = header(&response, "www-authenticate");
    let allow = header(&response, "allow");
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(actual < 500, "{what}: a {actual} (server error): {body}");
    assert_eq!(
        actual, status,
        "{what}: status; content type `{content_type}`, body {body}"
    );
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type `{content_type}`, body {body}"
    );
    assert_eq!(body["code"], code, "{what}: code in {body}");
    assert_eq!(
        body["type"],
        format!("https://herald.dev/problems/{code}"),
        "{what}: type in {body}"
    );
    assert_eq!(body["status"], status, "{what}: status member in {body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: title in {body}"
    );
    assert!(body["detail"].is_string(), "{what}: detail in {body}");
    assert!(
        !request_id.is_empty(),
        "{what}: X-Request-Id header missing"
    );
    assert_eq!(
        body["request_id"], request_id,
        "{what}: request_id must equal X-Request-Id"
    );
    if status == 401 {
        assert!(
            authenticate.starts_with("Bearer"),
            "{what}: WWW-Authenticate `{authenticate}`"
        );
    }
    if status == 405 {
        assert!(!allow.is_empty(), "{what}: 405 without Allow");
    }
    body
}

/// `errors[]` of a problem as `(pointer or parameter, code)` pairs.
fn error_list(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let at = e["pointer"].as_str().or(e["parameter"].as_str());
                    (
                        at.unwrap_or("?").to_owned(),
                        e["code"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn data_len(list: &Value) -> usize {
    list["data"].as_array().map_or(usize::MAX, Vec::len)
}

fn id_of(document: &Value) -> String {
    document["id"].as_str().unwrap_or_default().to_owned()
}

const LEDGER: &str = "\
fields:
  name: {type: string, required: true}
acl:
  create: staff
  read: staff
  update: staff
  delete: staff
";

const MEMO: &str = "\
fields:
  text: {type: string, required: true}
acl:
  create: user
  read: [owner, staff]
  update: owner
  delete: owner
";

const ITEM: &str = "\
fields:
  name: {type: string, required: true, max: 50}
  cost: {type: number, min: 0, default: 5, acl: {read: staff, write: staff}}
acl:
  create: user
  read: user
  update: [staff, owner]
  delete: admin
";

const NOTICE: &str = "\
fields:
  title:    {type: string, required: true}
  internal: {type: string, acl: {read: staff, write: staff}}
acl:
  read: public
  create: staff
  update: staff
  delete: staff
";

const GUESTBOOK: &str = "\
fields:
  text: {type: string, required: true}
acl:
  create: public
  read: public
  update: owner
  delete: admin
";

/// The petstore example plus small collections with the ACL shapes these tests need.
fn security_apps() -> PathBuf {
    let petstore = petstore_apps().join("petstore");
    let read = |name: &str| {
        std::fs::read_to_string(petstore.join(name))
            .unwrap_or_else(|e| panic!("cannot read the petstore example {name}: {e}"))
    };
    let (product, supplier) = (read("product.yaml"), read("supplier.yaml"));
    write_apps(&[
        ("petstore", "product", &product),
        ("petstore", "supplier", &supplier),
        ("vault", "ledger", LEDGER),
        ("vault", "memo", MEMO),
        ("shop", "item", ITEM),
        ("board", "notice", NOTICE),
        ("board", "guestbook", GUESTBOOK),
    ])
    .unwrap_or_else(|e| panic!("cannot write the test apps: {e}"))
}

async fn spawn_security_app() -> TestApp {
    TestApp::spawn_with(Options {
        apps: security_apps(),
        ..herald_tests::petstore()
    })
    .await
}

/// Creates through `Prefer: respond-async` and waits for the outcome: returns the command id
/// and the command resource once it succeeded.
async fn create_async(
    app: &TestApp,
    collection: &str,
    token: &str,
    body: &Value,
) -> (String, Value) {
    let accepted = send(
        app.request(Method::POST, &format!("/v1/{collection}"), Some(token))
            .header("prefer", "respond-async")
            .json(body),
    )
    .await;
    assert_eq!(
        accepted.status(),
        202,
        "respond-async create of {collection}"
    );
    let location = header(&accepted, "location");
    let command_id = location
        .strip_prefix("/v1/commands/")
        .unwrap_or_else(|| panic!("202 Location `{location}` is not a command"))
        .to_owned();
    let done = eventually("the command to succeed", || async {
        let status = json(app.get(&location, token).await).await;
        (status["status"] == "succeeded").then_some(status)
    })
    .await;
    (command_id, done)
}

/// Reads `path` once the views have caught up with `position`.
async fn read_at(app: &TestApp, path: &str, position: &str, token: &str) -> reqwest::Response {
    let separator = if path.contains('?') { '&' } else { '?' };
    app.get(&format!("{path}{separator}min_position={position}"), token)
        .await
}

// --- HS256 by hand: SHA-256 (FIPS 180-4), HMAC (RFC 2104), base64url (RFC 4648 §5) -----------

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bits.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (slot, word) in w.iter_mut().zip(block.chunks_exact(4)) {
            *slot = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (slot, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// A compact JWS with `header` and `claims`, signed HS256 with `secret` whatever `alg` says.
fn sign(secret: &str, header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = hmac_sha256(secret.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
}

fn secret(app: &TestApp) -> String {
    app.settings
        .auth
        .hs256_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default()
}

/// Claims the server accepts (before a test breaks one of them).
fn good_claims(sub: &str, tenant: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "sub": sub, "tid": tenant, "roles": roles,
        "iat": now, "nbf": now, "exp": now + 3600,
        "iss": "herald", "aud": "herald",
    })
}

fn without(claims: &mut Value, claim: &str) {
    if let Some(object) = claims.as_object_mut() {
        object.remove(claim);
    }
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// Fails the test unless the local signer reproduces the server's own signature.
fn check_local_signer(app: &TestApp) {
    let official = app.token("probe", &["staff"], "acme");
    let (signing_input, signature) = official
        .rsplit_once('.')
        .unwrap_or_else(|| panic!("`{official}` is not a JWS"));
    let ours = b64url(&hmac_sha256(
        secret(app).as_bytes(),
        signing_input.as_bytes(),
    ));
    assert_eq!(
        ours, signature,
        "the test's HS256 signer disagrees with issue_token"
    );
    assert_eq!(
        b64url(&sha256(b"abc")),
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",
        "SHA-256 test vector"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_v1_route_refuses_missing_and_invalid_credentials_and_changes_nothing() {
    let app = spawn_security_app().await;
    check_local_signer(&app);
    let staff = app.token("sam", &["staff"], "acme");
    let key = secret(&app);

    // Something real behind every route, so a 401 is not a disguised 404.
    let (command_id, done) = create_async(
        &app,
        "petstore/product",
        &staff,
        &json!({"name": "Leash", "price": 12}),
    )
    .await;
    let id = id_of(&done["result"]);
    let position = done["position"].as_str().unwrap_or_default().to_owned();
    let notice = app
        .create("board/notice", &staff, &json!({"title": "Open"}))
        .await;
    assert_eq!(
        read_at(
            &app,
            &format!("/v1/petstore/product/{id}"),
            &position,
            &staff
        )
        .await
        .status(),
        200
    );

    // Bad tokens.
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = good_claims("mallory", "acme", &["admin"]);
        edit(&mut claims);
        sign(&key, &hs256(), &claims)
    };
    let expired = with(&|c| {
        c["iat"] = json!(now() - 7200);
        c["nbf"] = json!(now() - 7200);
        c["exp"] = json!(now() - 120);
    });
    let not_yet_valid = with(&|c| c["nbf"] = json!(now() + 600));
    let no_tid = with(&|c| without(c, "tid"));
    let null_tid = with(&|c| c["tid"] = Value::Null);
    let bad_tid = with(&|c| c["tid"] = json!("acme/../other"));
    let no_exp = with(&|c| without(c, "exp"));
    let no_sub = with(&|c| without(c, "sub"));
    let wrong_iss_crafted = with(&|c| c["iss"] = json!("evil"));
    let wrong_aud_crafted = with(&|c| c["aud"] = json!("evil"));
    let admin_official = app.token("mallory", &["admin"], "acme");
    let (signing_input, signature) = admin_official.rsplit_once('.').unwrap_or_default();
    let payload = signing_input.split('.').nth(1).unwrap_or_default();
    // Flip the first signature character: still valid base64url, a different MAC.
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let bad_signature = format!("{signing_input}.{flipped}{}", &signature[1..]);
    let alg_none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{alg_none_header}.{payload}.");
    let alg_none_with_signature = format!("{alg_none_header}.{payload}.{signature}");
    let alg_none_lowercase = format!("{}.{payload}.", b64url(br#"{"alg":"None","typ":"JWT"}"#));
    let hs512 = sign(
        &key,
        &json!({"alg": "HS512", "typ": "JWT"}),
        &good_claims("mallory", "acme", &["admin"]),
    );
    let rs256 = sign(
        &key,
        &json!({"alg": "RS256", "typ": "JWT"}),
        &good_claims("mallory", "acme", &["admin"]),
    );
    let issue = |edit: &dyn Fn(&mut herald_bus::settings::AuthSettings), tenant: &str| {
        let mut settings = app.settings.auth.clone();
        edit(&mut settings);
        herald_api::auth::issue_token(&settings, "mallory", tenant, &["admin".to_owned()], 3600)
            .unwrap_or_else(|e| panic!("cannot sign: {e}"))
    };
    let other_key = issue(
        &|s| s.hs256_secret = Some("a-completely-different-secret-0123".to_owned().into()),
        "acme",
    );
    let wrong_iss = issue(&|s| s.issuer = "someone-else".to_owned(), "acme");
    let wrong_aud = issue(&|s| s.audience = "someone-else".to_owned(), "acme");
    let empty_tid = issue(&|_| {}, "");

    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let credentials: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("expired beyond the leeway", bearer(&expired)),
        (
            "nbf in the future beyond the leeway",
            bearer(&not_yet_valid),
        ),
        ("signature altered", bearer(&bad_signature)),
        ("signed with another key", bearer(&other_key)),
        ("alg none", bearer(&alg_none)),
        (
            "alg none keeping a signature",
            bearer(&alg_none_with_signature),
        ),
        ("alg None", bearer(&alg_none_lowercase)),
        ("alg HS512 (not allowed)", bearer(&hs512)),
        ("alg RS256 with an HMAC (confusion)", bearer(&rs256)),
        ("wrong iss", bearer(&wrong_iss)),
        ("wrong aud", bearer(&wrong_aud)),
        ("wrong iss (hand-signed)", bearer(&wrong_iss_crafted)),
        ("wrong aud (hand-signed)", bearer(&wrong_aud_crafted)),
        ("tid \"\"", bearer(&empty_tid)),
        ("no tid claim", bearer(&no_tid)),
        ("tid null", bearer(&null_tid)),
        ("tid not a tenant id", bearer(&bad_tid)),
        ("no exp claim", bearer(&no_exp)),
        ("no sub claim", bearer(&no_sub)),
        ("not a JWT", bearer("not-a-jwt")),
        (
            "an API key that was never issued",
            bearer(&format!("hk_{}_{}", "0".repeat(32), "A".repeat(43))),
        ),
        ("a malformed API key", bearer("hk_not-a-key")),
        ("empty bearer", Some("Bearer ".to_owned())),
        (
            "Basic credentials",
            Some("Basic YWRtaW46YWRtaW4=".to_owned()),
        ),
        ("token without a scheme", Some(admin_official.clone())),
    ];

    let onboard = json!({"name": "Stolen", "email": "a@b.test", "country": "FR"});
    let new_key = json!({"name": "stolen", "roles": ["admin"], "expires_in_days": 1});
    let patch = json!({"price": 1});
    let create = json!({"name": "Stolen", "price": 1});
    let product = format!("/v1/petstore/product/{id}");
    let notice_path = format!("/v1/board/notice/{}", id_of(&notice));
    let routes: Vec<(Method, String, Option<&Value>)> = vec![
        (
            Method::POST,
            "/v1/petstore/product".to_owned(),
            Some(&create),
        ),
        (Method::GET, "/v1/petstore/product".to_owned(), None),
        (Method::GET, product.clone(), None),
        (Method::PATCH, product.clone(), Some(&patch)),
        (Method::DELETE, product.clone(), None),
        (Method::POST, format!("{product}/restore"), None),
        (Method::GET, format!("/v1/commands/{command_id}"), None),
        // A collection anonymous callers may read: a bad token must not fall back to anonymous.
        (Method::GET, "/v1/board/notice".to_owned(), None),
        (Method::GET, notice_path, None),
        (Method::POST, format!("{product}/publish"), None),
        (
            Method::POST,
            "/v1/petstore/supplier/onboard".to_owned(),
            Some(&onboard),
        ),
        (Method::POST, "/v1/api-keys".to_owned(), Some(&new_key)),
        (Method::GET, "/v1/api-keys".to_owned(), None),
        (Method::DELETE, format!("/v1/api-keys/{id}"), None),
        // Checked before routing: unknown routes and methods are 401 too.
        (Method::GET, "/v1/nope".to_owned(), None),
        (Method::GET, "/v1".to_owned(), None),
        (Method::PUT, "/v1/petstore/product".to_owned(), None),
    ];

    let before = footprint(&app).await;
    for (label, authorization) in &credentials {
        for (method, path, body) in &routes {
            let mut request = app.request(method.clone(), path, None);
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            // Only the bearer token may name the tenant once one is sent.
            if authorization.is_some() {
                request = request.header("herald-tenant", "acme");
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let what = format!("{method} {path} with {label}");
            let body = problem(send(request).await, 401, "unauthenticated", &what).await;
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.contains(&key) && !detail.contains("mallory"),
                "{what}: the problem leaks token material: {detail}"
            );
        }
    }
    assert_eq!(
        footprint(&app).await,
        before,
        "refused requests append no event and record no command"
    );
    let still = json(app.get(&product, &staff).await).await;
    assert_eq!(still["version"], 1, "the product is untouched");
    assert_eq!(still["price"], 12);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn well_formed_tokens_are_accepted_within_the_leeway_and_with_any_scheme_case() {
    let app = herald_tests::spawn_petstore().await;
    check_local_signer(&app);
    let key = secret(&app);
    let now = now();

    // A first write, so every read below can wait for the view (`min_position`).
    let staff = app.token("sam", &["staff"], "acme");
    let created = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 1}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let list = format!(
        "/v1/petstore/product?min_position={}",
        header(&created, "herald-position")
    );

    // Controls for the refusals above: the same hand-made tokens pass when nothing is broken.
    let good = sign(&key, &hs256(), &good_claims("uma", "acme", &[]));
    let response = app.get(&list, &good).await;
    assert_eq!(
        response.status(),
        200,
        "a hand-signed valid token is accepted"
    );
    assert_eq!(data_len(&json(response).await), 1);

    let mut claims = good_claims("uma", "acme", &[]);
    claims["exp"] = json!(now - 5);
    let just_expired = sign(&key, &hs256(), &claims);
    assert_eq!(
        app.get(&list, &just_expired).await.status(),
        200,
        "exp 5 s ago is inside the 30 s leeway"
    );
    let mut claims = good_claims("uma", "acme", &[]);
    claims["nbf"] = json!(now + 5);
    let almost_valid = sign(&key, &hs256(), &claims);
    assert_eq!(
        app.get(&list, &almost_valid).await.status(),
        200,
        "nbf 5 s ahead is inside the 30 s leeway"
    );
    let mut claims = good_claims("uma", "acme", &["no-such-role"]);
    without(&mut claims, "roles");
    let no_roles = sign(&key, &hs256(), &claims);
    assert_eq!(
        app.get(&list, &no_roles).await.status(),
        200,
        "a token without roles is a `user`"
    );
    let unknown_role = app.token("uma", &["no-such-role"], "acme");
    assert_eq!(
        app.get(&list, &unknown_role).await.status(),
        200,
        "a token with no known role is a `user`"
    );
    let create = app
        .post(
            "/v1/petstore/product",
            &unknown_role,
            &json!({"name": "X", "price": 1}),
        )
        .await;
    problem(create, 403, "forbidden", "an unknown role is not staff").await;

    // (api/src/auth.rs:213, `strip_prefix("Bearer ")` is case-sensitive):
    // RFC 9110 §11.1: the auth-scheme is case-insensitive.
    // CONTRACT: HTTP.md "Where this page is silent, do what ... the standards below say".
    let token = app.token("uma", &[], "acme");
    for scheme in ["bearer", "BEARER"] {
        let response = send(
            app.request(Method::GET, &list, None)
                .header("authorization", format!("{scheme} {token}")),
        )
        .await;
        assert_eq!(
            response.status(),
            200,
            "`Authorization: {scheme} <valid token>` must be accepted (auth schemes are \
             case-insensitive, RFC 9110 §11.1)"
        );
    }
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Roles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn roles_decide_who_may_create_update_archive_and_restore_products() {
    let app = herald_tests::spawn_petstore().await;
    let user = app.token("uma", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let other_staff = app.token("sid", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");

    let before = footprint(&app).await;
    let refused = app
        .post(
            "/v1/petstore/product",
            &user,
            &json!({"name": "Mine", "price": 1}),
        )
        .await;
    problem(refused, 403, "forbidden", "a user creating a product").await;
    assert_eq!(footprint(&app).await.0, before.0, "nothing appended");

    let created = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 12}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let position = header(&created, "herald-position");
    let product = json(created).await;
    let path = format!("/v1/petstore/product/{}", id_of(&product));

    let read = read_at(&app, &path, &position, &user).await;
    assert_eq!(read.status(), 200, "a user reads products");
    let list = json(read_at(&app, "/v1/petstore/product", &position, &user).await).await;
    assert_eq!(data_len(&list), 1, "a user lists products: {list}");

    let events = app.count("herald.events").await;
    let patched = app.patch(&path, &user, &json!({"price": 1})).await;
    problem(
        patched,
        403,
        "forbidden",
        "a user patching a product it did not create",
    )
    .await;
    let deleted = app.delete(&path, &user).await;
    problem(deleted, 403, "forbidden", "a user archiving a product").await;
    let restored = send(app.request(Method::POST, &format!("{path}/restore"), Some(&user))).await;
    problem(restored, 403, "forbidden", "a user restoring a product").await;
    let deleted = app.delete(&path, &staff).await;
    problem(deleted, 403, "forbidden", "staff archiving (delete: admin)").await;
    assert_eq!(
        app.count("herald.events").await,
        events,
        "refusals append nothing"
    );

    let by_other = app.patch(&path, &other_staff, &json!({"price": 13})).await;
    assert_eq!(
        by_other.status(),
        200,
        "any staff may update (update: [staff, owner])"
    );
    assert_eq!(json(by_other).await["version"], 2);
    let by_owner = app.patch(&path, &staff, &json!({"price": 14})).await;
    assert_eq!(by_owner.status(), 200);

    let archived = app.delete(&path, &admin).await;
    assert_eq!(archived.status(), 204, "admin archives");
    let position = header(&archived, "herald-position");
    let gone = read_at(&app, &path, &position, &staff).await;
    problem(gone, 404, "not_found", "an archived product").await;
    let restore_by_staff =
        send(app.request(Method::POST, &format!("{path}/restore"), Some(&staff))).await;
    problem(
        restore_by_staff,
        403,
        "forbidden",
        "staff restoring (governed by delete: admin)",
    )
    .await;
    let back = send(app.request(Method::POST, &format!("{path}/restore"), Some(&admin))).await;
    assert_eq!(back.status(), 200, "admin restores");
    assert_eq!(json(back).await["version"], 5);
    app.stop_and_clean().await;
}

#[tokio::test]
async fn what_a_caller_may_not_read_is_404_never_403() {
    let app = spawn_security_app().await;
    let user = app.token("uma", &[], "acme");
    let other_user = app.token("ulf", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let admin = app.token("ada", &["admin"], "acme");

    // A collection only staff may read does not exist for a user, whatever the method.
    let created = app
        .post("/v1/vault/ledger", &staff, &json!({"name": "2024"}))
        .await;
    assert_eq!(created.status(), 201, "staff creates a ledger");
    let position = header(&created, "herald-position");
    let ledger_path = format!("/v1/vault/ledger/{}", id_of(&json(created).await));
    assert_eq!(
        read_at(&app, &ledger_path, &position, &staff)
            .await
            .status(),
        200,
        "staff reads it"
    );
    let before = footprint(&app).await;
    let body = json!({"name": "x"});
    let hidden: Vec<(&str, reqwest::Response)> = vec![
        ("list", app.get("/v1/vault/ledger", &user).await),
        ("read", app.get(&ledger_path, &user).await),
        ("create", app.post("/v1/vault/ledger", &user, &body).await),
        ("update", app.patch(&ledger_path, &user, &body).await),
        ("archive", app.delete(&ledger_path, &user).await),
        (
            "restore",
            send(app.request(Method::POST, &format!("{ledger_path}/restore"), Some(&user))).await,
        ),
    ];
    for (what, response) in hidden {
        problem(
            response,
            404,
            "not_found",
            &format!("a user's {what} on a staff-only collection"),
        )
        .await;
    }
    assert_eq!(footprint(&app).await, before, "nothing recorded");

    // read: [owner, staff]: another user cannot tell the memo exists.
    let created = app
        .post("/v1/vault/memo", &user, &json!({"text": "private"}))
        .await;
    assert_eq!(created.status(), 201, "a user creates a memo");
    let position = header(&created, "herald-position");
    let memo = json(created).await;
    let memo_path = format!("/v1/vault/memo/{}", id_of(&memo));
    assert_eq!(
        read_at(&app, &memo_path, &position, &user).await.status(),
        200,
        "its owner reads it"
    );
    let events = app.count("herald.events").await;
    let theirs = read_at(&app, &memo_path, &position, &other_user).await;
    problem(theirs, 404, "not_found", "another user's memo").await;
    let list = json(read_at(&app, "/v1/vault/memo", &position, &other_user).await).await;
    assert_eq!(data_len(&list), 0, "another user's list hides it: {list}");
    let list = json(read_at(&app, "/v1/vault/memo", &position, &user).await).await;
    assert_eq!(data_len(&list), 1, "its owner lists it: {list}");
    let patch = app
        .patch(&memo_path, &other_user, &json!({"text": "mine now"}))
        .await;
    problem(patch, 404, "not_found", "another user patching the memo").await;
    let delete = app.delete(&memo_path, &other_user).await;
    problem(delete, 404, "not_found", "another user archiving the memo").await;
    assert_eq!(
        app.count("herald.events").await,
        events,
        "refusals append nothing"
    );
    // Staff may read it but not update it (update: owner): 403, not 404.
    assert_eq!(
        read_at(&app, &memo_path, &position, &staff).await.status(),
        200
    );
    let patch = app
        .patch(&memo_path, &staff, &json!({"text": "edited"}))
        .await;
    problem(patch, 403, "forbidden", "staff patching a memo it can read").await;
    let own = app
        .patch(&memo_path, &user, &json!({"text": "still mine"}))
        .await;
    assert_eq!(own.status(), 200, "the owner updates");
    assert_eq!(
        app.delete(&memo_path, &user).await.status(),
        204,
        "the owner archives"
    );
    let restored =
        send(app.request(Method::POST, &format!("{memo_path}/restore"), Some(&user))).await;
    assert_eq!(restored.status(), 200, "the owner restores");

    // Unknown collections, malformed and unknown ids.
    for path in [
        "/v1/petstore/nope",
        "/v1/nope/product",
        "/v1/Petstore/product",
    ] {
        problem(
            app.get(path, &admin).await,
            404,
            "not_found",
            &format!("GET {path}"),
        )
        .await;
        problem(
            app.post(path, &admin, &body).await,
            404,
            "not_found",
            &format!("POST {path}"),
        )
        .await;
    }
    let unknown = uuid::Uuid::now_v7();
    let paths = [
        "/v1/petstore/product/not-a-uuid".to_owned(),
        "/v1/petstore/product/12345".to_owned(),
        format!("/v1/petstore/product/{unknown}"),
    ];
    let price = json!({"price": 1});
    for path in &paths {
        for token in [&admin, &user] {
            let who = if token == &admin { "admin" } else { "user" };
            problem(
                app.get(path, token).await,
                404,
                "not_found",
                &format!("{who} GET {path}"),
            )
            .await;
            problem(
                app.patch(path, token, &price).await,
                404,
                "not_found",
                &format!("{who} PATCH {path}"),
            )
            .await;
        }
        problem(
            app.delete(path, &admin).await,
            404,
            "not_found",
            &format!("admin DELETE {path}"),
        )
        .await;
        let restore =
            send(app.request(Method::POST, &format!("{path}/restore"), Some(&admin))).await;
        problem(restore, 404, "not_found", &format!("admin restore {path}")).await;
    }
    // A command id that is not a UUID, or that nobody sent.
    for path in [
        "/v1/commands/nope".to_owned(),
        format!("/v1/commands/{unknown}"),
    ] {
        problem(
            app.get(&path, &admin).await,
            404,
            "not_found",
            &format!("GET {path}"),
        )
        .await;
    }
    // (api/src/routes/documents.rs:62 `authorize`, called at :214/:235 before
    // the document is looked up): 403 for a document that does not exist.
    // CONTRACT (HTTP.md, Precise rules): "404 when the caller may not read the document ... (or it
    // does not exist ...); 403 when it may read it but not perform the action". A document that
    // does not exist cannot be read, so archiving it is 404 even for a caller without `delete`.
    let missing = format!("/v1/petstore/product/{unknown}");
    problem(
        app.delete(&missing, &staff).await,
        404,
        "not_found",
        "staff DELETE of an unknown id",
    )
    .await;
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Tenants
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tenants_cannot_see_or_touch_each_others_documents_or_commands() {
    let app = herald_tests::spawn_petstore().await;
    let staff_a = app.token("sam", &["staff"], "acme");
    let user_a = app.token("uma", &[], "acme");
    let admin_b = app.token("ada", &["admin"], "globex");
    let staff_b = app.token("sam", &["staff"], "globex");

    let supplier = app
        .create("petstore/supplier", &staff_a, &json!({"name": "Acme Pets"}))
        .await;
    let (command_id, done) = create_async(
        &app,
        "petstore/product",
        &staff_a,
        &json!({"name": "Leash", "price": 12, "cost": 4, "supplier": id_of(&supplier)}),
    )
    .await;
    let id = id_of(&done["result"]);
    let position = done["position"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/petstore/product/{id}");
    let status_path = format!("/v1/commands/{command_id}");
    assert_eq!(
        read_at(&app, &path, &position, &staff_a).await.status(),
        200,
        "tenant A reads its product"
    );
    assert_eq!(
        app.get(&status_path, &staff_a).await.status(),
        200,
        "its sender reads the command"
    );

    let before = footprint(&app).await;
    // Admin of another tenant: the document does not exist there. The view is caught up
    // (min_position), so a 404 is not a lagging view.
    problem(
        read_at(&app, &path, &position, &admin_b).await,
        404,
        "not_found",
        "B reads A's product",
    )
    .await;
    problem(
        app.patch(&path, &admin_b, &json!({"price": 0})).await,
        404,
        "not_found",
        "B patches A's product",
    )
    .await;
    problem(
        app.delete(&path, &admin_b).await,
        404,
        "not_found",
        "B archives A's product",
    )
    .await;
    let restore = send(app.request(Method::POST, &format!("{path}/restore"), Some(&admin_b))).await;
    problem(restore, 404, "not_found", "B restores A's product").await;
    problem(
        app.get(&status_path, &admin_b).await,
        404,
        "not_found",
        "B reads A's command",
    )
    .await;
    let list = json(read_at(&app, "/v1/petstore/product", &position, &admin_b).await).await;
    assert_eq!(data_len(&list), 0, "B's list is empty: {list}");
    let suppliers = json(read_at(&app, "/v1/petstore/supplier", &position, &admin_b).await).await;
    assert_eq!(
        data_len(&suppliers),
        0,
        "B's supplier list is empty: {suppliers}"
    );
    // The tenant comes from the token: a Herald-Tenant header cannot switch it.
    let switched = send(
        app.request(
            Method::GET,
            &format!("{path}?min_position={position}"),
            Some(&admin_b),
        )
        .header("herald-tenant", "acme"),
    )
    .await;
    problem(
        switched,
        404,
        "not_found",
        "B's token with Herald-Tenant: acme",
    )
    .await;
    // A command of the same tenant, sent by someone else, is not a user's business either.
    problem(
        app.get(&status_path, &user_a).await,
        404,
        "not_found",
        "another user reads the command",
    )
    .await;
    assert_eq!(
        footprint(&app).await.0,
        before.0,
        "B's attempts append no event"
    );

    // A reference may not point into another tenant.
    let cross = app
        .post(
            "/v1/petstore/product",
            &staff_b,
            &json!({"name": "Copycat", "price": 1, "supplier": id_of(&supplier)}),
        )
        .await;
    let body = problem(
        cross,
        422,
        "validation_failed",
        "B referencing A's supplier",
    )
    .await;
    assert_eq!(
        error_list(&body),
        [("/supplier".to_owned(), "ref_not_found".to_owned())],
        "{body}"
    );

    // Unique values are per tenant.
    let same_name = app
        .post(
            "/v1/petstore/product",
            &staff_b,
            &json!({"name": "Leash", "price": 3}),
        )
        .await;
    assert_eq!(
        same_name.status(),
        201,
        "the same unique name in another tenant"
    );
    let taken = app
        .post(
            "/v1/petstore/product",
            &staff_a,
            &json!({"name": "Leash", "price": 3}),
        )
        .await;
    problem(
        taken,
        409,
        "unique_violation",
        "the same name again in tenant A",
    )
    .await;

    // Idempotency keys are scoped per tenant: the same `sub` and key in tenant B is a new
    // command, never a replay of A's outcome (which would leak A's document).
    let keyed = |token: &str, name: &str| {
        app.request(Method::POST, "/v1/petstore/product", Some(token))
            .header("idempotency-key", "same-key")
            .json(&json!({"name": name, "price": 2}))
    };
    let in_a = send(keyed(&staff_a, "Bowl")).await;
    assert_eq!(in_a.status(), 201);
    let in_a = json(in_a).await;
    let in_b = send(keyed(&staff_b, "Bowl")).await;
    assert_eq!(in_b.status(), 201, "B's first use of the key creates in B");
    let in_b = json(in_b).await;
    assert_ne!(in_a["id"], in_b["id"], "B does not get A's replay");

    let a_view = json(app.get(&path, &staff_a).await).await;
    assert_eq!(a_view["version"], 1, "A's product is unchanged: {a_view}");
    assert_eq!(a_view["price"], 12);
    let streams = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM herald.events WHERE document_id = $1",
            &[&uuid::Uuid::parse_str(&id).unwrap_or_default()],
        )
        .await
        .map_or(-1, |r| r.get::<_, i64>(0));
    assert_eq!(streams, 1, "A's product has only its created event");
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Field access
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fields_a_caller_may_not_read_are_absent_and_may_not_be_written() {
    let app = spawn_security_app().await;
    let user = app.token("uma", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");

    // petstore.product.cost: {read: staff, write: staff}
    let created = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 12, "cost": 4}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let position = header(&created, "herald-position");
    let product = json(created).await;
    assert_eq!(product["cost"], 4, "staff sees cost in the create response");
    let path = format!("/v1/petstore/product/{}", id_of(&product));
    let staff_read = json(read_at(&app, &path, &position, &staff).await).await;
    assert_eq!(staff_read["cost"], 4, "staff reads cost");
    let user_read = json(read_at(&app, &path, &position, &user).await).await;
    assert_eq!(user_read["name"], "Leash", "{user_read}");
    assert!(
        user_read.get("cost").is_none(),
        "cost is absent for a user: {user_read}"
    );
    let user_list = json(read_at(&app, "/v1/petstore/product", &position, &user).await).await;
    assert_eq!(data_len(&user_list), 1);
    assert!(
        user_list["data"][0].get("cost").is_none(),
        "cost is absent from a user's list: {user_list}"
    );
    let staff_list = json(read_at(&app, "/v1/petstore/product", &position, &staff).await).await;
    assert_eq!(
        staff_list["data"][0]["cost"], 4,
        "and present in staff's list"
    );

    // shop.item: users create and own items, but `cost` (default 5) is staff-only.
    let events = app.count("herald.events").await;
    let refused = app
        .post("/v1/shop/item", &user, &json!({"name": "Ball", "cost": 1}))
        .await;
    let body = problem(
        refused,
        422,
        "validation_failed",
        "a user writing cost on create",
    )
    .await;
    assert!(
        error_list(&body).contains(&("/cost".to_owned(), "forbidden_field".to_owned())),
        "errors name /cost as forbidden_field: {body}"
    );
    assert_eq!(app.count("herald.events").await, events, "nothing appended");

    let created = app
        .post("/v1/shop/item", &user, &json!({"name": "Ball"}))
        .await;
    assert_eq!(created.status(), 201);
    let position = header(&created, "herald-position");
    let item = json(created).await;
    assert!(
        item.get("cost").is_none(),
        "the default cost is hidden from its creator: {item}"
    );
    let item_path = format!("/v1/shop/item/{}", id_of(&item));
    let staff_item = json(read_at(&app, &item_path, &position, &staff).await).await;
    assert_eq!(staff_item["cost"], 5, "the default is stored: {staff_item}");

    let events = app.count("herald.events").await;
    let refused = app.patch(&item_path, &user, &json!({"cost": 0})).await;
    let body = problem(refused, 422, "validation_failed", "the owner patching cost").await;
    assert_eq!(
        error_list(&body),
        [("/cost".to_owned(), "forbidden_field".to_owned())],
        "{body}"
    );
    let refused = app.patch(&item_path, &user, &json!({"cost": null})).await;
    let body = problem(refused, 422, "validation_failed", "the owner clearing cost").await;
    assert_eq!(
        error_list(&body),
        [("/cost".to_owned(), "forbidden_field".to_owned())],
        "{body}"
    );
    assert_eq!(app.count("herald.events").await, events, "nothing appended");

    let renamed = app
        .patch(&item_path, &user, &json!({"name": "Red ball"}))
        .await;
    assert_eq!(renamed.status(), 200, "the owner may change other fields");
    let renamed = json(renamed).await;
    assert!(
        renamed.get("cost").is_none(),
        "and still does not see cost: {renamed}"
    );
    let repriced = app.patch(&item_path, &staff, &json!({"cost": 7})).await;
    assert_eq!(repriced.status(), 200, "staff writes cost");
    assert_eq!(json(repriced).await["cost"], 7);
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Problems
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_refusal_is_a_problem_from_the_error_table() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let product = app
        .create(
            "petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 12}),
        )
        .await;
    let path = format!("/v1/petstore/product/{}", id_of(&product));
    let before = footprint(&app).await;
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let request = app.request(method, path, Some(&staff)).body(body);
        match content_type {
            Some(value) => request.header("content-type", value),
            None => request,
        }
    };
    let valid = br#"{"name": "Bowl", "price": 3}"#.to_vec();

    // 415
    for (method, target, content_type) in [
        (Method::POST, "/v1/petstore/product", Some("text/plain")),
        (Method::POST, "/v1/petstore/product", None),
        (
            Method::POST,
            "/v1/petstore/product",
            Some("application/x-www-form-urlencoded"),
        ),
        (Method::PATCH, path.as_str(), Some("text/plain")),
        (Method::PATCH, path.as_str(), None),
    ] {
        let what = format!("{method} with Content-Type {content_type:?}");
        let response = send(raw(method, target, content_type, valid.clone())).await;
        problem(response, 415, "unsupported_media_type", &what).await;
    }
    // 400 malformed_json
    let malformed: [(&str, Vec<u8>); 4] = [
        ("an empty body", Vec::new()),
        ("truncated JSON", br#"{"name": "Bowl", "price""#.to_vec()),
        (
            "invalid UTF-8",
            b"{\"name\": \"\xff\xfe\", \"price\": 3}".to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"name": "Bowl", "price": 3} x"#.to_vec(),
        ),
    ];
    for (what, body) in malformed {
        let response = send(raw(
            Method::POST,
            "/v1/petstore/product",
            Some("application/json"),
            body.clone(),
        ))
        .await;
        problem(
            response,
            400,
            "malformed_json",
            &format!("POST with {what}"),
        )
        .await;
        let response = send(raw(
            Method::PATCH,
            &path,
            Some("application/merge-patch+json"),
            body,
        ))
        .await;
        problem(
            response,
            400,
            "malformed_json",
            &format!("PATCH with {what}"),
        )
        .await;
    }
    // 413: just over the default 1 MiB limit.
    let huge = format!(
        r#"{{"name": "{}", "price": 1}}"#,
        "a".repeat(1024 * 1024 + 16)
    );
    let response = send(raw(
        Method::POST,
        "/v1/petstore/product",
        Some("application/json"),
        huge.into_bytes(),
    ))
    .await;
    problem(response, 413, "payload_too_large", "a body over 1 MiB").await;
    // 405 with Allow
    let restore_path = format!("{path}/restore");
    for (method, target, allowed) in [
        (Method::PUT, "/v1/petstore/product", &["GET", "POST"][..]),
        (Method::DELETE, "/v1/petstore/product", &["GET", "POST"][..]),
        (Method::PUT, path.as_str(), &["GET", "PATCH", "DELETE"][..]),
        (Method::GET, restore_path.as_str(), &["POST"][..]),
    ] {
        let response = send(app.request(method.clone(), target, Some(&staff))).await;
        let allow = header(&response, "allow");
        problem(
            response,
            405,
            "method_not_allowed",
            &format!("{method} {target}"),
        )
        .await;
        for verb in allowed {
            assert!(
                allow.contains(verb),
                "{method} {target}: Allow `{allow}` lacks {verb}"
            );
        }
    }
    // 404 for unknown routes: with a token inside /v1, and anywhere outside it.
    for target in [
        format!("{path}/restore/now"),
        "/v1/petstore/product/a/b/c/d".to_owned(),
        "/v1/".to_owned(),
    ] {
        problem(
            app.get(&target, &staff).await,
            404,
            "not_found",
            &format!("GET {target}"),
        )
        .await;
    }
    let outside = send(app.http.get(format!("{}/nope", app.base))).await;
    problem(outside, 404, "not_found", "an unknown route outside /v1").await;
    // 401 for unknown /v1 routes without a token (checked before routing).
    let anonymous = send(
        app.http
            .get(format!("{}/v1/nope/nope/nope/nope/nope", app.base)),
    )
    .await;
    problem(
        anonymous,
        401,
        "unauthenticated",
        "an unknown /v1 route without a token",
    )
    .await;
    // 422: every error at once.
    let invalid =
        json!({"price": -1, "status": "bogus", "sku": "no", "extra": 1, "tags": "x", "id": "mine"});
    let response = app.post("/v1/petstore/product", &staff, &invalid).await;
    let body = problem(response, 422, "validation_failed", "an invalid product").await;
    let errors = error_list(&body);
    for expected in [
        ("/name", "required"),
        ("/price", "minimum"),
        ("/status", "enum"),
        ("/sku", "pattern"),
        ("/extra", "unknown_field"),
        ("/tags", "type"),
        ("/id", "read_only"),
    ] {
        assert!(
            errors.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "422 lacks {expected:?}: {body}"
        );
    }
    let response = app
        .post("/v1/petstore/product", &staff, &json!([1, 2]))
        .await;
    problem(
        response,
        422,
        "validation_failed",
        "a body that is not an object",
    )
    .await;
    // Requests ids: echoed when sent, generated otherwise; always in the problem.
    let echoed = send(
        app.request(Method::GET, "/v1/petstore/nope", Some(&staff))
            .header("x-request-id", "abc-123"),
    )
    .await;
    assert_eq!(header(&echoed, "x-request-id"), "abc-123");
    let body = problem(echoed, 404, "not_found", "with X-Request-Id: abc-123").await;
    assert_eq!(body["request_id"], "abc-123");
    let echoed = send(
        app.request(Method::GET, "/v1/petstore/product", None)
            .header("authorization", "Bearer forged")
            .header("x-request-id", "abc-123"),
    )
    .await;
    let body = problem(echoed, 401, "unauthenticated", "a 401 with X-Request-Id").await;
    assert_eq!(
        body["request_id"], "abc-123",
        "the 401 echoes the client's request id"
    );
    let first = json(app.get("/v1/petstore/nope", &staff).await).await;
    let second = json(app.get("/v1/petstore/nope", &staff).await).await;
    assert_ne!(
        first["request_id"], second["request_id"],
        "generated request ids differ"
    );
    // Positive control: merge-patch+json is a JSON type for PATCH.
    let merge = send(raw(
        Method::PATCH,
        &path,
        Some("application/merge-patch+json; charset=utf-8"),
        br#"{"price": 13}"#.to_vec(),
    ))
    .await;
    assert_eq!(
        merge.status(),
        200,
        "PATCH accepts application/merge-patch+json"
    );
    assert_eq!(
        footprint(&app).await.0,
        before.0 + 1,
        "only the valid patch appended an event"
    );
    // Paths that do not percent-decode to UTF-8 are still unknown resources, still problems
    // (problems are `application/problem+json`, always).
    for target in [
        "/v1/petstore/%FF",
        "/v1/petstore/product/%FF%FE",
        "/v1/commands/%C3%28",
    ] {
        problem(
            app.get(target, &staff).await,
            404,
            "not_found",
            &format!("GET {target}"),
        )
        .await;
    }
    app.stop_and_clean().await;
}

#[tokio::test]
async fn invalid_query_parameters_are_400_naming_the_parameter() {
    let app = herald_tests::spawn_petstore().await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut position = String::new();
    let mut item = String::new();
    for name in ["A", "B", "C"] {
        let created = app
            .post(
                "/v1/petstore/product",
                &staff,
                &json!({"name": name, "price": 1}),
            )
            .await;
        assert_eq!(created.status(), 201);
        position = header(&created, "herald-position");
        item = format!("/v1/petstore/product/{}", id_of(&json(created).await));
    }
    let first = app
        .create("petstore/supplier", &staff, &json!({"name": "S"}))
        .await;
    let supplier = format!("/v1/petstore/supplier/{}", id_of(&first));
    let (supplier_position, supplier_bogus, item_bogus) = (
        format!("{supplier}?min_position=garbage"),
        format!("{supplier}?bogus=1"),
        format!("{item}?bogus=1"),
    );
    for (query, parameter) in [
        ("/v1/petstore/product?limit=0", "limit"),
        ("/v1/petstore/product?limit=201", "limit"),
        ("/v1/petstore/product?limit=-1", "limit"),
        ("/v1/petstore/product?limit=ten", "limit"),
        ("/v1/petstore/product?cursor=garbage", "cursor"),
        ("/v1/petstore/product?cursor=", "cursor"),
        ("/v1/petstore/product?min_position=garbage", "min_position"),
        ("/v1/petstore/product?bogus=1", "bogus"),
        (supplier_position.as_str(), "min_position"),
        (supplier_bogus.as_str(), "bogus"),
        (item_bogus.as_str(), "bogus"),
    ] {
        let body = problem(
            app.get(query, &staff).await,
            400,
            "invalid_query",
            &format!("GET {query}"),
        )
        .await;
        assert_eq!(
            body["errors"][0]["parameter"], parameter,
            "GET {query}: {body}"
        );
        assert!(
            body["errors"][0].get("pointer").is_none(),
            "query errors use `parameter`: {body}"
        );
    }
    for limit in [1, 200] {
        let ok = read_at(
            &app,
            &format!("/v1/petstore/product?limit={limit}"),
            &position,
            &staff,
        )
        .await;
        assert_eq!(ok.status(), 200, "limit={limit} is inside 1–200");
    }
    let page = json(read_at(&app, "/v1/petstore/product?limit=1", &position, &staff).await).await;
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    assert!(
        !cursor.is_empty(),
        "a first page of 1 has a next cursor: {page}"
    );
    let next = app
        .get(
            &format!("/v1/petstore/product?limit=1&cursor={cursor}"),
            &staff,
        )
        .await;
    assert_eq!(next.status(), 200, "a genuine cursor is accepted");
    // (api/src/views.rs:128-135: a cursor is the bare base64url UUID, with
    // no MAC, so any edit that still decodes is accepted).
    // CONTRACT (HTTP.md, Lists): "a tampered cursor → 400 naming the query parameter".
    let mut tampered: Vec<char> = cursor.chars().collect();
    tampered[0] = if tampered[0] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let response = app
        .get(
            &format!("/v1/petstore/product?limit=1&cursor={tampered}"),
            &staff,
        )
        .await;
    let body = problem(response, 400, "invalid_query", "a tampered cursor").await;
    assert_eq!(body["errors"][0]["parameter"], "cursor");
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Anonymous callers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_callers_reach_only_public_actions_in_the_named_tenant() {
    let app = spawn_security_app().await;
    let staff = app.token("sam", &["staff"], "t1");
    let created = app
        .post(
            "/v1/board/notice",
            &staff,
            &json!({"title": "Open", "internal": "staff only"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let position = header(&created, "herald-position");
    let notice = json(created).await;
    let notice_path = format!("/v1/board/notice/{}", id_of(&notice));
    let product = app
        .post(
            "/v1/petstore/product",
            &staff,
            &json!({"name": "Leash", "price": 1}),
        )
        .await;
    assert_eq!(product.status(), 201);
    let product_position = header(&product, "herald-position");
    let product_path = format!("/v1/petstore/product/{}", id_of(&json(product).await));
    // The product view has it, so the anonymous refusals below are not a lagging view.
    assert_eq!(
        read_at(&app, &product_path, &product_position, &staff)
            .await
            .status(),
        200
    );

    let anonymous = |method: Method, path: &str, tenant: Option<&str>| {
        let request = app.http.request(method, format!("{}{path}", app.base));
        match tenant {
            Some(tenant) => request.header("herald-tenant", tenant),
            None => request,
        }
    };
    let with_position = |path: &str| format!("{path}?min_position={position}");

    let list = send(anonymous(
        Method::GET,
        &with_position("/v1/board/notice"),
        Some("t1"),
    ))
    .await;
    assert_eq!(list.status(), 200, "read: public lists without a token");
    let list = json(list).await;
    assert_eq!(data_len(&list), 1, "{list}");
    assert!(
        list["data"][0].get("internal").is_none(),
        "staff-only fields stay hidden: {list}"
    );
    let read = send(anonymous(
        Method::GET,
        &with_position(&notice_path),
        Some("t1"),
    ))
    .await;
    assert_eq!(read.status(), 200, "read: public reads without a token");
    let read = json(read).await;
    assert_eq!(read["title"], "Open");
    assert!(read.get("internal").is_none(), "{read}");
    let elsewhere = send(anonymous(
        Method::GET,
        &with_position("/v1/board/notice"),
        Some("t2"),
    ))
    .await;
    assert_eq!(elsewhere.status(), 200);
    assert_eq!(
        data_len(&json(elsewhere).await),
        0,
        "another tenant's public list is its own"
    );
    // Another tenant's public document does not exist here. Anonymous callers are told to
    // authenticate (401) wherever a signed-in caller would get 404; either way, no document.
    let elsewhere = send(anonymous(
        Method::GET,
        &with_position(&notice_path),
        Some("t2"),
    ))
    .await;
    let status = elsewhere.status().as_u16();
    let code = if status == 401 {
        "unauthenticated"
    } else {
        "not_found"
    };
    problem(
        elsewhere,
        if status == 401 { 401 } else { 404 },
        code,
        "anonymous in t2 reading t1's notice",
    )
    .await;

    let before = footprint(&app).await;
    let body = json!({"title": "Spam"});
    let refusals = [
        (
            "create a notice",
            anonymous(Method::POST, "/v1/board/notice", Some("t1")).json(&body),
        ),
        (
            "update a notice",
            anonymous(Method::PATCH, &notice_path, Some("t1")).json(&body),
        ),
        (
            "archive a notice",
            anonymous(Method::DELETE, &notice_path, Some("t1")),
        ),
        (
            "restore a notice",
            anonymous(Method::POST, &format!("{notice_path}/restore"), Some("t1")),
        ),
        (
            "list products (read: user)",
            anonymous(Method::GET, "/v1/petstore/product", Some("t1")),
        ),
        (
            "read a product",
            anonymous(Method::GET, &product_path, Some("t1")),
        ),
        (
            "patch a product",
            anonymous(Method::PATCH, &product_path, Some("t1")).json(&json!({"price": 0})),
        ),
        (
            "list an unknown collection",
            anonymous(Method::GET, "/v1/board/nope", Some("t1")),
        ),
        (
            "read a command",
            anonymous(
                Method::GET,
                &format!("/v1/commands/{}", uuid::Uuid::now_v7()),
                Some("t1"),
            ),
        ),
        (
            "list notices without Herald-Tenant",
            anonymous(Method::GET, "/v1/board/notice", None),
        ),
        (
            "read a notice without Herald-Tenant",
            anonymous(Method::GET, &notice_path, None),
        ),
        (
            "list notices with an empty Herald-Tenant",
            anonymous(Method::GET, "/v1/board/notice", Some("")),
        ),
        (
            "list notices with an invalid Herald-Tenant",
            anonymous(Method::GET, "/v1/board/notice", Some("t1/../t2")),
        ),
    ];
    for (what, request) in refusals {
        problem(
            send(request).await,
            401,
            "unauthenticated",
            &format!("anonymous: {what}"),
        )
        .await;
    }
    assert_eq!(
        footprint(&app).await,
        before,
        "anonymous refusals record nothing"
    );

    // create: public, update: owner. An anonymous caller may sign the guestbook but owns
    // nothing: no one, whatever its `sub`, becomes the owner of an anonymous entry.
    let signed = send(
        anonymous(Method::POST, "/v1/board/guestbook", Some("t1")).json(&json!({"text": "hi"})),
    )
    .await;
    assert_eq!(
        signed.status(),
        201,
        "create: public admits anonymous callers"
    );
    let entry = json(signed).await;
    let entry_path = format!("/v1/board/guestbook/{}", id_of(&entry));
    let edit = json!({"text": "defaced"});
    let again = send(anonymous(Method::PATCH, &entry_path, Some("t1")).json(&edit)).await;
    problem(
        again,
        401,
        "unauthenticated",
        "anonymous: update an anonymous entry",
    )
    .await;
    let user = app.token("uma", &[], "t1");
    problem(
        app.patch(&entry_path, &user, &edit).await,
        403,
        "forbidden",
        "a user updating an anonymous entry",
    )
    .await;
    // (bus/src/access.rs:79 compares `created_by` with `sub`, and
    // access.rs:108 records anonymous callers as `created_by: "anonymous"`).
    // CONTRACT (HTTP.md, Auth): `owner` is "the caller created the document". A signed-in
    // caller whose `sub` happens to be `anonymous` did not create it.
    let impostor = app.token("anonymous", &[], "t1");
    problem(
        app.patch(&entry_path, &impostor, &edit).await,
        403,
        "forbidden",
        "a token with sub `anonymous` updating an anonymous entry",
    )
    .await;
    app.stop_and_clean().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Public operations routes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_routes_are_public() {
    let app = herald_tests::spawn_petstore().await;
    for path in ["/healthz", "/readyz"] {
        for authorization in [None, Some("Bearer garbage"), Some("Basic YWRtaW46YWRtaW4=")] {
            let mut request = app.http.get(format!("{}{path}", app.base));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = send(request).await;
            assert_eq!(response.status(), 200, "{path} with {authorization:?}");
            assert!(
                header(&response, "content-type").starts_with("application/json"),
                "{path} answers JSON"
            );
            assert!(
                !header(&response, "x-request-id").is_empty(),
                "{path} carries X-Request-Id"
            );
            let body = json(response).await;
            assert!(body.is_object(), "{path}: {body}");
        }
    }
    app.stop_and_clean().await;
}
