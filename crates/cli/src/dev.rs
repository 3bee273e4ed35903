//! `herald dev`: every role in one process against local services, with a signing key kept in
//! `.herald/dev-secret` so tokens printed once keep working across restarts.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use herald_bus::settings::Settings;
use rand::RngCore;
use secrecy::SecretString;

use crate::database::create_if_missing;
use crate::server::{Herald, Role, shutdown_signal};

const DEV_SECRET_FILE: &str = ".herald/dev-secret";

/// Uses the configured HS256 key, or the local development key (made on first use).
pub fn with_dev_secret(mut settings: Settings) -> anyhow::Result<Settings> {
    if settings.auth.hs256_secret.is_some() {
        return Ok(settings);
    }
    let path = Path::new(DEV_SECRET_FILE);
    let secret = match fs::read_to_string(path) {
        Ok(secret) => secret.trim().to_owned(),
        Err(_) => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).context("cannot create .herald/")?;
            }
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .context("cannot write the development key")?;
            file.write_all(secret.as_bytes())?;
            secret
        }
    };
    if secret.len() < herald_bus::settings::MIN_HS256_SECRET {
        anyhow::bail!(
            "{DEV_SECRET_FILE} holds a key shorter than {} bytes; delete it to make a new one",
            herald_bus::settings::MIN_HS256_SECRET
        );
    }
    settings.auth.hs256_secret = Some(SecretString::from(secret));
    Ok(settings)
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let mut settings = with_dev_secret(settings)?;
    // The printed admin token operates the local installation.
    settings
        .auth
        .operator_tenant
        .get_or_insert_with(|| "dev".to_owned());
    create_if_missing(&settings.database).await?;
    let herald = Herald::build(
        settings.clone(),
        &Role::ALL,
        herald_workers::TaskRegistry::default(),
    )
    .await?;
    let addr = herald.api_addr().context("the api is not bound")?;
    let token = herald_api::auth::issue_token(
        &settings.auth,
        "dev-admin",
        "dev",
        &["admin".to_owned()],
        30 * 24 * 3600,
    )?;
    let apps = herald.collections();
    println!(
        "\nHerald is running on http://{addr}\n\n\
         Collections: {}\n\n\
         Admin token (tenant `dev`, valid 30 days):\n\n  export TOKEN={token}\n\n\
         Try:\n  curl -s http://{addr}/v1/{} -H \"Authorization: Bearer $TOKEN\"\n\n\
         Press Ctrl-C to stop.\n",
        apps.join(", "),
        apps.first().map_or("", |a| a.trim_start_matches("/v1/")),
    );
    herald.run_until_stopped(shutdown_signal()).await
}
