//! One typed settings tree, layered: built-in defaults → an optional TOML file → `HERALD_*`
//! environment variables (`HERALD_DATABASE__URL` sets `database.url`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub identity: IdentitySettings,
    pub log: LogSettings,
    pub apps: AppsSettings,
    pub handler: HandlerSettings,
    pub projector: ProjectorSettings,
    pub streams: StreamSettings,
    pub relay: RelaySettings,
    pub metrics: MetricsSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a write waits for its outcome before answering `202`, in milliseconds.
    pub default_wait_ms: u64,
    /// How long a read with `min_position` waits for the view by default, in milliseconds.
    pub default_read_wait_ms: u64,
    /// Upper bound for `Prefer: wait=N`, in seconds.
    pub max_wait_secs: u64,
    /// How long a list query may run in Postgres before it is cancelled, in milliseconds.
    pub query_timeout_ms: u64,
    /// Requests per second each caller may make on average (0 turns limiting off).
    pub rate_limit_per_second: u32,
    /// Requests a caller may make at once above the average.
    pub rate_limit_burst: u32,
    /// How long a client may take to send a request head, from its connecting (or from the
    /// first byte after an idle spell), in milliseconds.
    pub head_timeout_ms: u64,
    /// How long a client may take to send a request's whole body, from its head, in
    /// milliseconds.
    pub body_timeout_ms: u64,
    /// How long a connection may stay idle between requests, in milliseconds.
    pub idle_timeout_ms: u64,
    /// How long an answer may wait on a client that does not read it, in milliseconds.
    pub write_timeout_ms: u64,
    /// Open connections in all; 0 derives the cap from the open-files limit, keeping headroom
    /// for Postgres, NATS and files.
    pub max_connections: usize,
    /// Open connections from one client address (0: no cap).
    pub max_connections_per_address: usize,
    /// Addresses of proxies in front of Herald: each carries many clients, so the per-address
    /// cap does not apply to it.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The listen backlog; 0 takes the system's maximum (`net.core.somaxconn`).
    pub backlog: u32,
    /// Which pages on other origins may call the api from a browser (none by default).
    pub cors: CorsSettings,
    /// `Strict-Transport-Security: max-age=…` on every answer, for a Herald served over HTTPS
    /// (0 sends none).
    pub hsts_max_age_secs: u64,
}

/// Cross-origin requests from browsers: denied unless the origin is listed exactly.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins allowed, each exactly `scheme://host[:port]`, e.g. `https://app.example.com`.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    /// Request headers a page may send besides the ones browsers always allow.
    pub allowed_headers: Vec<String>,
    /// How long a browser may keep a preflight's answer, in seconds.
    pub max_age_secs: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: owned(&["GET", "POST", "PATCH", "DELETE"]),
            allowed_headers: owned(&[
                "authorization",
                "content-type",
                "idempotency-key",
                "if-match",
                "if-none-match",
                "prefer",
                "last-event-id",
                "traceparent",
                "herald-tenant",
            ]),
            max_age_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// A libpq-style URL. It may hold a password, so it is never logged.
    #[serde(deserialize_with = "secret")]
    pub url: SecretString,
    pub pool_size: usize,
    /// How long a request may wait for a connection (or to open one), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Bounds how long an idle transaction may hold back the log's safe frontier, in seconds.
    pub idle_in_transaction_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// One server, or several separated by commas (the members of a cluster): the client
    /// connects to any that answers and moves to another when it goes away.
    pub url: String,
    /// Every stream, consumer and subject name starts with it, so environments share one server.
    pub prefix: String,
    /// Replicas of each stream Herald creates (1, or 3 or 5 on a JetStream cluster).
    pub replicas: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The HS256 signing key. Required to serve; `herald dev` makes one for local use.
    #[serde(deserialize_with = "optional_secret")]
    pub hs256_secret: Option<SecretString>,
    /// A PEM public key for RS256/ES256/EdDSA tokens, when those are allowed.
    pub public_key_pem: Option<PathBuf>,
    /// Accepted `alg` values; anything else (and `none`) is refused.
    pub algorithms: Vec<String>,
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    /// The tenant whose `admin`s operate the installation: `/v1/admin/…` and `/metrics` act on
    /// every tenant's data, so an admin of any other tenant is refused. Unset: nobody but the
    /// metrics scrape token gets in.
    pub operator_tenant: Option<String>,
    /// An identity provider's key set (JWKS): tokens naming a `kid` are verified with its keys.
    pub jwks_url: Option<String>,
    /// How often the key set is fetched again, in seconds.
    pub jwks_refresh_secs: u64,
    /// The shortest time between two fetches caused by tokens naming unknown keys, in seconds.
    pub jwks_min_refetch_secs: u64,
}

/// The built-in login: users of the document `auth.user`, tokens signed by Herald's own key.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySettings {
    /// Off unless set: without it there is no `auth.user` and no `/v1/auth/token`.
    pub enabled: bool,
    /// How long an access token lives, in seconds.
    pub access_token_ttl_secs: u64,
    /// How long a refresh token lives unused, in seconds; each use hands out a new one.
    pub refresh_token_ttl_secs: u64,
    /// Sign-in attempts per minute for one account, from anywhere.
    pub logins_per_minute_per_account: u32,
    /// Sign-in and refresh attempts per minute from one address.
    pub logins_per_minute_per_address: u32,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            enabled: false,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 14 * 24 * 3600,
            logins_per_minute_per_account: 10,
            logins_per_minute_per_address: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `herald_bus=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsSettings {
    /// The folder holding one sub-folder per app.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandlerSettings {
    /// Commands decided concurrently by one handler process.
    pub concurrency: usize,
    /// Attempts at one command when concurrent writers keep moving its stream's version.
    pub max_conflict_retries: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectorSettings {
    /// Events applied per transaction while a view follows the log.
    pub batch_size: i64,
    /// Events applied per transaction while a new version is built from the start.
    pub rebuild_batch_size: i64,
    /// How often a standby asks for a projection's lease, in milliseconds.
    pub lease_retry_ms: u64,
    /// `/readyz` fails when an active view's oldest unapplied event is older than this.
    pub max_lag_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Seconds between heartbeat comments on an idle event stream.
    pub heartbeat_secs: u64,
    /// Events buffered for each live subscriber; one that falls further behind is dropped
    /// with a final `event: lagged` (it resumes with `Last-Event-ID`).
    pub buffer: usize,
    /// Open event streams one api process accepts; more get `503`.
    pub max_subscribers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// How long `<PREFIX>_EVENTS` keeps an event, in seconds.
    pub max_age_secs: u64,
    /// Events published per batch (acks are awaited once per batch).
    pub batch_size: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// A bearer token Prometheus may scrape `/metrics` with, besides admin tokens.
    #[serde(deserialize_with = "optional_secret")]
    pub scrape_token: Option<SecretString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Signing secrets of webhook tasks by the name `tasks.yaml` gives them (`secret: <name>`),
    /// each `whsec_` + base64 as Standard Webhooks writes them; e.g.
    /// `HERALD_WEBHOOKS__SECRETS__WAREHOUSE`. Never logged.
    #[serde(deserialize_with = "secret_map")]
    pub secrets: std::collections::HashMap<String, SecretString>,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            rebuild_batch_size: 5_000,
            lease_retry_ms: 1_000,
            max_lag_secs: 60,
        }
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            heartbeat_secs: 15,
            buffer: 1_024,
            max_subscribers: 10_000,
        }
    }
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            max_age_secs: 7 * 24 * 3600,
            batch_size: 1_000,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1024 * 1024,
            default_wait_ms: 5_000,
            default_read_wait_ms: 2_000,
            max_wait_secs: 60,
            query_timeout_ms: 5_000,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            head_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            max_connections: 0,
            max_connections_per_address: 4_096,
            trusted_proxies: Vec::new(),
            backlog: 0,
            cors: CorsSettings::default(),
            hsts_max_age_secs: 0,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/herald"),
            pool_size: 16,
            connect_timeout_ms: 3_000,
            idle_in_transaction_timeout_secs: 30,
        }
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            prefix: "herald".to_owned(),
            replicas: 1,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            public_key_pem: None,
            algorithms: vec!["HS256".to_owned()],
            issuer: "herald".to_owned(),
            audience: "herald".to_owned(),
            leeway_secs: 30,
            operator_tenant: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            jwks_min_refetch_secs: 10,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            // The driver reports server notices ("already exists, skipping") at info.
            level: "info,tokio_postgres=warn".to_owned(),
        }
    }
}

impl Default for AppsSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("apps"),
        }
    }
}

impl Default for HandlerSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            max_conflict_retries: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("nats.prefix `{0}` must match [a-z][a-z0-9]* (it names streams and subjects)")]
    Prefix(String),
    #[error(
        "auth.hs256_secret (HERALD_AUTH__HS256_SECRET) must be at least {MIN_HS256_SECRET} bytes (RFC 7518 §3.2): an empty or short key lets tokens be forged"
    )]
    WeakSecret,
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "http.cors.allowed_origins: `{0}` is not an origin: expected exactly scheme://host[:port], \
         such as https://app.example.com (no path, no wildcard)"
    )]
    Origin(String),
    #[error("http.cors: `{0}` is not a method or header name")]
    CorsName(String),
    #[error("nats.replicas is {0}: JetStream keeps 1 to {MAX_REPLICAS} replicas of a stream")]
    Replicas(usize),
}

/// An HTTP token: a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `scheme://host[:port]` as a browser sends it in `Origin`: no path, query, user or wildcard.
fn is_origin(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|host| !host.contains('*'))
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.origin().ascii_serialization() == text
    })
}

/// The shortest HS256 key accepted: as long as the hash output.
pub const MIN_HS256_SECRET: usize = 32;
/// The most replicas JetStream keeps of a stream.
pub const MAX_REPLICAS: usize = 5;

impl Settings {
    /// Defaults, then `file` when given (or `herald.toml` when present), then `HERALD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut figment = Figment::new();
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("herald.toml")),
        }
        let settings: Settings = figment
            .merge(Env::prefixed("HERALD_").split("__"))
            .extract()
            .map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        use secrecy::ExposeSecret;
        if self
            .auth
            .hs256_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < MIN_HS256_SECRET)
        {
            return Err(SettingsError::WeakSecret);
        }
        let counts = [
            ("projector.batch_size", self.projector.batch_size),
            (
                "projector.rebuild_batch_size",
                self.projector.rebuild_batch_size,
            ),
            ("relay.batch_size", self.relay.batch_size),
            (
                "streams.buffer",
                i64::try_from(self.streams.buffer).unwrap_or(i64::MAX),
            ),
            (
                "streams.heartbeat_secs",
                i64::try_from(self.streams.heartbeat_secs).unwrap_or(i64::MAX),
            ),
            (
                "http.query_timeout_ms",
                i64::try_from(self.http.query_timeout_ms).unwrap_or(i64::MAX),
            ),
            (
                "http.head_timeout_ms",
                i64::try_from(self.http.head_timeout_ms).unwrap_or(i64::MAX),
            ),
            (
                "http.body_timeout_ms",
                i64::try_from(self.http.body_timeout_ms).unwrap_or(i64::MAX),
            ),
            (
                "http.idle_timeout_ms",
                i64::try_from(self.http.idle_timeout_ms).unwrap_or(i64::MAX),
            ),
            (
                "http.write_timeout_ms",
                i64::try_from(self.http.write_timeout_ms).unwrap_or(i64::MAX),
            ),
            (
                "identity.access_token_ttl_secs",
                i64::try_from(self.identity.access_token_ttl_secs).unwrap_or(i64::MAX),
            ),
            (
                "identity.refresh_token_ttl_secs",
                i64::try_from(self.identity.refresh_token_ttl_secs).unwrap_or(i64::MAX),
            ),
            (
                "identity.logins_per_minute_per_account",
                i64::from(self.identity.logins_per_minute_per_account),
            ),
            (
                "identity.logins_per_minute_per_address",
                i64::from(self.identity.logins_per_minute_per_address),
            ),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n < 1) {
            return Err(SettingsError::Zero(name));
        }
        if !(1..=MAX_REPLICAS).contains(&self.nats.replicas) {
            return Err(SettingsError::Replicas(self.nats.replicas));
        }
        if let Some(origin) = self
            .http
            .cors
            .allowed_origins
            .iter()
            .find(|origin| !is_origin(origin))
        {
            return Err(SettingsError::Origin(origin.clone()));
        }
        let cors = &self.http.cors;
        let names = cors.allowed_methods.iter().chain(&cors.allowed_headers);
        if let Some(name) = names.into_iter().find(|name| !is_token(name)) {
            return Err(SettingsError::CorsName(name.clone()));
        }
        let prefix = &self.nats.prefix;
        let valid = prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(())
        } else {
            Err(SettingsError::Prefix(prefix.clone()))
        }
    }
}

impl DatabaseSettings {
    /// The driver configuration, with the session settings every Herald connection needs.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        use secrecy::ExposeSecret;
        let mut config = tokio_postgres::Config::from_str(self.url.expose_secret())?;
        config.application_name("herald");
        config.connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        // Notice a half-open connection (the LISTEN one above all) instead of waiting forever.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        // An idle transaction would hold the snapshot's xmin back and stall every log reader.
        config.options(format!(
            "-c idle_in_transaction_session_timeout={}s",
            self.idle_in_transaction_timeout_secs
        ));
        Ok(config)
    }

    /// The name of the configured database (`herald dev` creates it when missing).
    pub fn database_name(&self) -> Result<String, tokio_postgres::Error> {
        let config = self.pg_config()?;
        Ok(config.get_dbname().unwrap_or("postgres").to_owned())
    }
}

impl HttpSettings {
    pub fn default_wait(&self) -> Duration {
        Duration::from_millis(self.default_wait_ms)
    }

    pub fn default_read_wait(&self) -> Duration {
        Duration::from_millis(self.default_read_wait_ms)
    }
}

/// Named secrets, each read like [`secret`]; names are lowercased (environment variables are
/// written in capitals).
fn secret_map<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<std::collections::HashMap<String, SecretString>, D::Error> {
    struct Named(SecretString);
    impl<'de> Deserialize<'de> for Named {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            secret(deserializer).map(Named)
        }
    }
    let named = std::collections::HashMap::<String, Named>::deserialize(deserializer)?;
    Ok(named
        .into_iter()
        .map(|(name, Named(value))| (name.to_lowercase(), value))
        .collect())
}

/// A secret from any scalar (an all-digit key arrives from the environment as a number):
/// a type error would otherwise print the value in the settings error.
fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = SecretString;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, value: &str) -> Result<SecretString, E> {
            Ok(SecretString::from(value))
        }
        fn visit_u64<E>(self, value: u64) -> Result<SecretString, E> {
            Ok(SecretString::from(value.to_string()))
        }
        fn visit_i64<E>(self, value: i64) -> Result<SecretString, E> {
            Ok(SecretString::from(value.to_string()))
        }
        fn visit_f64<E>(self, value: f64) -> Result<SecretString, E> {
            Ok(SecretString::from(value.to_string()))
        }
        fn visit_bool<E>(self, value: bool) -> Result<SecretString, E> {
            Ok(SecretString::from(value.to_string()))
        }
    }
    deserializer.deserialize_any(Scalar)
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    secret(deserializer).map(Some)
}

#[cfg(test)]
// `figment::Jail` fixes the closures' error type; its size does not matter in a test.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn webhook_secrets_come_by_name_from_file_and_environment_and_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "[webhooks.secrets]\nbilling = \"whsec_ZmlsZS1zZWNyZXQ=\"\n",
            )?;
            jail.set_env(
                "HERALD_WEBHOOKS__SECRETS__WAREHOUSE",
                "whsec_ZW52LXNlY3JldA==",
            );
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            let secret = |name: &str| {
                settings
                    .webhooks
                    .secrets
                    .get(name)
                    .map(|s| s.expose_secret().to_owned())
            };
            assert_eq!(secret("billing").as_deref(), Some("whsec_ZmlsZS1zZWNyZXQ="));
            assert_eq!(
                secret("warehouse").as_deref(),
                Some("whsec_ZW52LXNlY3JldA==")
            );
            assert!(
                !format!("{settings:?}").contains("whsec_"),
                "secrets never print"
            );
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order_defaults_file_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "[http]\naddr = \"0.0.0.0:9000\"\nbody_limit = 2048\n[nats]\nprefix = \"fromfile\"\n",
            )?;
            jail.set_env("HERALD_NATS__PREFIX", "fromenv");
            jail.set_env("HERALD_DATABASE__URL", "postgres://u:secret@db:5432/app");
            let settings = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                settings.http.addr.port(),
                9000,
                "the file overrides the default"
            );
            assert_eq!(settings.http.body_limit, 2048);
            assert_eq!(
                settings.nats.prefix, "fromenv",
                "the environment overrides the file"
            );
            assert_eq!(
                settings.database.url.expose_secret(),
                "postgres://u:secret@db:5432/app"
            );
            assert_eq!(
                settings.http.default_wait_ms, 5_000,
                "untouched keys keep their default"
            );
            assert!(
                !format!("{settings:?}").contains("secret@"),
                "secrets never print"
            );
            Ok(())
        });
    }

    #[test]
    fn mistakes_in_settings_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("herald.toml", "[http]\nadress = \"x\"\n")?;
            assert!(
                Settings::load(None).is_err(),
                "unknown keys are errors, not ignored"
            );
            jail.create_file("herald.toml", "")?;
            jail.set_env("HERALD_NATS__PREFIX", "Bad.Prefix");
            assert!(matches!(
                Settings::load(None),
                Err(SettingsError::Prefix(_))
            ));
            jail.set_env("HERALD_NATS__PREFIX", "ok");
            jail.set_env("HERALD_AUTH__HS256_SECRET", "short");
            assert!(matches!(
                Settings::load(None),
                Err(SettingsError::WeakSecret)
            ));
            jail.set_env(
                "HERALD_AUTH__HS256_SECRET",
                "a-secret-of-thirty-two-bytes-or-more",
            );
            jail.set_env(
                "HERALD_HTTP__CORS__ALLOWED_ORIGINS",
                "[\"https://app.example.com/\"]",
            );
            assert!(
                matches!(Settings::load(None), Err(SettingsError::Origin(_))),
                "an origin has no path"
            );
            jail.set_env(
                "HERALD_HTTP__CORS__ALLOWED_ORIGINS",
                "[\"https://app.example.com\"]",
            );
            assert!(Settings::load(None).is_ok());
            jail.set_env("HERALD_HTTP__HEAD_TIMEOUT_MS", "0");
            assert!(
                matches!(
                    Settings::load(None),
                    Err(SettingsError::Zero("http.head_timeout_ms"))
                ),
                "a timeout of 0 would close every connection at once"
            );
            jail.set_env("HERALD_HTTP__HEAD_TIMEOUT_MS", "1000");
            jail.set_env("HERALD_NATS__REPLICAS", "7");
            assert!(
                matches!(Settings::load(None), Err(SettingsError::Replicas(7))),
                "JetStream keeps at most five replicas"
            );
            Ok(())
        });
    }
}
