//! Tokens from an identity provider that rotates its keys (`auth.jwks_url`): a local JWKS server
//! whose key set the test changes. New keys are picked up without a restart, removed keys stop
//! working, an outage keeps the known keys, and nothing unverifiable gets in: a forged `kid`,
//! a token signed with the HMAC of a public key, a symmetric key published in the set.
//!
//! The RSA keys in `tests/fixtures/jwks` are test keys, generated for these tests only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use herald_bus::settings::Settings;
use herald_tests::{Options, TestApp, eventually, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value, json};

const ONE: (&str, &str) = ("key-one", include_str!("../fixtures/jwks/one.pem"));
const TWO: (&str, &str) = ("key-two", include_str!("../fixtures/jwks/two.pem"));

fn jwk(name: &str) -> Value {
    let text = match name {
        "key-one" => include_str!("../fixtures/jwks/one.jwk.json"),
        _ => include_str!("../fixtures/jwks/two.jwk.json"),
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

/// What the provider answers, and how often it was asked.
#[derive(Clone, Default)]
struct Provider {
    answer: Arc<Mutex<(StatusCode, String)>>,
    fetches: Arc<AtomicUsize>,
}

impl Provider {
    fn serve(&self, keys: &[Value]) {
        self.answer_with(StatusCode::OK, json!({"keys": keys}).to_string());
    }

    fn answer_with(&self, status: StatusCode, body: String) {
        *self
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (status, body);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn key_set(State(provider): State<Provider>) -> impl IntoResponse {
    provider.fetches.fetch_add(1, Ordering::SeqCst);
    let (status, body) = provider
        .answer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    (status, [("content-type", "application/json")], body)
}

static JWKS_URL: OnceLock<String> = OnceLock::new();

fn with_provider(settings: &mut Settings) {
    settings.auth.jwks_url = JWKS_URL.get().cloned();
    settings.auth.algorithms = vec!["HS256".to_owned(), "RS256".to_owned()];
    settings.auth.jwks_min_refetch_secs = 1;
}

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({"sub": "ida", "tid": "acme", "roles": ["staff"], "iss": "herald", "aud": "herald",
           "exp": now + 600, "iat": now})
}

/// A token signed with `key`'s private half, naming `kid`.
fn signed(key: (&str, &str), kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let private = EncodingKey::from_rsa_pem(key.1.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    encode(&header, &claims(), &private).unwrap_or_else(|e| panic!("{e}"))
}

async fn status(app: &TestApp, token: &str) -> u16 {
    send(app.request(Method::GET, "/v1/petstore/product", Some(token)))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn keys_rotate_without_a_restart_and_nothing_unverifiable_gets_in() {
    let provider = Provider::default();
    provider.serve(&[jwk("key-one")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = Router::new()
        .route("/jwks.json", get(key_set))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, server).await });
    JWKS_URL
        .set(format!("http://{addr}/jwks.json"))
        .unwrap_or_else(|_| panic!("one provider per test binary"));
    let app = TestApp::spawn_with(Options {
        configure: with_provider,
        ..herald_tests::petstore()
    })
    .await;

    assert_eq!(
        status(&app, &signed(ONE, "key-one")).await,
        200,
        "fetched at start"
    );
    let staff = app.as_staff("sam");
    assert_eq!(
        staff.get("/v1/petstore/product").await.status(),
        200,
        "Herald's own HS256 tokens still work"
    );

    // The provider rotates: key two in, key one out. No restart.
    provider.serve(&[jwk("key-two")]);
    let rotated = signed(TWO, "key-two");
    eventually("a token of the new key to be accepted", || async {
        (status(&app, &rotated).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status(&app, &signed(ONE, "key-one")).await,
        401,
        "a key the provider removed verifies nothing"
    );

    // Made-up `kid`s cannot make Herald hammer the provider.
    let before = provider.fetches();
    for i in 0..20 {
        assert_eq!(
            status(&app, &signed(TWO, &format!("made-up-{i}"))).await,
            401
        );
    }
    assert!(
        provider.fetches() - before <= 2,
        "{} fetches for 20 unknown keys",
        provider.fetches() - before
    );

    // The provider goes down, then answers garbage: the known keys stay, unknown ones stay out.
    for (answer, body) in [
        (StatusCode::INTERNAL_SERVER_ERROR, "oops".to_owned()),
        (StatusCode::OK, "{\"keys\": 3".to_owned()),
        (
            StatusCode::OK,
            format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(2 << 20)),
        ),
    ] {
        provider.answer_with(answer, body);
        let before = provider.fetches();
        let unknown = signed(ONE, "key-one");
        eventually("Herald to fetch the set again", || async {
            (status(&app, &unknown).await == 401 && provider.fetches() > before).then_some(())
        })
        .await;
        assert_eq!(
            status(&app, &rotated).await,
            200,
            "the known key still works"
        );
    }

    // Algorithm confusion: an HS256 token keyed with the provider's public key material.
    let modulus = jwk("key-two")["n"].as_str().unwrap_or_default().to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-two".to_owned());
    let confused = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(modulus.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status(&app, &confused).await, 401);

    // A symmetric key in the set is public: it is never taken.
    let secret = "a-symmetric-key-anyone-can-read-here";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let oct = json!({"kty": "oct", "kid": "shared", "k": k, "alg": "HS256"});
    provider.serve(&[jwk("key-two"), oct]);
    let before = provider.fetches();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("shared".to_owned());
    let forged = encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("the set with the symmetric key to be fetched", || async {
        (status(&app, &forged).await == 401 && provider.fetches() > before).then_some(())
    })
    .await;
    assert_eq!(status(&app, &rotated).await, 200);
    app.stop_and_clean().await;
}
