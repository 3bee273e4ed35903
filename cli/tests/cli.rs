//! The `herald` binary as a user runs it: `check`, `token`, `serve` without a key, the argument
//! checks of `replay` and `tail`, `--help`. None of these need Postgres or NATS. Every run gets a fresh working directory (so no
//! `herald.toml` is picked up and `.herald/dev-secret` lands there) and a clean environment
//! (no inherited `HERALD_*` variables).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_api::auth::TokenVerifier;
use herald_bus::settings::AuthSettings;
use secrecy::SecretString;
use serde_json::{Value, json};

/// Long enough for a cold debug binary on a loaded machine; a hang is a failure, not a wait.
const DEADLINE: Duration = Duration::from_secs(60);

/// A fresh directory under the system temp dir, removed when the test ends.
struct Workdir(PathBuf);

impl Workdir {
    fn new(test: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "herald-cli-{test}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).expect("create the working directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `relative` (creating folders) and returns the full path.
    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create folders");
        }
        fs::write(&path, text).expect("write the file");
        path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        drop(fs::remove_dir_all(&self.0));
    }
}

/// What one run of the binary printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `herald <args>` in `dir` with only the `HERALD_*` variables given in `env`.
fn herald(dir: &Workdir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            command.env_remove(name);
        }
    }
    // Error reports stay the one-line message a user sees, without a backtrace.
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("start the herald binary");
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for herald") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            drop(child.kill());
            drop(child.wait());
            panic!(
                "`herald {}` did not finish within {DEADLINE:?}",
                args.join(" ")
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        drop(pipe.read_to_string(&mut text));
        text
    })
}

fn petstore_apps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/petstore/apps")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Decodes unpadded base64url (RFC 4648 §5), as used by every JWT segment.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        Some(u32::from(value))
    }
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The JSON of one JWT segment.
fn segment_json(segment: &str) -> Value {
    let bytes = base64url_decode(segment)
        .unwrap_or_else(|| panic!("`{segment}` is not unpadded base64url"));
    serde_json::from_slice(&bytes).expect("a JWT segment is JSON")
}

/// The one token `herald token` printed: three base64url segments on a single line.
fn printed_token(run: &Run) -> String {
    assert!(run.succeeded(), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {run:?}");
    let token = lines[0].trim().to_owned();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "header.payload.signature: {token}");
    for segment in &segments {
        assert!(
            !segment.is_empty() && base64url_decode(segment).is_some(),
            "`{segment}` is not unpadded base64url"
        );
    }
    token
}

fn payload(token: &str) -> Value {
    segment_json(token.split('.').nth(1).expect("a payload segment"))
}

/// Whether the server would accept `token` when configured with `secret`.
fn verifies_with(token: &str, secret: &str) -> bool {
    let settings = AuthSettings {
        hs256_secret: Some(SecretString::from(secret.to_owned())),
        ..AuthSettings::default()
    };
    let verifier = TokenVerifier::from_settings(&settings).expect("a usable HS256 verifier");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to verify in");
    runtime.block_on(verifier.verify(token)).is_ok()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Whether `rest` (what follows a file name on an error line) starts with `:<line>:<col>: `,
/// returning the line number.
fn line_and_column(rest: &str) -> Option<usize> {
    let mut parts = rest.strip_prefix(':')?.splitn(3, ':');
    let line: usize = parts.next()?.parse().ok()?;
    let column: usize = parts.next()?.parse().ok()?;
    let message = parts.next()?;
    (line > 0 && column > 0 && message.starts_with(' ')).then_some(line)
}

// ---------------------------------------------------------------------------------------------
// herald check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_names_the_example_command_whose_code_this_binary_lacks() {
    let dir = Workdir::new("check-code");
    let apps = petstore_apps();

    let run = herald(&dir, &["check", "--apps", path_str(&apps)], &[]);

    assert!(!run.succeeded(), "{run:?}");
    assert!(
        run.stderr.contains(
            "`petstore.product.restock` is declared with `kind: rust` but no code is registered for it"
        ),
        "{run:?}"
    );
}

#[test]
fn check_reads_the_apps_folder_of_the_working_directory_by_default() {
    let dir = Workdir::new("check-default");
    let supplier = fs::read_to_string(petstore_apps().join("petstore/supplier.yaml"))
        .expect("read the example");
    dir.write("apps/petstore/supplier.yaml", &supplier);

    let run = herald(&dir, &["check"], &[]);

    assert!(run.succeeded(), "{run:?}");
    assert!(run.stdout.contains("/v1/petstore/supplier"), "{run:?}");
}

#[test]
fn check_reports_every_mistake_with_its_file_line_and_column() {
    let dir = Workdir::new("check-broken");
    let unknown_type = dir.write(
        "apps/shop/item.yaml",
        "fields:\n  name:  {type: string}\n  price: {type: nubmer}\nacl:\n  read: user\n",
    );
    let bad_syntax = dir.write(
        "apps/shop/order.yaml",
        "fields:\n  total: {type: number\n  lines: [\n",
    );
    let apps = dir.path().join("apps");

    let run = herald(&dir, &["check", "--apps", path_str(&apps)], &[]);

    assert!(!run.succeeded(), "{run:?}");
    assert!(run.code.is_some(), "exited, not killed: {run:?}");
    let located = |file: &Path| -> Vec<(usize, String)> {
        let name = path_str(file);
        run.stderr
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                line_and_column(rest).map(|at| (at, line.to_owned()))
            })
            .collect()
    };
    let type_errors = located(&unknown_type);
    assert_eq!(type_errors.len(), 1, "{run:?}");
    assert_eq!(
        type_errors[0].0, 3,
        "the unknown type is on line 3: {run:?}"
    );
    assert!(
        type_errors[0].1.contains("unknown type `nubmer`"),
        "{run:?}"
    );
    let syntax_errors = located(&bad_syntax);
    assert_eq!(syntax_errors.len(), 1, "{run:?}");
    assert!(syntax_errors[0].1.contains("invalid YAML"), "{run:?}");
    assert!(
        !run.stdout.contains("/v1/"),
        "nothing is listed as ok: {run:?}"
    );
}

#[test]
fn check_refuses_a_folder_without_documents() {
    let dir = Workdir::new("check-empty");
    fs::create_dir_all(dir.path().join("apps")).expect("create apps/");

    let run = herald(&dir, &["check", "--apps", "apps"], &[]);

    assert!(!run.succeeded(), "{run:?}");
    assert!(run.stderr.contains("no documents found"), "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// herald token
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "some-secret-that-must-never-be-printed";

#[test]
fn token_prints_one_jwt_with_the_requested_claims_signed_with_the_configured_key() {
    let dir = Workdir::new("token");
    let before = now_secs();

    let run = herald(
        &dir,
        &[
            "token",
            "--sub",
            "alice",
            "--roles",
            "staff,admin",
            "--tenant",
            "acme",
        ],
        &[("HERALD_AUTH__HS256_SECRET", SECRET)],
    );

    let token = printed_token(&run);
    let header = segment_json(token.split('.').next().expect("a header segment"));
    assert_eq!(header["alg"], json!("HS256"), "{header}");
    let claims = payload(&token);
    assert_eq!(claims["sub"], json!("alice"), "{claims}");
    assert_eq!(claims["tid"], json!("acme"), "{claims}");
    assert_eq!(claims["roles"], json!(["staff", "admin"]), "{claims}");
    assert_eq!(claims["iss"], json!("herald"), "{claims}");
    assert_eq!(claims["aud"], json!("herald"), "{claims}");
    let exp = claims["exp"].as_u64().expect("a numeric exp");
    assert!(exp > now_secs(), "not expired: {claims}");
    assert!(
        (before + 3600..=now_secs() + 3600).contains(&exp),
        "one hour by default: {claims}"
    );
    assert!(
        verifies_with(&token, SECRET),
        "signed with the configured key"
    );
    assert!(!verifies_with(&token, "another-secret"), "and only with it");
    assert!(!run.output().contains(SECRET), "the key is never printed");
    assert!(
        !dir.path().join(".herald").exists(),
        "a configured key needs no local development key"
    );
}

#[test]
fn token_lifetime_follows_ttl() {
    let dir = Workdir::new("token-ttl");

    let run = herald(
        &dir,
        &["token", "--sub", "bob", "--tenant", "acme", "--ttl", "60"],
        &[("HERALD_AUTH__HS256_SECRET", SECRET)],
    );

    let claims = payload(&printed_token(&run));
    let (exp, iat) = (claims["exp"].as_u64(), claims["iat"].as_u64());
    assert_eq!(
        exp.zip(iat).map(|(exp, iat)| exp - iat),
        Some(60),
        "{claims}"
    );
    assert_eq!(claims["roles"], json!([]), "no roles given: {claims}");
}

#[test]
fn token_without_a_configured_key_signs_with_a_local_development_key_kept_across_runs() {
    let dir = Workdir::new("token-dev");
    let args = ["token", "--sub", "alice", "--tenant", "acme"];

    let first = herald(&dir, &args, &[]);
    let second = herald(&dir, &args, &[]);

    let dev_secret = fs::read_to_string(dir.path().join(".herald/dev-secret"))
        .expect("the development key is kept in .herald/dev-secret");
    let dev_secret = dev_secret.trim();
    assert!(dev_secret.len() >= 32, "a long random key");
    for run in [&first, &second] {
        let token = printed_token(run);
        assert!(verifies_with(&token, dev_secret), "{run:?}");
        assert!(
            !run.output().contains(dev_secret),
            "the key is never printed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// herald replay, herald tail
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_of_an_unknown_projection_fails_with_the_known_ones_before_connecting() {
    let dir = Workdir::new("replay-unknown");
    let apps = petstore_apps();

    let run = herald(
        &dir,
        &["replay", "petstore.pet", "--apps", path_str(&apps)],
        // Nothing listens there: the name is checked first.
        &[(
            "HERALD_DATABASE__URL",
            "postgres://herald@127.0.0.1:1/herald",
        )],
    );

    assert!(!run.succeeded(), "{run:?}");
    assert!(run.code.is_some(), "exited, not killed: {run:?}");
    assert!(run.stderr.contains("petstore.pet"), "{run:?}");
    assert!(
        run.stderr.contains("petstore.product, petstore.supplier"),
        "lists the known projections: {run:?}"
    );
}

#[test]
fn tail_without_a_token_says_how_to_give_one() {
    let dir = Workdir::new("tail-notoken");

    let run = herald(&dir, &["tail"], &[]);
    let empty = herald(&dir, &["tail"], &[("HERALD_TOKEN", "")]);

    for run in [&run, &empty] {
        assert!(!run.succeeded(), "{run:?}");
        assert!(run.code.is_some(), "exited, not killed: {run:?}");
        assert!(run.stderr.contains("token is required"), "{run:?}");
        assert!(run.stderr.contains("--token"), "{run:?}");
        assert!(run.stderr.contains("HERALD_TOKEN"), "{run:?}");
    }
}

#[test]
fn tail_of_one_document_needs_its_app_and_collection() {
    let dir = Workdir::new("tail-scope");
    let token = [("HERALD_TOKEN", "some-token")];

    let id_only = herald(&dir, &["tail", "--id", "x"], &token);
    let doc_only = herald(&dir, &["tail", "--doc", "product"], &token);

    for run in [&id_only, &doc_only] {
        assert!(!run.succeeded(), "{run:?}");
        assert!(run.stderr.contains("--app"), "{run:?}");
    }
    assert!(id_only.stderr.contains("--doc"), "{id_only:?}");
}

// ---------------------------------------------------------------------------------------------
// herald serve, herald --help
// ---------------------------------------------------------------------------------------------

#[test]
fn serve_api_without_a_token_key_refuses_to_start_and_prints_no_secret() {
    let dir = Workdir::new("serve-nokey");
    let password = "db-password-that-must-never-be-printed";
    let url = format!("postgres://herald:{password}@127.0.0.1:1/herald");

    let run = herald(
        &dir,
        &["serve", "--role", "api"],
        &[("HERALD_DATABASE__URL", &url)],
    );

    assert!(!run.succeeded(), "{run:?}");
    assert!(run.code.is_some(), "exited, not killed: {run:?}");
    assert!(
        run.stderr.contains("HERALD_AUTH__HS256_SECRET"),
        "says which key is missing: {run:?}"
    );
    assert!(!run.output().contains(password), "{run:?}");
    assert!(
        !dir.path().join(".herald").exists(),
        "serve never falls back to a development key"
    );
}

#[test]
fn serve_api_treats_an_empty_token_key_as_missing() {
    let dir = Workdir::new("serve-emptykey");
    let apps = path_str(&petstore_apps()).to_owned();

    // An empty HS256 key would let anyone sign tokens the server accepts (RFC 8725 §3.5).
    let run = herald(
        &dir,
        &["serve", "--role", "api", "--apps", &apps],
        &[
            ("HERALD_AUTH__HS256_SECRET", ""),
            (
                "HERALD_DATABASE__URL",
                "postgres://herald@127.0.0.1:1/herald",
            ),
        ],
    );

    assert!(!run.succeeded(), "{run:?}");
    assert!(
        run.stderr.contains("HERALD_AUTH__HS256_SECRET"),
        "refused for the key, before connecting anywhere: {run:?}"
    );
}

#[test]
fn token_never_signs_with_an_empty_key() {
    let dir = Workdir::new("token-emptykey");

    let run = herald(
        &dir,
        &["token", "--sub", "alice", "--tenant", "acme"],
        &[("HERALD_AUTH__HS256_SECRET", "")],
    );

    // Refusing, or falling back to the development key, both keep the token unforgeable.
    if run.succeeded() {
        let token = printed_token(&run);
        assert!(
            !verifies_with(&token, ""),
            "a token signed with the empty key can be forged by anyone: {token}"
        );
    }
}

#[test]
fn help_lists_every_command() {
    let dir = Workdir::new("help");

    let run = herald(&dir, &["--help"], &[]);

    assert!(run.succeeded(), "{run:?}");
    let commands: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for expected in [
        "dev", "serve", "migrate", "check", "token", "replay", "tail",
    ] {
        assert!(commands.contains(&expected), "`{expected}` in {commands:?}");
    }
}

#[test]
fn the_base64url_decoder_of_these_tests_is_right() {
    assert_eq!(base64url_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
    assert_eq!(base64url_decode("aGk").as_deref(), Some(&b"hi"[..]));
    assert_eq!(base64url_decode("_-8").as_deref(), Some(&[0xff, 0xef][..]));
    assert_eq!(base64url_decode("a+b/"), None);
}
