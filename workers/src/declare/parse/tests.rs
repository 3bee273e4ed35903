#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use herald_bus::schema::LoadError;

use crate::declare::{
    CommandTemplate, Condition, ConditionOp, RetryPolicy, TaskDecl, TaskKind, TemplateAction,
    Trigger, from_sources,
};

const PRODUCT: &str = "\
fields:
  name: {type: string}
  stock: {type: integer}
  price: {type: number}
  status: {type: string, enum: [draft, published, retired]}
  active: {type: boolean}
  released: {type: datetime}
  sku: {type: uuid}
  tags: {type: array, items: {type: string}}
  dimensions: {type: object, fields: {width: {type: number}}}
";

/// Loads `tasks` as `petstore/tasks.yaml` next to `petstore/product.yaml`.
fn errors(tasks: &str) -> Vec<LoadError> {
    from_sources(&[
        ("petstore", "product", PRODUCT),
        ("petstore", "tasks", tasks),
    ])
    .unwrap_err()
    .0
}

/// The only error, as `(line, column, message)`.
fn only(tasks: &str) -> (usize, usize, String) {
    let errors = errors(tasks);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert_eq!(error.file, Path::new("petstore/tasks.yaml"));
    (
        error.line.unwrap(),
        error.column.unwrap(),
        error.message.clone(),
    )
}

fn condition(path: &str, op: ConditionOp, value: serde_json::Value) -> Condition {
    Condition::new(path, op, value)
}

#[test]
fn a_valid_file_parses_with_defaults_applied() {
    let yaml = "\
notify_low_stock:
  description: Tell the warehouse when stock runs low
  on: petstore.product.updated
  when:
    stock: {lt: 5}
    status: published
    released: {gte: '2024-01-01T00:00:00Z', exists: true}
  kind: webhook
  url: https://hooks.example.com/x
  secret: warehouse
  timeout_secs: 10
  retry:
    max_attempts: 8
    backoff_ms: 2000
    max_delay_secs: 60
  concurrency: 4
mark_sold_out:
  on: petstore.product.updated
  when: {stock: {eq: 0}, dimensions.width: {in: [1, 2.5]}}
  kind: command
  command:
    target: petstore.product
    action: update
    id: $event.document_id
    body: {status: retired, name: {by: $event.actor.sub}}
reindex:
  kind: rust
";
    let (_, tasks) = from_sources(&[
        ("petstore", "product", PRODUCT),
        ("petstore", "tasks", yaml),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = tasks.iter().map(TaskDecl::full_name).collect();
    assert_eq!(
        names,
        [
            "petstore.notify_low_stock",
            "petstore.mark_sold_out",
            "petstore.reindex"
        ]
    );

    let notify = tasks.get("petstore.notify_low_stock").unwrap();
    let released = Condition {
        datetime: true,
        ..condition("released", ConditionOp::Gte, json!("2024-01-01T00:00:00Z"))
    };
    let expected = TaskDecl {
        app: "petstore".into(),
        name: "notify_low_stock".into(),
        description: Some("Tell the warehouse when stock runs low".into()),
        trigger: Some(Trigger {
            event_type: "petstore.product.updated".into(),
            when: vec![
                condition("stock", ConditionOp::Lt, json!(5)),
                condition("status", ConditionOp::Eq, json!("published")),
                released,
                Condition {
                    datetime: true,
                    ..condition("released", ConditionOp::Exists, json!(true))
                },
            ],
        }),
        kind: TaskKind::Webhook {
            url: "https://hooks.example.com/x".into(),
            secret: "warehouse".into(),
        },
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 8,
            backoff: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        },
        concurrency: 4,
    };
    assert_eq!(notify, &expected);

    let sold_out = tasks.get("petstore.mark_sold_out").unwrap();
    let trigger = sold_out.trigger.as_ref().unwrap();
    assert_eq!(
        trigger.when,
        [
            condition("stock", ConditionOp::Eq, json!(0)),
            condition("dimensions.width", ConditionOp::In, json!([1, 2.5])),
        ]
    );
    let TaskKind::Command(command) = &sold_out.kind else {
        panic!("a command task")
    };
    let serde_json::Value::Object(body) =
        json!({"status": "retired", "name": {"by": "$event.actor.sub"}})
    else {
        panic!("an object")
    };
    assert_eq!(
        command,
        &CommandTemplate {
            app: "petstore".into(),
            doc: "product".into(),
            action: TemplateAction::Update,
            id: Some("$event.document_id".into()),
            body,
            roles: vec!["admin".into()],
        }
    );

    let reindex = tasks.get("petstore.reindex").unwrap();
    assert_eq!(
        (
            &reindex.kind,
            &reindex.trigger,
            reindex.timeout,
            &reindex.retry,
            reindex.concurrency
        ),
        (
            &TaskKind::Rust,
            &None,
            Duration::from_secs(30),
            &RetryPolicy::default(),
            10
        )
    );
    assert!(tasks.get("petstore.nope").is_none());
    assert!(tasks.get("reindex").is_none());
}

#[test]
fn a_tasks_source_is_not_a_document_and_may_declare_nothing() {
    let (registry, tasks) = from_sources(&[
        ("petstore", "product", PRODUCT),
        ("petstore", "tasks", "# nothing yet\n"),
    ])
    .unwrap();
    let names: Vec<String> = registry
        .documents()
        .map(|doc| doc.collection().to_string())
        .collect();
    assert_eq!(names, ["petstore.product"]);
    assert!(tasks.all().is_empty());
    assert!(registry.get("petstore", "tasks").is_none());
}

#[test]
fn create_commands_may_omit_the_id_and_name_roles() {
    let yaml = "\
copy:
  on: petstore.product.created
  kind: command
  command:
    target: petstore.product
    action: create
    body: {name: $event.data.name, tags: [$event.tenant, copy]}
    roles: [staff, warehouse-lead]
";
    let (_, tasks) = from_sources(&[
        ("petstore", "product", PRODUCT),
        ("petstore", "tasks", yaml),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let TaskKind::Command(command) = &tasks.all()[0].kind else {
        panic!("a command task")
    };
    assert_eq!(command.id, None);
    assert_eq!(command.roles, ["staff", "warehouse-lead"]);
}

#[test]
fn each_mistake_is_reported_at_its_node() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "t:\n  kind: rust\n  colour: red\n",
            (3, 3),
            "task `t`: unknown key `colour` (expected description, on, when, kind, url, secret, \
             timeout_secs, retry, concurrency, command)",
        ),
        (
            "t:\n  on: petstore.order.updated\n  kind: rust\n",
            (2, 7),
            "task `t`: `on`: `petstore.order` is not a declared document",
        ),
        (
            "t:\n  on: petstore.product.deleted\n  kind: rust\n",
            (2, 7),
            "task `t`: `on`: unknown verb `deleted` (expected created, updated, archived, restored)",
        ),
        (
            "t:\n  on: product.updated\n  kind: rust\n",
            (2, 7),
            "task `t`: `on` must be an event type <app>.<doc>.<verb>, e.g. petstore.product.updated",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {colour: red}\n  kind: rust\n",
            (3, 10),
            "task `t`: `when.colour`: `petstore.product` has no field `colour`",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {dimensions.depth: {gt: 1}}\n  kind: rust\n",
            (3, 10),
            "task `t`: `when.dimensions.depth`: `petstore.product` has no field `dimensions.depth`",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {stock: {lt: '5'}}\n  kind: rust\n",
            (3, 22),
            "task `t`: `when.stock`: `lt`: must be an integer",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {active: 1}\n  kind: rust\n",
            (3, 18),
            "task `t`: `when.active`: must be true or false",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {name: 3}\n  kind: rust\n",
            (3, 16),
            "task `t`: `when.name`: must be a string",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {stock: {below: 5}}\n  kind: rust\n",
            (3, 18),
            "task `t`: `when.stock`: unknown operator `below` (expected eq, neq, lt, lte, gt, gte, \
             in, exists)",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {active: {lt: true}}\n  kind: rust\n",
            (3, 23),
            "task `t`: `when.active`: `lt`: does not apply to boolean fields (only to integer, \
             number, date, datetime and string fields)",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {stock: {in: []}}\n  kind: rust\n",
            (3, 22),
            "task `t`: `when.stock`: `in`: expected a non-empty list of values",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {stock: {in: [1, x]}}\n  kind: rust\n",
            (3, 26),
            "task `t`: `when.stock`: `in`: must be an integer",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {stock: {exists: yes}}\n  kind: rust\n",
            (3, 26),
            "task `t`: `when.stock`: `exists` must be true or false",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {status: sold}\n  kind: rust\n",
            (3, 18),
            "task `t`: `when.status`: is not one of draft, published, retired",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {released: {lt: yesterday}}\n  kind: rust\n",
            (3, 25),
            "task `t`: `when.released`: `lt`: must be an RFC 3339 date-time, e.g. \
             2024-05-01T12:00:00Z",
        ),
        (
            "t:\n  on: petstore.product.updated\n  when: {tags: {eq: a}}\n  kind: rust\n",
            (3, 21),
            "task `t`: `when.tags`: `eq`: only `exists` applies to array fields",
        ),
        (
            "t:\n  when: {stock: 1}\n  kind: rust\n",
            (2, 3),
            "task `t`: `when` needs `on`: its conditions test the data of the event `on` names",
        ),
        (
            "t:\n  description: no kind\n",
            (1, 1),
            "task `t`: missing `kind` (webhook, command, rust)",
        ),
        (
            "t:\n  kind: cron\n",
            (2, 9),
            "task `t`: unknown kind `cron` (expected webhook, command, rust)",
        ),
        (
            "t:\n  kind: rust\n  url: https://x.example\n",
            (3, 3),
            "task `t`: `url` does not apply to kind `rust`",
        ),
        (
            "t:\n  kind: webhook\n  url: ftp://x.example/in\n  secret: s\n",
            (3, 8),
            "task `t`: `url` must be an absolute http or https URL",
        ),
        (
            "t:\n  kind: webhook\n  url: https://x.example/in\n",
            (1, 1),
            "task `t`: missing `secret`",
        ),
        (
            "t:\n  kind: webhook\n  url: https://x.example/in\n  secret: Bad-Name\n",
            (4, 11),
            "task `t`: `secret` must name a signing secret in settings (webhooks.secrets.<name>) \
             matching ^[a-z][a-z0-9_]*$",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: archive, id: $event.doc_id}\n",
            (3, 60),
            "task `t`: `command.id`: `$event.doc_id`: the event has no `doc_id` (expected one of \
             id, type, document_id, version, time, actor, data, tenant)",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: archive, id: '42'}\n",
            (3, 60),
            "task `t`: `command.id`: must be a UUID or a template $event.<path>",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: update, body: {name: x}}\n",
            (1, 1),
            "task `t`: `command.id` is required for `update`",
        ),
        (
            "t:\n  kind: command\n  command:\n    target: petstore.product\n    action: archive\n    id: $event.document_id\n    body: {name: x}\n",
            (7, 5),
            "task `t`: `command.body` does not apply to `archive`",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: create}\n",
            (1, 1),
            "task `t`: `command.body` is required for `create`",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: create, body: {name: $event.data..name}}\n",
            (3, 68),
            "task `t`: `command.body.name`: `$event.data..name` has an empty step in its path",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: create, body: {colour: red}}\n",
            (3, 62),
            "task `t`: `command.body.colour`: `petstore.product` has no field `colour`",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.order, action: create, body: {}}\n",
            (3, 21),
            "task `t`: `command.target`: `petstore.order` is not a declared document",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: delete, id: $event.document_id}\n",
            (3, 47),
            "task `t`: `command.action`: unknown action `delete` (expected create, update, \
             archive, restore)",
        ),
        (
            "t:\n  kind: command\n  command: {action: create, body: {}}\n",
            (1, 1),
            "task `t`: missing `command.target`",
        ),
        (
            "t:\n  kind: command\n  command: {target: petstore.product, action: create, body: {}, roles: [owner]}\n",
            (3, 73),
            "task `t`: `command.roles`: `owner` is not a role a token carries (use staff, admin or \
             a custom role)",
        ),
        (
            "t:\n  kind: command\n",
            (1, 1),
            "task `t`: missing `command`",
        ),
        (
            "Bad:\n  kind: rust\n",
            (1, 1),
            "invalid task name `Bad`: must match ^[a-z][a-z0-9_]*$",
        ),
        ("- kind: rust\n", (1, 1), "the tasks file must be a mapping"),
    ];
    for (yaml, position, message) in cases {
        let (line, column, found) = only(yaml);
        assert_eq!(
            (&found.as_str(), (line, column)),
            (message, *position),
            "{yaml}"
        );
    }
}

#[test]
fn numbers_out_of_range_are_reported_with_their_limits() {
    let cases = [
        (
            "timeout_secs: 0",
            "`timeout_secs` must be a whole number from 1 to 3600",
        ),
        (
            "timeout_secs: 3601",
            "`timeout_secs` must be a whole number from 1 to 3600",
        ),
        (
            "concurrency: 1001",
            "`concurrency` must be a whole number from 1 to 1000",
        ),
        (
            "concurrency: 2.5",
            "`concurrency` must be a whole number from 1 to 1000",
        ),
        (
            "retry: {max_attempts: 0}",
            "`retry.max_attempts` must be a whole number from 1 to 100",
        ),
        (
            "retry: {backoff_ms: 5}",
            "`retry.backoff_ms` must be a whole number from 10 to 3600000",
        ),
        (
            "retry: {max_delay_secs: 86401}",
            "`retry.max_delay_secs` must be a whole number from 1 to 86400",
        ),
        (
            "retry: {backoff_ms: 10000, max_delay_secs: 5}",
            "`retry.max_delay_secs` (5s) must be at least `retry.backoff_ms` (10000ms)",
        ),
        (
            "retry: {backoff_ms: 600000}",
            "`retry.max_delay_secs` (300s, the default) must be at least `retry.backoff_ms` \
             (600000ms)",
        ),
        (
            "retry: {jitter: 1}",
            "`retry`: unknown key `jitter` (expected max_attempts, backoff_ms, max_delay_secs)",
        ),
    ];
    for (line, expected) in cases {
        let (row, _, message) = only(&format!("t:\n  kind: rust\n  {line}\n"));
        assert_eq!(
            (row, message),
            (3, format!("task `t`: {expected}")),
            "{line}"
        );
    }
}

#[test]
fn every_mistake_of_the_file_is_reported_in_position_order() {
    let yaml = "\
a:
  on: petstore.product.updated
  when: {stock: {lt: x}, colour: 1}
  kind: webhook
  url: nowhere
b:
  kind: rust
  timeout_secs: 0
c:
  on: petstore.nothing.updated
  when: {colour: 1}
  kind: cron
";
    let found: Vec<(Option<usize>, Option<usize>)> =
        errors(yaml).iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        found,
        [
            (Some(1), Some(1)),
            (Some(3), Some(22)),
            (Some(3), Some(26)),
            (Some(5), Some(8)),
            (Some(8), Some(17)),
            (Some(10), Some(7)),
            (Some(12), Some(9)),
        ]
    );
}

#[test]
fn yaml_errors_and_document_mistakes_do_not_hide_each_other() {
    let errors = from_sources(&[
        ("petstore", "product", "fields: {a: {type: nubmer}}"),
        (
            "petstore",
            "tasks",
            "t:\n  on: petstore.product.updated\n  when: {b: 1}\n  kind: rust\n",
        ),
    ])
    .unwrap_err()
    .0;
    // The document is declared, so the trigger is accepted; its fields are unknown, so the
    // condition is not checked.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, Path::new("petstore/product.yaml"));

    let (line, _, message) = only("t: {kind: rust\n");
    assert_eq!(line, 2);
    assert!(message.starts_with("invalid YAML: "), "{message}");
}

#[test]
fn triggers_name_declared_commands_events_and_test_only_declared_data() {
    let product = format!(
        "{PRODUCT}commands:
  publish: {{emits: published, set: {{status: published}}}}
  restock: {{kind: rust, emits: restocked}}
"
    );
    let load = |tasks: &str| {
        from_sources(&[
            ("petstore", "product", product.as_str()),
            ("petstore", "tasks", tasks),
        ])
    };
    let on_published =
        "t:\n  on: petstore.product.published\n  when: {status: published}\n  kind: rust\n";
    let (_, tasks) = load(on_published).unwrap();
    assert_eq!(tasks.all().len(), 1);
    let on_restocked = "t:\n  on: petstore.product.restocked\n  when: {stock: 3}\n  kind: rust\n";
    let errors = load(on_restocked).unwrap_err().0;
    assert!(
        errors[0]
            .message
            .contains("`when` cannot test `restocked`: a `kind: rust` command's event"),
        "{errors:?}"
    );
    let unknown = "t:\n  on: petstore.product.exploded\n  kind: rust\n";
    let errors = load(unknown).unwrap_err().0;
    assert!(
        errors[0].message.contains(
            "unknown verb `exploded` (expected created, updated, archived, restored, published, restocked)"
        ),
        "{errors:?}"
    );
}
