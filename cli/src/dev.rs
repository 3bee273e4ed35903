//! `herald dev`: every role in one process against local services, with a signing key kept in
//! `.herald/dev-secret` so tokens printed once keep working across restarts, and local webhook
//! secrets in `.herald/webhook-secrets/`.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_bus::schema::IDENTITY_APP;
use herald_bus::settings::Settings;
use herald_workers::declare::{self, TaskKind};
use rand::RngCore;
use secrecy::SecretString;

use crate::app::App;
use crate::database::create_if_missing;
use crate::server::{Herald, Role, shutdown_signal};

const DEV_SECRET_FILE: &str = ".herald/dev-secret";
const WEBHOOK_SECRETS_DIR: &str = ".herald/webhook-secrets";

/// The trimmed contents of `path`, made by `make` (and kept, readable by the owner only) when
/// the file does not exist yet.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(text) = fs::read_to_string(path) {
        return Ok(text.trim().to_owned());
    }
    let text = make();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(text)
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Uses the configured HS256 key, or the local development key (made on first use).
pub fn with_dev_secret(mut settings: Settings) -> anyhow::Result<Settings> {
    if settings.auth.hs256_secret.is_some() {
        return Ok(settings);
    }
    let secret = read_or_create(Path::new(DEV_SECRET_FILE), || {
        random_bytes().iter().map(|b| format!("{b:02x}")).collect()
    })?;
    if secret.len() < herald_bus::settings::MIN_HS256_SECRET {
        anyhow::bail!(
            "{DEV_SECRET_FILE} holds a key shorter than {} bytes; delete it to make a new one",
            herald_bus::settings::MIN_HS256_SECRET
        );
    }
    settings.auth.hs256_secret = Some(SecretString::from(secret));
    Ok(settings)
}

/// Gives every webhook secret the apps name and the settings lack a local one, kept in
/// `.herald/webhook-secrets/<name>`; returns the names and files of those it filled in.
fn with_webhook_secrets(settings: &mut Settings) -> anyhow::Result<Vec<(String, String)>> {
    let Ok((_, tasks)) = declare::load(&settings.apps.dir) else {
        // The start-up that follows reports every mistake.
        return Ok(Vec::new());
    };
    let mut filled = Vec::new();
    for task in &tasks {
        let TaskKind::Webhook { secret: name, .. } = &task.kind else {
            continue;
        };
        if settings.webhooks.secrets.contains_key(name) {
            continue;
        }
        let file = format!("{WEBHOOK_SECRETS_DIR}/{name}");
        let secret = read_or_create(Path::new(&file), || {
            format!("whsec_{}", STANDARD.encode(random_bytes()))
        })?;
        settings
            .webhooks
            .secrets
            .insert(name.clone(), SecretString::from(secret));
        filled.push((name.clone(), file));
    }
    Ok(filled)
}

pub async fn run(settings: Settings, app: App) -> anyhow::Result<()> {
    let mut settings = with_dev_secret(settings)?;
    // The printed admin token operates the local installation.
    settings
        .auth
        .operator_tenant
        .get_or_insert_with(|| "dev".to_owned());
    let secrets = with_webhook_secrets(&mut settings)?;
    create_if_missing(&settings.database).await?;
    let herald = Herald::build(settings.clone(), &Role::ALL, app).await?;
    let addr = herald.api_addr().context("the api is not bound")?;
    let token = herald_api::auth::issue_token(
        &settings.auth,
        "dev-admin",
        "dev",
        &["admin".to_owned()],
        30 * 24 * 3600,
    )?;
    let apps = herald.collections();
    for (name, file) in &secrets {
        println!("Webhook secret `{name}` (for verifying deliveries): {file}");
    }
    println!(
        "\nHerald is running on http://{addr}\n\n\
         Collections: {}\n\n\
         Admin token (tenant `dev`, valid 30 days):\n\n  export TOKEN={token}\n\n\
         Try:\n  curl -s http://{addr}/v1/{} -H \"Authorization: Bearer $TOKEN\"\n\n\
         Press Ctrl-C to stop.\n",
        apps.join(", "),
        apps.iter()
            .map(|a| a.trim_start_matches("/v1/"))
            .find(|a| !a.starts_with(&format!("{IDENTITY_APP}/")))
            .unwrap_or_default(),
    );
    if settings.identity.enabled {
        println!(
            "Built-in login: create users at /v1/{IDENTITY_APP}/user, sign in at POST /v1/auth/token\n"
        );
    }
    herald.run_until_stopped(shutdown_signal()).await
}
