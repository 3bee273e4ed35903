//! An isolated Herald for one test: [`TestApp`] runs every role in the test's process against
//! real PostgreSQL and NATS JetStream, with its own database cloned from a migrated template,
//! its own stream/subject prefix, and a port picked by the OS.
//!
//! Services are found through `HERALD_TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `HERALD_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4222`); see [`crate::services`].

// A test harness: a row it cannot decode fails the test, as an assertion would.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_bus::schema::Registry;
use herald_bus::settings::Settings;
use herald_cli::App;
use herald_cli::server::{Herald, Role};
use reqwest::{Method, RequestBuilder};
use secrecy::SecretString;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::services::{admin_client, create_test_database, database_url, nats_url, random_lower};

/// How long a test waits for something asynchronous before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Writes `(app, doc, yaml)` sources into a fresh apps folder.
pub fn write_apps(sources: &[(&str, &str, &str)]) -> anyhow::Result<PathBuf> {
    let root = std::env::temp_dir().join(format!("herald-apps-{}", random_lower(12)));
    for (app, doc, yaml) in sources {
        let dir = root.join(app);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{doc}.yaml")), yaml)?;
    }
    Ok(root)
}

/// The tenant of the identities [`TestApp::as_user`] and the like call as; its administrators
/// operate the installation too.
pub const TENANT: &str = "acme";

/// How to start a [`TestApp`].
#[derive(Clone)]
pub struct Options {
    /// The folder of the app's YAML (`apps/`, relative to the crate under test, by default).
    pub apps: PathBuf,
    pub roles: Vec<Role>,
    /// Reuse a database (to restart an app); a new one when `None`.
    pub database: Option<String>,
    /// Reuse a NATS prefix (to restart an app); a new one when `None`.
    pub prefix: Option<String>,
    pub secret: Option<String>,
    /// The Rust code of the app's commands and tasks.
    pub app: App,
    /// Adjusts the settings the app is built with.
    pub configure: fn(&mut Settings),
}

impl Options {
    /// The app whose YAML is in `apps/` (cargo runs tests in the crate's folder) and whose Rust
    /// code is `app`, with every role.
    pub fn for_app(app: App) -> Self {
        Self {
            apps: PathBuf::from("apps"),
            roles: Role::ALL.to_vec(),
            database: None,
            prefix: None,
            secret: None,
            app,
            configure: |_| {},
        }
    }
}

impl Default for Options {
    /// The YAML in `apps/`, with no Rust code.
    fn default() -> Self {
        Self::for_app(App::new())
    }
}

/// A running Herald for one test.
pub struct TestApp {
    pub addr: Option<SocketAddr>,
    pub base: String,
    pub http: reqwest::Client,
    pub settings: Settings,
    pub database: String,
    pub prefix: String,
    /// The app's documents, as the running Herald loaded them.
    pub registry: Registry,
    options: Options,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// The YAML in `apps/` with no Rust code; see [`Options::for_app`] for an app with code.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        match Self::try_spawn(options).await {
            Ok(app) => app,
            Err(error) => panic!("test app failed to start: {error:#}"),
        }
    }

    async fn try_spawn(options: Options) -> anyhow::Result<Self> {
        herald_bus::telemetry::init(&herald_bus::settings::LogSettings {
            format: herald_bus::settings::LogFormat::Human,
            level: std::env::var("HERALD_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        });
        let database = match options.database {
            Some(name) => name,
            None => create_test_database().await?,
        };
        let prefix = options
            .prefix
            .unwrap_or_else(|| format!("t{}", random_lower(10)));
        let (mut registry, _) = herald_workers::declare::load(&options.apps)
            .map_err(|errors| anyhow::anyhow!("the app's YAML does not load:\n{errors}"))?;
        let mut settings = Settings::default();
        settings.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.database.url = SecretString::from(database_url(&database));
        settings.database.pool_size = 8;
        settings.nats.url = nats_url();
        settings.nats.prefix.clone_from(&prefix);
        settings.apps.dir.clone_from(&options.apps);
        settings.handler.concurrency = 16;
        let secret = options.secret.clone().unwrap_or_else(|| random_lower(32));
        settings.auth.hs256_secret = Some(SecretString::from(secret.clone()));
        settings.auth.operator_tenant = Some(TENANT.to_owned());
        // Tests drive one caller as fast as answers come; a test of rate limiting turns it on
        // in `configure`.
        settings.http.rate_limit_per_second = 0;
        (options.configure)(&mut settings);
        if settings.identity.enabled {
            registry = registry
                .with_identity()
                .map_err(|problem| anyhow::anyhow!(problem))?;
        }
        let herald = Herald::build(settings.clone(), &options.roles, options.app.clone()).await?;
        let addr = herald.api_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let handle =
            tokio::spawn(async move { herald.run_until_stopped(stop.cancelled_owned()).await });
        Ok(Self {
            base: addr.map(|a| format!("http://{a}")).unwrap_or_default(),
            addr,
            http: reqwest::Client::new(),
            settings,
            options: Options {
                database: Some(database.clone()),
                prefix: Some(prefix.clone()),
                secret: Some(secret),
                ..options
            },
            database,
            prefix,
            registry,
            shutdown,
            handle,
        })
    }

    /// Options that restart this app's state (same database, prefix, secret, YAML and code) in a
    /// new process, with every role.
    pub fn restart_options(&self) -> Options {
        Options {
            roles: Role::ALL.to_vec(),
            ..self.options.clone()
        }
    }

    /// Stops gracefully and waits for every role to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }

    /// Stops and removes this test's NATS streams.
    pub async fn stop_and_clean(self) {
        let settings = self.settings.clone();
        let stopped = self.stop().await;
        if let Ok(bus) = herald_bus::nats::Bus::connect(&settings.nats).await {
            for stream in [
                bus.commands_stream(),
                bus.events_stream(),
                herald_workers::queue::stream_name(&bus),
            ] {
                drop(bus.jetstream.delete_stream(&stream).await);
            }
        }
        if let Err(error) = stopped {
            panic!("the app did not stop cleanly: {error:#}");
        }
    }

    /// A token for `sub` in `tenant` with `roles`, valid for an hour.
    pub fn token(&self, sub: &str, roles: &[&str], tenant: &str) -> String {
        self.token_ttl(sub, roles, tenant, 3600)
    }

    pub fn token_ttl(&self, sub: &str, roles: &[&str], tenant: &str, ttl: u64) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        match herald_api::auth::issue_token(&self.settings.auth, sub, tenant, &roles, ttl) {
            Ok(token) => token,
            Err(error) => panic!("cannot sign a test token: {error}"),
        }
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        send(self.request(Method::GET, path, Some(token))).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        send(self.request(Method::POST, path, Some(token)).json(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        send(self.request(Method::PATCH, path, Some(token)).json(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        send(self.request(Method::DELETE, path, Some(token))).await
    }

    /// Creates a document and returns its JSON (panics unless `201`).
    pub async fn create(&self, collection: &str, token: &str, body: &Value) -> Value {
        created(
            collection,
            self.post(&format!("/v1/{collection}"), token, body).await,
        )
        .await
    }

    /// How many rows `table` (e.g. `herald.events`) holds in this test's database.
    pub async fn count(&self, table: &str) -> i64 {
        match self
            .db()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
        {
            Ok(row) => row.get(0),
            Err(error) => panic!("count {table}: {error}"),
        }
    }

    /// A pool on this test's event store, for driving the store, handler or projector directly.
    pub fn store(&self) -> herald_bus::store::PgStore {
        match herald_bus::store::PgStore::connect(&self.settings.database) {
            Ok(store) => store,
            Err(error) => panic!("{error}"),
        }
    }

    /// A direct connection to this test's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        match admin_client(&database_url(&self.database)).await {
            Ok(client) => client,
            Err(error) => panic!("{error:#}"),
        }
    }
}

/// The document a create answered with; anything but `201` fails the test.
pub(crate) async fn created(collection: &str, response: reqwest::Response) -> Value {
    let status = response.status();
    let json: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 201, "create {collection} failed: {json}");
    json
}

/// Sends a request; a transport failure fails the test.
pub async fn send(builder: RequestBuilder) -> reqwest::Response {
    match builder.send().await {
        Ok(response) => response,
        Err(error) => panic!("request failed: {error}"),
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

/// A response header as text (empty when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The response body as JSON (`Null` when there is none).
pub async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap_or(Value::Null)
}

/// Whether the rows reads see for `collection` equal the folded state each stream keeps (every
/// stream has its row, with the same version and fields).
pub async fn view_matches_the_log(app: &TestApp, collection: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE v.id IS NULL OR v.version <> s.version
                                    OR v.doc <> s.snapshot->'fields'),
                count(*)
         FROM herald.streams s
         LEFT JOIN {} v ON v.tenant = s.tenant AND s.stream_id = $1 || '.' || v.id
         WHERE s.collection = $1",
        herald_projector::read_relation(collection)
    );
    let rows = app
        .db()
        .await
        .query(&sql, &[&collection])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (different, all): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    different == 0 && all > 0
}

/// The event ids of the whole log, in log order.
pub async fn log_ids(app: &TestApp) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT event_id::text FROM herald.events ORDER BY tx_id, position",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every message of the test's events stream, in stream order: (subject, payload).
pub async fn relayed(app: &TestApp) -> Vec<(String, Value)> {
    let bus = herald_bus::nats::Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Ok(mut stream) = bus.jetstream.get_stream(bus.events_stream()).await else {
        return Vec::new();
    };
    let last = stream
        .info()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .state
        .last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        let message = stream
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let payload: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
        messages.push((message.subject.to_string(), payload));
    }
    messages
}
