//! When an event starts a task: its type, and conditions on its `data` that must all hold.

use herald_bus::schema::condition::Condition;
use serde_json::Value;

/// The event that starts a task (YAML `on` and `when`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `<app>.<doc>.<verb>`, e.g. `petstore.product.updated`.
    pub event_type: String,
    /// Every condition must hold; none means every event of the type.
    pub when: Vec<Condition>,
}

impl Trigger {
    /// Whether an event of `event_type` carrying `data` starts the task.
    ///
    /// An update's `data` holds only the fields that changed, so a condition on any other
    /// field is false (except `exists: false`): a task on `stock < 5` runs when stock changes
    /// to below 5, not on every later edit of the name.
    #[must_use]
    pub fn matches(&self, event_type: &str, data: &Value) -> bool {
        self.event_type == event_type && self.when.iter().all(|condition| condition.holds(data))
    }
}

#[cfg(test)]
mod tests {
    use herald_bus::schema::condition::ConditionOp;
    use serde_json::json;

    use super::*;

    fn condition(path: &str, op: ConditionOp, value: Value) -> Condition {
        Condition::new(path, op, value)
    }

    #[test]
    fn a_trigger_needs_its_event_type_and_every_condition() {
        let trigger = Trigger {
            event_type: "petstore.product.updated".into(),
            when: vec![
                condition("stock", ConditionOp::Lt, json!(5)),
                condition("status", ConditionOp::Eq, json!("published")),
            ],
        };
        let low = json!({"stock": 2, "status": "published"});
        assert!(trigger.matches("petstore.product.updated", &low));
        assert!(!trigger.matches("petstore.product.created", &low));
        assert!(!trigger.matches("petstore.product.updated", &json!({"stock": 2})));
        let any = Trigger {
            event_type: "petstore.product.archived".into(),
            when: Vec::new(),
        };
        assert!(any.matches("petstore.product.archived", &json!({})));
    }
}
