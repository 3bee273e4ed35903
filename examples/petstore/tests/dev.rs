//! `herald dev` end to end, as the README's first command runs it: it creates its database,
//! serves the petstore app, prints a working admin token, and stops cleanly on SIGTERM.
//! Needs Postgres and NATS (`HERALD_TEST_DATABASE_URL`, `HERALD_TEST_NATS_URL`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DEADLINE: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}{nanos}", std::process::id())
}

/// One HTTP/1.1 exchange over a fresh connection: the status line and the body.
fn http(addr: &str, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Waits for the child to exit, failing the test after the deadline.
fn wait(mut child: Child) -> std::process::ExitStatus {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || drop(sender.send(child.wait())));
    receiver
        .recv_timeout(DEADLINE)
        .expect("herald did not stop in time")
        .expect("wait")
}

#[test]
fn dev_serves_the_petstore_with_its_printed_token_and_stops_on_sigterm() {
    let admin = std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nats =
        std::env::var("HERALD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let database = unique("herald_clidev_");
    let prefix = unique("c");
    let server = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(server, _)| server);
    let workdir = std::env::temp_dir().join(unique("herald-dev-"));
    std::fs::create_dir_all(&workdir).expect("workdir");
    let apps: PathBuf = [env!("CARGO_MANIFEST_DIR"), "apps"].iter().collect();

    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-petstore"))
        .args(["dev", "--addr", "127.0.0.1:0", "--apps"])
        .arg(&apps)
        .current_dir(&workdir)
        .env("HERALD_DATABASE__URL", format!("{server}/{database}"))
        .env("HERALD_NATS__URL", &nats)
        .env("HERALD_NATS__PREFIX", &prefix)
        .env("HERALD_LOG__LEVEL", "warn")
        .env_remove("HERALD_AUTH__HS256_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn herald dev");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut token) = (String::new(), String::new());
    while addr.is_empty() || token.is_empty() {
        let line = receiver
            .recv_timeout(DEADLINE)
            .expect("herald dev printed its banner");
        if let Some(rest) = line.strip_prefix("Herald is running on http://") {
            addr = rest.trim().to_owned();
        }
        if let Some(rest) = line.trim().strip_prefix("export TOKEN=") {
            token = rest.to_owned();
        }
    }

    let body = r#"{"name": "Leash", "price": 12.5}"#;
    let (status, created) = http(
        &addr,
        &format!(
            "POST /v1/petstore/product HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(status.contains(" 201 "), "{status} {created}");
    assert!(
        created.contains("\"created_by\":\"dev-admin\""),
        "{created}"
    );
    let (status, _) = http(
        &addr,
        "GET /v1/petstore/product HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains(" 401 "), "without the token: {status}");
    let (status, _) = http(
        &addr,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains(" 200 "), "{status}");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = wait(child);
    assert!(exit.success(), "a SIGTERM is a clean stop: {exit:?}");

    std::fs::remove_dir_all(&workdir).expect("cleanup");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("admin");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await
            .expect("drop");
        let settings = herald_bus::settings::NatsSettings {
            url: nats,
            prefix,
            ..Default::default()
        };
        let bus = herald_bus::nats::Bus::connect(&settings)
            .await
            .expect("nats");
        drop(bus.jetstream.delete_stream(bus.commands_stream()).await);
        drop(bus.jetstream.delete_stream(bus.events_stream()).await);
        drop(
            bus.jetstream
                .delete_stream(format!("{}_TASKS", bus.prefix().to_uppercase()))
                .await,
        );
    });
}
