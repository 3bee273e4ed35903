//! The task runtime on real JetStream: a registered task runs once per enqueue (duplicates
//! dropped), retryable failures run again after a back-off, permanent ones stop.

use std::sync::{Arc, Mutex};

use herald_bus::nats::Bus;
use herald_tests::{Options, TestApp, eventually};
use herald_workers::{Task, TaskContext, TaskEnvelope, TaskError, enqueue};
use serde_json::json;
use uuid::Uuid;

/// Records every attempt; fails as the payload says.
#[derive(Clone, Default)]
struct Recorder {
    attempts: Arc<Mutex<Vec<(String, u64)>>>,
}

#[async_trait::async_trait]
impl Task for Recorder {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let label = ctx.task.payload["label"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((label.clone(), ctx.attempt));
        match (label.as_str(), ctx.attempt) {
            ("flaky", 1) => Err(TaskError::Retry("first attempt fails".into())),
            ("broken", _) => Err(TaskError::Permanent("never works".into())),
            _ => Ok(()),
        }
    }
}

fn task(label: &str) -> TaskEnvelope {
    TaskEnvelope {
        id: Uuid::now_v7(),
        name: "record".into(),
        tenant: "acme".into(),
        payload: json!({"label": label}),
        round: 0,
        traceparent: None,
    }
}

#[tokio::test]
async fn tasks_run_once_retry_after_a_back_off_and_stop_when_permanent() {
    let recorder = Recorder::default();
    let app = TestApp::spawn_with(Options {
        app: herald_petstore::app().task("record", recorder.clone()),
        ..herald_tests::petstore()
    })
    .await;
    let bus = Bus::connect(&app.settings.nats)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let db = app.db().await;
    let once = task("once");
    enqueue(&db, &once, 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    enqueue(&db, &once, 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for label in ["flaky", "broken"] {
        enqueue(&db, &task(label), 5)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let attempts = eventually("every task to settle", || async {
        let attempts = recorder
            .attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        attempts
            .iter()
            .any(|(label, attempt)| label == "flaky" && *attempt == 2)
            .then_some(attempts)
    })
    .await;
    let count = |label: &str| attempts.iter().filter(|(l, _)| l == label).count();
    assert_eq!(
        count("once"),
        1,
        "the same task id enqueued twice runs once"
    );
    assert_eq!(count("flaky"), 2, "a retryable failure runs again");
    assert_eq!(count("broken"), 1, "a permanent failure is not retried");
    let stream = herald_workers::queue::stream_name(&bus);
    eventually("the task queue to drain", || async {
        let mut stream = bus.jetstream.get_stream(&stream).await.ok()?;
        (stream.info().await.ok()?.state.messages == 0).then_some(())
    })
    .await;
    app.stop_and_clean().await;
}
