//! Background tasks end to end: each matching event makes exactly one run across worker
//! restarts and killed trigger readers; webhooks are signed the Standard Webhooks way, retried
//! with growing back-off, cut off at their timeout, dead-lettered (and retried from there by
//! operators) or stopped at once on a rejecting 4xx; command and Rust tasks issue commands;
//! runs are visible to their tenant's admins only; a rebuild runs nothing again.

#![allow(clippy::disallowed_methods)] // a test: a row it cannot decode fails it

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use herald_bus::command::Action;
use herald_bus::nats::Bus;
use herald_bus::settings::Settings;
use herald_cli::server::Role;
use herald_tests::{Options, TestApp, eventually, header, json, send, write_apps};
use herald_workers::declare;
use herald_workers::{CommandRequest, Task, TaskContext, TaskError, TaskRegistry};
use hmac::{Hmac, Mac};
use rand::Rng;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The key every test's webhooks are signed with, and the same key as settings hold it.
const KEY: &[u8] = b"herald-tests-webhook-signing-key";
const SECRET: &str = "whsec_aGVyYWxkLXRlc3RzLXdlYmhvb2stc2lnbmluZy1rZXk=";

const ITEM_YAML: &str = "fields:
  name: {type: string, required: true, max: 50}
  stock: {type: integer, min: 0, default: 10}
  status: {type: string, enum: [available, sold_out], default: available}
acl: {create: staff, read: user, update: staff, delete: admin}
";

const NOTE_YAML: &str = "fields:
  item: {type: string, required: true}
  text: {type: string}
acl: {create: staff, read: user, update: staff, delete: admin}
";

/// Quick retries, so runs that fail end within a second or two.
const QUICK_RETRY: &str = "retry: {max_attempts: 3, backoff_ms: 50, max_delay_secs: 1}";

// ---------------------------------------------------------------------------------------------
// A webhook receiver on 127.0.0.1 that records every request and answers as its script says.

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Status(u16),
    /// `200`, but only after this long: a receiver slower than the task's timeout.
    Late(Duration),
}

/// Chooses the reply from the delivered event and how many requests of the same webhook-id
/// (the same run) came before.
type Script = Box<dyn Fn(&Value, usize) -> Reply + Send>;

fn always(status: u16) -> Script {
    Box::new(move |_, _| Reply::Status(status))
}

/// `status` for the first `times` attempts of each run, then `200`.
fn failing(times: usize, status: u16) -> Script {
    Box::new(move |_, earlier| {
        if earlier < times {
            Reply::Status(status)
        } else {
            Reply::Status(200)
        }
    })
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
    reply: Reply,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn webhook_id(&self) -> String {
        self.header("webhook-id")
    }

    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    fn succeeded(&self) -> bool {
        matches!(self.reply, Reply::Status(status) if (200..300).contains(&status))
    }
}

struct Recording {
    requests: Vec<Received>,
    script: Script,
}

struct Receiver {
    url: String,
    recording: Arc<Mutex<Recording>>,
    server: JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Script) -> Self {
        let recording = Arc::new(Mutex::new(Recording {
            requests: Vec::new(),
            script,
        }));
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(recording.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind the receiver: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the receiver has no address: {e}"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .unwrap_or_else(|e| panic!("the receiver failed: {e}"));
        });
        Self {
            url: format!("http://{addr}/hook"),
            recording,
            server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn script(&self, script: Script) {
        self.lock().script = script;
    }

    fn requests(&self) -> Vec<Received> {
        self.lock().requests.clone()
    }

    /// The requests of one run (its id is the webhook-id), in the order they came.
    fn requests_of(&self, run: Uuid) -> Vec<Received> {
        let id = run.to_string();
        self.lock()
            .requests
            .iter()
            .filter(|r| r.webhook_id() == id)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(recording): State<Arc<Mutex<Recording>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = {
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        let received = Received {
            headers,
            body,
            at: Instant::now(),
            reply: Reply::Status(0),
        };
        let id = received.webhook_id();
        let earlier = recording
            .requests
            .iter()
            .filter(|r| r.webhook_id() == id)
            .count();
        let reply = (recording.script)(&received.event(), earlier);
        recording.requests.push(Received { reply, ..received });
        reply
    };
    match reply {
        Reply::Status(status) => {
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Reply::Late(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shop app, its tasks, and the runs they make.

/// A webhook task `hook` on created items, posting to `url`, with more keys of its spec.
fn hook_yaml(url: &str, keys: &[&str]) -> String {
    let mut yaml =
        format!("hook:\n  on: shop.item.created\n  kind: webhook\n  url: {url}\n  secret: hook\n");
    for key in keys {
        yaml.push_str(&format!("  {key}\n"));
    }
    yaml
}

fn shop_apps(tasks_yaml: &str) -> PathBuf {
    write_apps(&[
        ("shop", "item", ITEM_YAML),
        ("shop", "note", NOTE_YAML),
        ("shop", "tasks", tasks_yaml),
    ])
    .unwrap_or_else(|e| panic!("cannot write the shop app: {e}"))
}

fn with_hook_secret(settings: &mut Settings) {
    settings
        .webhooks
        .secrets
        .insert("hook".into(), SecretString::from(SECRET));
}

/// The shop with every role, running `tasks_yaml` (and `rust` tasks), once its triggers are
/// registered.
async fn spawn_shop(tasks_yaml: &str, rust: TaskRegistry) -> TestApp {
    let app = TestApp::spawn_with(Options {
        apps: shop_apps(tasks_yaml),
        configure: with_hook_secret,
        app: herald_cli::App {
            tasks: rust,
            ..herald_cli::App::default()
        },
        ..herald_tests::petstore()
    })
    .await;
    await_triggers(&app).await;
    app
}

/// Waits until the trigger reader has recorded where each trigger starts: a trigger fires for
/// events committed after that, not before.
async fn await_triggers(app: &TestApp) {
    let (_, tasks) = declare::load(&app.settings.apps.dir)
        .unwrap_or_else(|e| panic!("the shop app is invalid: {e}"));
    let triggers = tasks.iter().filter(|t| t.trigger.is_some()).count();
    let expected = i64::try_from(triggers).unwrap_or(i64::MAX);
    eventually("the task triggers to be registered", || async {
        (app.count("herald.task_triggers").await == expected).then_some(())
    })
    .await;
}

/// Waits until the trigger reader has read the log up to its last event now: every run those
/// events make exists.
async fn await_triggers_read_the_log(db: &Client) {
    eventually("the trigger reader to read the whole log", || async {
        let row = db
            .query_one(
                "SELECT EXISTS (
                     SELECT 1 FROM herald.checkpoints c,
                         (SELECT tx_id, position FROM herald.events
                          ORDER BY tx_id DESC, position DESC LIMIT 1) e
                     WHERE c.name = 'tasks' AND (c.tx_id, c.position) >= (e.tx_id, e.position))",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        row.get::<_, bool>(0).then_some(())
    })
    .await;
}

/// Stops the app and removes its streams, the dead letters included.
async fn stop(app: TestApp) {
    let nats = app.settings.nats.clone();
    app.stop_and_clean().await;
    let bus = Bus::connect(&nats).await.unwrap_or_else(|e| panic!("{e}"));
    drop(
        bus.jetstream
            .delete_stream(herald_workers::queue::dead_stream_name(&bus))
            .await,
    );
}

fn uuid_of(value: &Value) -> Uuid {
    Uuid::parse_str(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value} is not a UUID: {e}"))
}

async fn create_item(app: &TestApp, token: &str, name: &str) -> Uuid {
    uuid_of(&app.create("shop/item", token, &json!({"name": name})).await["id"])
}

/// The id of the event that brought `document` to `version`.
async fn event_id(db: &Client, document: Uuid, version: i64) -> Uuid {
    db.query_one(
        "SELECT event_id FROM herald.events WHERE document_id = $1 AND version = $2",
        &[&document, &version],
    )
    .await
    .unwrap_or_else(|e| panic!("no event of {document} at version {version}: {e}"))
    .get(0)
}

/// One run, as `herald.tasks` holds it.
#[derive(Debug)]
struct Run {
    id: Uuid,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    duration_ms: Option<i64>,
    event_id: Option<Uuid>,
}

const RUN_COLUMNS: &str = "id, state, attempts, last_error, duration_ms, event_id";

fn run_of(row: &tokio_postgres::Row) -> Run {
    Run {
        id: row.get(0),
        state: row.get(1),
        attempts: row.get(2),
        last_error: row.get(3),
        duration_ms: row.get(4),
        event_id: row.get(5),
    }
}

async fn run_for(db: &Client, task: &str, event: Uuid) -> Option<Run> {
    db.query_opt(
        &format!("SELECT {RUN_COLUMNS} FROM herald.tasks WHERE name = $1 AND event_id = $2"),
        &[&task, &event],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .as_ref()
    .map(run_of)
}

async fn runs_of(db: &Client, task: &str) -> Vec<Run> {
    db.query(
        &format!("SELECT {RUN_COLUMNS} FROM herald.tasks WHERE name = $1"),
        &[&task],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .iter()
    .map(run_of)
    .collect()
}

/// The run of `task` for `event`, once it has ended (succeeded or dead).
async fn finished(db: &Client, task: &str, event: Uuid) -> Run {
    eventually(
        &format!("the {task} run of event {event} to end"),
        || async {
            let run = run_for(db, task, event).await?;
            matches!(run.state.as_str(), "succeeded" | "dead").then_some(run)
        },
    )
    .await
}

/// The `hook` run of the event that created `item`, once it has ended.
async fn finished_hook(db: &Client, item: Uuid) -> Run {
    finished(db, "shop.hook", event_id(db, item, 1).await).await
}

/// The shop with the webhook task `hook` (quick retries) delivering to `receiver`.
async fn spawn_hooked(receiver: &Receiver) -> TestApp {
    spawn_shop(
        &hook_yaml(&receiver.url, &[QUICK_RETRY]),
        TaskRegistry::default(),
    )
    .await
}

/// The shop with the webhook task on `receiver`, and one item, `name`, whose run succeeded:
/// the app, its database, the item and its run.
async fn one_delivered_item(receiver: &Receiver, name: &str) -> (TestApp, Client, Uuid, Run) {
    let app = spawn_hooked(receiver).await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let item = create_item(&app, &staff, name).await;
    let run = finished_hook(&db, item).await;
    assert_eq!(run.state, "succeeded", "{run:?}");
    (app, db, item, run)
}

fn error_of(run: &Run) -> &str {
    run.last_error.as_deref().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_item_gets_one_run_and_one_delivery_across_worker_restarts_and_killed_trigger_readers()
{
    const ITEMS: usize = 30;
    let receiver = Receiver::start(always(200)).await;
    let apps = shop_apps(&hook_yaml(&receiver.url, &[QUICK_RETRY]));
    // Writes in one process; runs in another, stopped and started again while items are made.
    let app = TestApp::spawn_with(Options {
        apps: apps.clone(),
        roles: vec![Role::Api, Role::Handler, Role::Projector],
        configure: with_hook_secret,
        ..herald_tests::petstore()
    })
    .await;
    let worker_options = || Options {
        roles: vec![Role::Worker],
        configure: with_hook_secret,
        ..app.restart_options()
    };
    let first = TestApp::spawn_with(worker_options()).await;
    await_triggers(&app).await;
    let staff = app.token("sam", &["staff"], "acme");
    let writer = {
        let (base, http, staff) = (app.base.clone(), app.http.clone(), staff.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..ITEMS {
                let response = http
                    .post(format!("{base}/v1/shop/item"))
                    .bearer_auth(&staff)
                    .json(&json!({"name": format!("item {i}")}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(response.status(), 201);
                let body: Value = response.json().await.unwrap_or_default();
                ids.push(uuid_of(&body["id"]));
            }
            ids
        })
    };
    eventually("the first worker to deliver some runs", || async {
        (receiver.requests().len() >= 5).then_some(())
    })
    .await;
    first
        .stop()
        .await
        .unwrap_or_else(|e| panic!("the first worker did not stop: {e:#}"));

    // No worker now: trigger readers killed at random moments (mid-batch, mid-publish) while
    // items are still made. The delays inject the faults; nothing waits on them for correctness.
    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, tasks) =
        declare::load(&apps).unwrap_or_else(|e| panic!("the shop app is invalid: {e}"));
    let tasks = Arc::new(tasks);
    for _ in 0..4 {
        let stop = CancellationToken::new();
        let reader = tokio::spawn(herald_workers::triggers::run(
            bus.clone(),
            app.settings.database.clone(),
            tasks.clone(),
            stop.clone(),
        ));
        let lifetime = rand::rng().random_range(20..250);
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        reader.abort();
        drop(reader.await);
        stop.cancel();
    }
    let items = writer.await.unwrap_or_else(|e| panic!("{e}"));
    let second = TestApp::spawn_with(worker_options()).await;

    let db = app.db().await;
    let runs = eventually("every item's run to succeed", || async {
        let runs = runs_of(&db, "shop.hook").await;
        (runs.iter().filter(|r| r.state == "succeeded").count() >= ITEMS).then_some(runs)
    })
    .await;
    let per_item: HashMap<Uuid, i64> = db
        .query(
            "SELECT e.document_id, count(t.id) FROM herald.events e
             LEFT JOIN herald.tasks t ON t.event_id = e.event_id AND t.name = 'shop.hook'
             WHERE e.type = 'shop.item.created' GROUP BY e.document_id",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(per_item.len(), ITEMS);
    for item in &items {
        assert_eq!(per_item.get(item), Some(&1), "item {item} has one run");
    }
    assert_eq!(runs.len(), ITEMS, "no run besides one per item");
    assert_eq!(
        app.count("herald.tasks").await,
        i64::try_from(ITEMS).unwrap_or(0)
    );

    let requests = receiver.requests();
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        assert!(request.succeeded());
        *deliveries.entry(request.webhook_id()).or_default() += 1;
    }
    assert!(
        deliveries.values().all(|&n| n == 1),
        "each run was delivered once: {deliveries:?}"
    );
    let run_ids: HashSet<String> = runs.iter().map(|r| r.id.to_string()).collect();
    let delivered: HashSet<String> = deliveries.into_keys().collect();
    assert_eq!(delivered, run_ids, "each webhook-id is the id of one run");
    let event_of_run: HashMap<String, Option<Uuid>> = runs
        .iter()
        .map(|r| (r.id.to_string(), r.event_id))
        .collect();
    for request in &requests {
        let event = request.event();
        assert_eq!(
            event_of_run[&request.webhook_id()],
            Some(uuid_of(&event["id"])),
            "a run delivers the event that made it"
        );
    }
    second
        .stop()
        .await
        .unwrap_or_else(|e| panic!("the second worker did not stop: {e:#}"));
    stop(app).await;
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_growing_delays_until_it_succeeds() {
    let receiver = Receiver::start(failing(3, 500)).await;
    let app = spawn_shop(
        &hook_yaml(
            &receiver.url,
            &["retry: {max_attempts: 5, backoff_ms: 300, max_delay_secs: 2}"],
        ),
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let item = create_item(&app, &staff, "flaky").await;

    let run = finished_hook(&db, item).await;
    assert_eq!(run.state, "succeeded", "{run:?}");
    assert_eq!(run.attempts, 4);
    let requests = receiver.requests_of(run.id);
    let replies: Vec<Reply> = requests.iter().map(|r| r.reply).collect();
    assert_eq!(
        replies,
        [500, 500, 500, 200].map(Reply::Status),
        "three failures, then the success"
    );
    // After the n-th failure the delay is d/2 to d, with d = 300 ms · 2^(n-1).
    let gaps: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (n, gap) in gaps.iter().enumerate() {
        let least = Duration::from_millis(150 << n);
        assert!(*gap >= least, "gap {} was {gap:?}, below {least:?}", n + 1);
    }
    assert!(
        gaps[2] > gaps[0],
        "the delays grow: {gaps:?} (the third is at least 600 ms, the first at most 300 ms)"
    );

    let admin = app.token("ada", &["admin"], "acme");
    let shown = app.get(&format!("/v1/tasks/{}", run.id), &admin).await;
    assert_eq!(shown.status(), 200);
    let shown = json(shown).await;
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["attempts"], 4);
    assert_eq!(shown["max_attempts"], 5);
    assert_eq!(shown["name"], "shop.hook");
    assert!(
        shown["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{shown}"
    );
    assert!(shown["finished_at"].is_string(), "{shown}");
    stop(app).await;
}

#[tokio::test]
async fn a_poison_run_is_dead_lettered_after_its_attempts_while_other_runs_flow() {
    let receiver = Receiver::start(Box::new(|event, _| {
        if event["data"]["name"] == "poison" {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    }))
    .await;
    // One run at a time: a poison run waiting out its back-off must not hold the slot.
    let app = spawn_shop(
        &hook_yaml(
            &receiver.url,
            &[
                "concurrency: 1",
                "retry: {max_attempts: 3, backoff_ms: 200, max_delay_secs: 1}",
            ],
        ),
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let poison = create_item(&app, &staff, "poison").await;
    let poison_event = event_id(&db, poison, 1).await;
    eventually("the poison run to fail once", || async {
        let run = run_for(&db, "shop.hook", poison_event).await?;
        (run.attempts >= 1).then_some(())
    })
    .await;
    let mut normal = Vec::new();
    for i in 0..5 {
        normal.push(create_item(&app, &staff, &format!("normal {i}")).await);
    }

    for item in normal {
        let run = finished_hook(&db, item).await;
        assert_eq!(run.state, "succeeded", "{run:?}");
        assert_eq!(run.attempts, 1, "{run:?}");
    }
    let dead = finished(&db, "shop.hook", poison_event).await;
    assert_eq!(dead.state, "dead", "{dead:?}");
    assert_eq!(dead.attempts, 3);
    assert!(error_of(&dead).contains("HTTP 500"), "{dead:?}");
    assert_eq!(receiver.requests_of(dead.id).len(), 3);

    let operator = app.token("ada", &["admin"], "acme");
    let listed = app.get("/v1/admin/tasks/dead", &operator).await;
    assert_eq!(listed.status(), 200);
    let listed = json(listed).await;
    let data = listed["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 1, "only the poison run is dead: {listed}");
    assert_eq!(data[0]["id"], dead.id.to_string());
    assert_eq!(data[0]["name"], "shop.hook");
    assert_eq!(data[0]["tenant"], "acme");
    assert_eq!(data[0]["state"], "dead");
    assert_eq!(data[0]["attempts"], 3);
    assert_eq!(data[0]["event_id"], poison_event.to_string());
    assert!(
        data[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{listed}"
    );
    assert_eq!(listed["has_more"], false);
    assert_eq!(
        app.get("/v1/admin/tasks/dead", &staff).await.status(),
        403,
        "dead letters are for operators"
    );

    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stream = herald_workers::queue::dead_stream_name(&bus);
    assert_eq!(stream, format!("{}_TASKS_DEAD", app.prefix.to_uppercase()));
    let (subject, letter) = eventually("the dead letter to be published", || async {
        let mut stream = bus.jetstream.get_stream(&stream).await.ok()?;
        if stream.info().await.ok()?.state.messages == 0 {
            return None;
        }
        let message = stream.get_raw_message(1).await.ok()?;
        let letter: Value = serde_json::from_slice(&message.payload).ok()?;
        Some((message.subject.to_string(), letter))
    })
    .await;
    assert_eq!(subject, format!("{}.dead.shop.hook", app.prefix));
    assert_eq!(letter["id"], dead.id.to_string());
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["event_id"], poison_event.to_string());
    assert_eq!(letter["payload"]["data"]["name"], "poison");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{letter}"
    );

    let metrics = app.get("/metrics", &operator).await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap_or_default();
    for line in [
        "herald_task_runs{task=\"shop.hook\",state=\"dead\"} 1",
        "herald_task_runs{task=\"shop.hook\",state=\"succeeded\"} 5",
    ] {
        assert!(text.contains(line), "no `{line}` in {text}");
    }
    stop(app).await;
}

#[tokio::test]
async fn operators_retry_a_dead_run_and_it_succeeds() {
    let receiver = Receiver::start(always(500)).await;
    let app = spawn_shop(
        &hook_yaml(
            &receiver.url,
            &["retry: {max_attempts: 2, backoff_ms: 50, max_delay_secs: 1}"],
        ),
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let operator = app.token("ada", &["admin"], "acme");
    let item = create_item(&app, &staff, "poison").await;
    let dead = finished_hook(&db, item).await;
    assert_eq!(dead.state, "dead", "{dead:?}");
    assert_eq!(dead.attempts, 2);
    let retry_path = format!("/v1/admin/tasks/dead/{}/retry", dead.id);
    let retry = |token: &str| send(app.request(Method::POST, &retry_path, Some(token)));

    let tenant_admin = app.token("ola", &["admin"], "globex");
    assert_eq!(retry(&staff).await.status(), 403);
    assert_eq!(retry(&tenant_admin).await.status(), 403);
    assert_eq!(
        run_for(&db, "shop.hook", dead.event_id.unwrap_or_default())
            .await
            .map(|r| r.state),
        Some("dead".to_owned()),
        "a refused retry changes nothing"
    );

    receiver.script(always(200));
    let accepted = retry(&operator).await;
    assert_eq!(accepted.status(), 202);
    assert_eq!(
        header(&accepted, "location"),
        format!("/v1/tasks/{}", dead.id)
    );
    let accepted = json(accepted).await;
    assert_eq!(accepted["state"], "queued");
    assert_eq!(accepted["attempts"], 0);

    let run = finished_hook(&db, item).await;
    assert_eq!(run.id, dead.id);
    assert_eq!(run.state, "succeeded", "{run:?}");
    assert_eq!(run.attempts, 1, "the retry starts its attempts afresh");
    let replies: Vec<Reply> = receiver
        .requests_of(run.id)
        .iter()
        .map(|r| r.reply)
        .collect();
    assert_eq!(replies, [500, 500, 200].map(Reply::Status));
    let shown = json(app.get(&format!("/v1/tasks/{}", run.id), &operator).await).await;
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["attempts"], 1);
    let listed = json(app.get("/v1/admin/tasks/dead", &operator).await).await;
    assert_eq!(listed["data"], json!([]), "nothing is dead any more");

    assert_eq!(
        retry(&operator).await.status(),
        409,
        "a run that is not dead"
    );
    let unknown = format!("/v1/admin/tasks/dead/{}/retry", Uuid::new_v4());
    assert_eq!(
        send(app.request(Method::POST, &unknown, Some(&operator)))
            .await
            .status(),
        404
    );
    stop(app).await;
}

#[tokio::test]
async fn a_webhook_carries_the_event_signed_with_the_documented_algorithm() {
    let receiver = Receiver::start(always(204)).await;
    let (app, db, item, run) = one_delivered_item(&receiver, "signed").await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.webhook_id(), run.id.to_string());
    assert_eq!(request.header("content-type"), "application/json");
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .unwrap_or_else(|e| panic!("webhook-timestamp is not unix seconds: {e}"));
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp).abs() <= 60, "{timestamp} is not now");

    // Standard Webhooks: base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")).
    let mut mac =
        Hmac::<Sha256>::new_from_slice(KEY).unwrap_or_else(|e| panic!("bad HMAC key: {e}"));
    mac.update(format!("{}.{timestamp}.", request.webhook_id()).as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let signatures = request.header("webhook-signature");
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "{signatures} does not hold {expected}"
    );

    let event = request.event();
    assert_eq!(event["id"], event_id(&db, item, 1).await.to_string());
    assert_eq!(event["type"], "shop.item.created");
    assert_eq!(event["document_id"], item.to_string());
    assert_eq!(event["version"], 1);
    assert_eq!(event["tenant"], "acme");
    assert_eq!(event["data"]["name"], "signed");
    assert_eq!(event["actor"]["sub"], "sam");
    stop(app).await;
}

#[tokio::test]
async fn a_rejecting_4xx_ends_a_run_at_once_while_429_is_retried() {
    let receiver = Receiver::start(Box::new(|event, earlier| {
        match (event["data"]["name"].as_str(), earlier) {
            (Some("gone"), _) => Reply::Status(404),
            (Some("busy"), 0) => Reply::Status(429),
            _ => Reply::Status(200),
        }
    }))
    .await;
    let app = spawn_hooked(&receiver).await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let gone = create_item(&app, &staff, "gone").await;
    let busy = create_item(&app, &staff, "busy").await;

    let rejected = finished_hook(&db, gone).await;
    assert_eq!(rejected.state, "dead", "{rejected:?}");
    assert_eq!(rejected.attempts, 1, "a 404 is not retried");
    assert!(error_of(&rejected).contains("HTTP 404"), "{rejected:?}");
    assert_eq!(receiver.requests_of(rejected.id).len(), 1);

    let throttled = finished_hook(&db, busy).await;
    assert_eq!(throttled.state, "succeeded", "{throttled:?}");
    assert_eq!(throttled.attempts, 2, "a 429 is retried");
    assert!(error_of(&throttled).contains("HTTP 429"), "{throttled:?}");
    let replies: Vec<Reply> = receiver
        .requests_of(throttled.id)
        .iter()
        .map(|r| r.reply)
        .collect();
    assert_eq!(replies, [429, 200].map(Reply::Status));
    stop(app).await;
}

#[tokio::test]
async fn an_attempt_is_cut_off_at_the_timeout_and_retried() {
    let receiver = Receiver::start(Box::new(|_, _| Reply::Late(Duration::from_secs(3)))).await;
    let app = spawn_shop(
        &hook_yaml(
            &receiver.url,
            &[
                "timeout_secs: 1",
                "retry: {max_attempts: 2, backoff_ms: 50, max_delay_secs: 1}",
            ],
        ),
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let item = create_item(&app, &staff, "slow").await;

    let run = finished_hook(&db, item).await;
    assert_eq!(run.state, "dead", "{run:?}");
    assert_eq!(run.attempts, 2, "the timed-out attempt was retried");
    assert!(
        error_of(&run).contains("timed out after 1000 ms"),
        "{run:?}"
    );
    let duration = run.duration_ms.unwrap_or_default();
    assert!(
        (1000..2500).contains(&duration),
        "the attempt ended at its timeout, not with the 3 s response: {duration} ms"
    );
    assert_eq!(receiver.requests_of(run.id).len(), 2);
    stop(app).await;
}

/// Notes the item that was created, as a command of its own.
struct Audit;

#[async_trait::async_trait]
impl Task for Audit {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let item = ctx.task.payload["document_id"]
            .as_str()
            .ok_or_else(|| TaskError::Permanent("the event has no document_id".into()))?
            .to_owned();
        let mut fields = serde_json::Map::new();
        fields.insert("item".into(), item.into());
        fields.insert("text".into(), "created".into());
        ctx.commands
            .issue(CommandRequest {
                app: "shop".into(),
                doc: "note".into(),
                document_id: None,
                action: Action::Create { fields },
                roles: vec!["admin".into()],
            })
            .await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_rust_task_issues_a_command_as_its_system_actor_caused_by_the_event() {
    let mut rust = TaskRegistry::default();
    rust.register("shop.audit", Audit);
    let app = spawn_shop(
        &format!("audit:\n  on: shop.item.created\n  kind: rust\n  {QUICK_RETRY}\n"),
        rust,
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let item = create_item(&app, &staff, "audited").await;
    let created = event_id(&db, item, 1).await;

    let run = finished(&db, "shop.audit", created).await;
    assert_eq!(run.state, "succeeded", "{run:?}");
    let note = eventually("the note to be readable", || async {
        let page = json(app.get("/v1/shop/note", &staff).await).await;
        page["data"]
            .as_array()?
            .iter()
            .find(|n| n["item"] == item.to_string())
            .cloned()
    })
    .await;
    assert_eq!(note["created_by"], "task:shop.audit");
    assert_eq!(note["text"], "created");

    let metadata = |event: Uuid| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT metadata FROM herald.events WHERE event_id = $1",
                &[&event],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get::<_, Value>(0)
        }
    };
    let note_event = event_id(&db, uuid_of(&note["id"]), 1).await;
    let (cause, effect) = (metadata(created).await, metadata(note_event).await);
    assert_eq!(effect["causation_id"], created.to_string());
    assert_eq!(
        effect["correlation_id"], cause["correlation_id"],
        "the task's command continues the item's correlation"
    );
    assert_eq!(effect["actor"]["sub"], "task:shop.audit");
    stop(app).await;
}

#[tokio::test]
async fn a_command_task_fires_only_when_its_condition_holds() {
    let app = spawn_shop(
        "sell_out:
  on: shop.item.updated
  when: {stock: {eq: 0}}
  kind: command
  command:
    target: shop.item
    action: update
    id: $event.document_id
    body: {status: sold_out}
",
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let (first, second) = (
        create_item(&app, &staff, "first").await,
        create_item(&app, &staff, "second").await,
    );
    let patch = |item: Uuid, stock: i64| {
        let staff = &staff;
        let app = &app;
        async move {
            let response = app
                .patch(
                    &format!("/v1/shop/item/{item}"),
                    staff,
                    &json!({"stock": stock}),
                )
                .await;
            assert_eq!(response.status(), 200);
            json(response).await["version"].as_i64().unwrap_or_default()
        }
    };
    let sold_out = |item: Uuid| {
        let (staff, app) = (&staff, &app);
        async move {
            eventually(&format!("{item} to be sold out"), || async {
                let read = json(app.get(&format!("/v1/shop/item/{item}"), staff).await).await;
                (read["status"] == "sold_out").then_some(read)
            })
            .await
        }
    };

    let restocked = patch(first, 3).await;
    let emptied = patch(first, 0).await;
    let read = sold_out(first).await;
    assert_eq!(read["stock"], 0);
    assert_eq!(read["updated_by"], "task:shop.sell_out");
    let emptied_second = patch(second, 0).await;
    sold_out(second).await;
    let expected = [
        event_id(&db, first, emptied).await,
        event_id(&db, second, emptied_second).await,
    ];
    for event in expected {
        let run = finished(&db, "shop.sell_out", event).await;
        assert_eq!(run.state, "succeeded", "{run:?}");
        assert_eq!(run.attempts, 1, "{run:?}");
    }
    await_triggers_read_the_log(&db).await;

    let fired: HashSet<Option<Uuid>> = runs_of(&db, "shop.sell_out")
        .await
        .iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(
        fired,
        expected.map(Some).into(),
        "only the updates to stock 0 fired: not stock 3, not the task's own status updates"
    );
    assert_eq!(app.count("herald.tasks").await, 2);
    assert!(
        run_for(&db, "shop.sell_out", event_id(&db, first, restocked).await)
            .await
            .is_none()
    );
    stop(app).await;
}

#[tokio::test]
async fn rebuilding_a_view_runs_no_task_again() {
    let receiver = Receiver::start(always(200)).await;
    let app = spawn_hooked(&receiver).await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let operator = app.token("ada", &["admin"], "acme");
    for i in 0..3 {
        let item = create_item(&app, &staff, &format!("before {i}")).await;
        let run = finished_hook(&db, item).await;
        assert_eq!(run.state, "succeeded", "{run:?}");
    }

    let started = send(app.request(
        Method::POST,
        "/v1/admin/projections/shop.item/rebuild",
        Some(&operator),
    ))
    .await;
    assert_eq!(started.status(), 202);
    eventually("the rebuilt view to serve reads", || async {
        let status = json(app.get("/v1/admin/projections/shop.item", &operator).await).await;
        status["versions"]
            .as_array()?
            .iter()
            .any(|v| v["state"] == "active" && v["version"] == 2)
            .then_some(())
    })
    .await;
    // A run made after the rebuild shows the trigger reader went on from where it was.
    let after = create_item(&app, &staff, "after").await;
    let run = finished_hook(&db, after).await;
    assert_eq!(run.state, "succeeded", "{run:?}");
    await_triggers_read_the_log(&db).await;

    assert_eq!(
        app.count("herald.tasks").await,
        4,
        "one run per created item"
    );
    let requests = receiver.requests();
    let ids: HashSet<String> = requests.iter().map(Received::webhook_id).collect();
    assert_eq!(requests.len(), 4, "no delivery again");
    assert_eq!(ids.len(), 4);
    stop(app).await;
}

#[tokio::test]
async fn a_run_is_visible_to_its_tenants_admins_and_operators_only() {
    let receiver = Receiver::start(always(200)).await;
    let app = spawn_hooked(&receiver).await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "globex");
    let item = create_item(&app, &staff, "private").await;
    let run = finished_hook(&db, item).await;
    let path = format!("/v1/tasks/{}", run.id);

    for (who, token) in [
        ("a user of the tenant", app.token("una", &[], "globex")),
        ("staff of the tenant", staff.clone()),
        (
            "an admin of another tenant",
            app.token("ivo", &["admin"], "initech"),
        ),
    ] {
        assert_eq!(app.get(&path, &token).await.status(), 404, "{who}");
    }
    assert_eq!(
        send(app.request(Method::GET, &path, None)).await.status(),
        401
    );
    for (who, token) in [
        ("the tenant's admin", app.token("gil", &["admin"], "globex")),
        ("an operator", app.token("ada", &["admin"], "acme")),
    ] {
        let response = app.get(&path, &token).await;
        assert_eq!(response.status(), 200, "{who}");
        let shown = json(response).await;
        assert_eq!(shown["id"], run.id.to_string(), "{who}");
        assert_eq!(shown["name"], "shop.hook");
        assert_eq!(shown["state"], "succeeded");
        assert!(shown.get("payload").is_none(), "the event is not shown");
    }
    let admin = app.token("gil", &["admin"], "globex");
    let unknown = format!("/v1/tasks/{}", Uuid::new_v4());
    assert_eq!(app.get(&unknown, &admin).await.status(), 404);
    stop(app).await;
}

#[tokio::test]
async fn events_written_before_any_worker_ran_are_run_when_one_starts() {
    const ITEMS: usize = 5;
    let receiver = Receiver::start(always(200)).await;
    let apps = shop_apps(&hook_yaml(&receiver.url, &[QUICK_RETRY]));
    // A fresh installation whose workers start last: the api registers the trigger before it
    // accepts the first write.
    let app = TestApp::spawn_with(Options {
        apps,
        roles: vec![Role::Api, Role::Handler, Role::Projector],
        configure: with_hook_secret,
        ..herald_tests::petstore()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut items = Vec::new();
    for i in 0..ITEMS {
        items.push(create_item(&app, &staff, &format!("early {i}")).await);
    }
    assert_eq!(app.count("herald.tasks").await, 0, "no worker has run yet");
    let worker = TestApp::spawn_with(Options {
        roles: vec![Role::Worker],
        configure: with_hook_secret,
        ..app.restart_options()
    })
    .await;
    let db = app.db().await;
    for item in &items {
        let run = finished_hook(&db, *item).await;
        assert_eq!(run.state, "succeeded");
    }
    assert_eq!(
        receiver.requests().len(),
        ITEMS,
        "one delivery per early event"
    );
    worker
        .stop()
        .await
        .unwrap_or_else(|e| panic!("the worker did not stop: {e:#}"));
    stop(app).await;
}

#[tokio::test]
async fn another_copy_of_a_finished_runs_message_does_not_run_it_again() {
    let receiver = Receiver::start(always(204)).await;
    let (app, db, item, run) = one_delivered_item(&receiver, "once only").await;
    assert_eq!(receiver.requests().len(), 1);

    let bus = publish_copy(&app, run.id).await;
    await_drained(&bus).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "the copy did not deliver again"
    );
    let after = finished_hook(&db, item).await;
    assert_eq!((after.state.as_str(), after.attempts), ("succeeded", 1));
    stop(app).await;
}

/// Waits until the task stream holds no message: every copy was taken and acknowledged.
async fn await_drained(bus: &Bus) {
    let stream = herald_workers::queue::stream_name(bus);
    eventually("the task stream to be drained", || async {
        let mut stream = bus.jetstream.get_stream(&stream).await.ok()?;
        (stream.info().await.ok()?.state.messages == 0).then_some(())
    })
    .await;
}

/// Publishes another copy of a run's message, with a message id JetStream's duplicate window
/// does not catch, as an outbox publish repeated after the window would be; returns the bus.
async fn publish_copy(app: &TestApp, run: Uuid) -> Bus {
    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let copy =
        json!({"id": run, "name": "shop.hook", "tenant": "acme", "payload": null, "round": 0});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{run}.copy").as_str());
    bus.jetstream
        .publish_with_headers(
            herald_workers::queue::subject(&bus, "shop.hook"),
            headers,
            copy.to_string().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bus
}

#[tokio::test]
async fn another_copy_of_a_running_runs_message_waits_for_it_instead_of_running_it_too() {
    // The first delivery takes a while, long enough for the copy to arrive meanwhile.
    let receiver = Receiver::start(Box::new(|_, earlier| {
        if earlier == 0 {
            Reply::Late(Duration::from_secs(2))
        } else {
            Reply::Status(200)
        }
    }))
    .await;
    let app = spawn_shop(
        &hook_yaml(&receiver.url, &["timeout_secs: 10", QUICK_RETRY]),
        TaskRegistry::default(),
    )
    .await;
    let db = app.db().await;
    let staff = app.token("sam", &["staff"], "acme");
    let item = create_item(&app, &staff, "slow").await;
    let event = event_id(&db, item, 1).await;
    let run = eventually("the run to be delivered", || async {
        let run = run_for(&db, "shop.hook", event).await?;
        (run.state == "running" && !receiver.requests().is_empty()).then_some(run)
    })
    .await;
    let bus = publish_copy(&app, run.id).await;
    let done = finished_hook(&db, item).await;
    assert_eq!((done.state.as_str(), done.attempts), ("succeeded", 1));
    await_drained(&bus).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "the copy did not run the run a second time"
    );
    stop(app).await;
}

#[tokio::test]
async fn a_worker_with_an_older_declaration_leaves_a_new_trigger_to_one_that_knows_it() {
    const ITEMS: usize = 5;
    let receiver = Receiver::start(always(200)).await;
    // The old declaration triggers on notes only; the new one adds a trigger on items.
    let old_apps = shop_apps(&format!(
        "audit_notes:\n  on: shop.note.created\n  kind: webhook\n  url: {}\n  secret: hook\n",
        receiver.url
    ));
    let new_apps = shop_apps(&hook_yaml(&receiver.url, &[QUICK_RETRY]));
    let old_worker = TestApp::spawn_with(Options {
        apps: old_apps,
        roles: vec![Role::Worker],
        configure: with_hook_secret,
        ..herald_tests::petstore()
    })
    .await;
    // A rolling deploy: the new api serves while the old worker still runs.
    let app = TestApp::spawn_with(Options {
        apps: new_apps.clone(),
        roles: vec![Role::Api, Role::Handler, Role::Projector],
        configure: with_hook_secret,
        ..old_worker.restart_options()
    })
    .await;
    let staff = app.token("sam", &["staff"], "acme");
    let mut items = Vec::new();
    for i in 0..ITEMS {
        items.push(create_item(&app, &staff, &format!("deployed {i}")).await);
    }
    let new_worker = TestApp::spawn_with(Options {
        apps: new_apps,
        roles: vec![Role::Worker],
        configure: with_hook_secret,
        ..app.restart_options()
    })
    .await;
    // Had the old worker read past the items' events, they would have no runs.
    let db = app.db().await;
    for item in &items {
        let run = finished_hook(&db, *item).await;
        assert_eq!(run.state, "succeeded", "{run:?}");
    }
    assert_eq!(receiver.requests().len(), ITEMS);
    for worker in [old_worker, new_worker] {
        worker
            .stop()
            .await
            .unwrap_or_else(|e| panic!("a worker did not stop: {e:#}"));
    }
    stop(app).await;
}
