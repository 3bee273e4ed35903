//! The Rust code of the `{{name}}` app: the `escalate` command of `apps/{{name}}/ticket.yaml`,
//! declared `kind: rust`. [`app`] registers it; `src/main.rs` runs it.

use herald_bus::access::Principal;
use herald_bus::document::DocumentState;
use herald_bus::rust_command::{Emit, Refusal, RustCommand};
use serde::Deserialize;
use serde_json::{Value, json};

/// The app's code, ready to run or to test with.
pub fn app() -> herald_cli::App {
    herald_cli::App::new().command("{{name}}.ticket.escalate", Escalate)
}

/// `POST /v1/{{name}}/ticket/{id}/escalate {"reason": "..."}`: the priority grows by one, up to 5.
pub struct Escalate;

/// The body, already checked against the YAML's `params`.
#[derive(Deserialize)]
pub struct Reason {
    pub reason: String,
}

impl RustCommand for Escalate {
    type Params = Reason;

    fn decide(
        &self,
        ticket: &DocumentState,
        params: Reason,
        _caller: &Principal,
    ) -> Result<Vec<Emit>, Refusal> {
        let priority = ticket
            .fields
            .get("priority")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if priority >= 5 {
            return Err(Refusal::new(
                "already_urgent",
                "The ticket is as urgent as it gets",
            ));
        }
        Ok(vec![
            Emit::new(
                "escalated",
                json!({"reason": params.reason, "from": priority}),
            )
            .set("priority", priority + 1),
        ])
    }
}
