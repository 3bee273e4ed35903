//! Given / when / then tests of the command handler's decisions, run through the real
//! [`Handler`] against the in-memory [`MemoryStore`] (the same `EventStore` trait as Postgres).
//!
//! Each test reads as: `given(registry)` builds a scenario, `.given(command)` applies a command
//! that must succeed, `.when(command)` returns the outcome under test, then the outcome and the
//! appended events are checked.

use std::sync::Arc;

use chrono::Utc;
use herald_bus::access::Principal;
use herald_bus::command::{
    Action, CommandEnvelope, Effect, Outcome, Rejection, RejectionCode, Success,
};
use herald_bus::document::DocumentState;
use herald_bus::ids::{CommandId, TenantId};
use herald_bus::rust_command::{CollectionCommand, Emit, Refusal, RustCommand, RustCommands};
use herald_bus::schema::{ErrorCode, Registry};
use herald_bus::store::MemoryStore;
use herald_handler::Handler;
use serde_json::{Map, Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// The DSL
// ---------------------------------------------------------------------------------------------

const PRODUCT: &str = include_str!("../../examples/petstore/apps/petstore/product.yaml");
const SUPPLIER: &str = include_str!("../../examples/petstore/apps/petstore/supplier.yaml");

/// A note belongs to its writer: any user creates, only the owner changes or archives it.
/// `budget` is staff-only to write; `origin.country` and `frozen` are immutable; `slug` and
/// `seat` are unique; `related` and `contract` refer to other documents.
const NOTE: &str = r#"
fields:
  title:    {type: string, required: true}
  budget:   {type: number, min: 0, acl: {write: staff}}
  slug:     {type: string, unique: true}
  seat:     {type: integer, unique: true}
  related:  {type: array, items: {type: ref, to: notes.note}}
  contract: {type: ref, to: notes.contract}
  origin:
    type: object
    fields:
      country: {type: string, immutable: true}
      city:    {type: string}
  frozen:
    type: object
    immutable: true
    fields:
      a: {type: integer}
      b: {type: integer}
acl:
  create: user
  read: user
  update: owner
  delete: owner
"#;

/// A staff-only collection whose writes must name the version they were based on.
const CONTRACT: &str = r"
fields:
  title: {type: string, required: true}
acl:
  create: staff
  read: staff
  update: staff
  delete: staff
require_if_match: true
";

fn petstore() -> Registry {
    Registry::from_sources(&[
        ("petstore", "product", PRODUCT),
        ("petstore", "supplier", SUPPLIER),
    ])
    .unwrap_or_else(|e| panic!("the petstore example must load:\n{e}"))
}

fn notes() -> Registry {
    Registry::from_sources(&[("notes", "note", NOTE), ("notes", "contract", CONTRACT)])
        .unwrap_or_else(|e| panic!("the notes documents must load:\n{e}"))
}

struct Scenario {
    store: MemoryStore,
    handler: Handler<MemoryStore>,
}

fn given(registry: Registry) -> Scenario {
    let store = MemoryStore::default();
    let handler = Handler::new(store.clone(), Arc::new(registry), 3);
    Scenario { store, handler }
}

impl Scenario {
    /// Applies a command that must succeed (a precondition of the test, not what it tests).
    async fn given(&self, command: &CommandEnvelope) -> Success {
        match self.when(command).await {
            Outcome::Succeeded(success) => success,
            Outcome::Rejected(rejection) => {
                panic!("given {:?} was rejected: {rejection:?}", command.action)
            }
        }
    }

    async fn when(&self, command: &CommandEnvelope) -> Outcome {
        self.handler
            .handle(command)
            .await
            .unwrap_or_else(|e| panic!("the in-memory store failed: {e}"))
    }

    /// `(event type, version)` of every event appended so far.
    fn event_log(&self) -> Vec<(String, i64)> {
        self.store
            .events()
            .into_iter()
            .map(|e| (e.event_type, e.version))
            .collect()
    }
}

#[track_caller]
fn succeeded(outcome: Outcome) -> Success {
    match outcome {
        Outcome::Succeeded(success) => success,
        Outcome::Rejected(rejection) => panic!("expected success, got {rejection:?}"),
    }
}

#[track_caller]
fn rejected(outcome: Outcome, code: RejectionCode) -> Rejection {
    match outcome {
        Outcome::Rejected(rejection) => {
            assert_eq!(rejection.code, code, "{rejection:?}");
            rejection
        }
        Outcome::Succeeded(success) => panic!("expected {code:?}, got success {success:?}"),
    }
}

/// A `422` whose errors are exactly `expected` (pointer, code), in any order.
#[track_caller]
fn invalid(outcome: Outcome, expected: &[(&str, ErrorCode)]) {
    let rejection = rejected(outcome, RejectionCode::ValidationFailed);
    let mut found: Vec<(String, ErrorCode)> = rejection
        .errors
        .iter()
        .map(|e| (e.pointer.clone(), e.code))
        .collect();
    let mut expected: Vec<(String, ErrorCode)> = expected
        .iter()
        .map(|(p, c)| ((*p).to_owned(), *c))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(found, expected, "{rejection:?}");
}

const TENANT: &str = "acme";

fn caller(sub: &str, roles: &[&str], tenant: &str) -> Principal {
    Principal {
        sub: Some(sub.to_owned()),
        tenant: TenantId::parse(tenant).unwrap_or_else(|| panic!("bad tenant {tenant}")),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn staff() -> Principal {
    caller("sam", &["staff"], TENANT)
}

fn admin() -> Principal {
    caller("ada", &["admin"], TENANT)
}

fn alice() -> Principal {
    caller("alice", &[], TENANT)
}

fn bob() -> Principal {
    caller("bob", &[], TENANT)
}

fn anonymous() -> Principal {
    Principal::anonymous(TenantId::parse(TENANT).unwrap_or_else(|| unreachable!()))
}

/// Which document a command is about: `"<app>.<doc>"` and its id.
#[derive(Clone, Copy)]
struct Doc<'a> {
    collection: &'a str,
    id: Uuid,
}

fn product() -> Doc<'static> {
    new_doc("petstore.product")
}

fn supplier() -> Doc<'static> {
    new_doc("petstore.supplier")
}

fn note() -> Doc<'static> {
    new_doc("notes.note")
}

fn contract() -> Doc<'static> {
    new_doc("notes.contract")
}

fn new_doc(collection: &str) -> Doc<'_> {
    Doc {
        collection,
        id: Uuid::now_v7(),
    }
}

fn command(by: &Principal, doc: Doc<'_>, action: Action) -> CommandEnvelope {
    let (app, name) = doc
        .collection
        .split_once('.')
        .unwrap_or_else(|| panic!("`{}` is not <app>.<doc>", doc.collection));
    let id = CommandId::generate();
    CommandEnvelope {
        id,
        app: app.to_owned(),
        doc: name.to_owned(),
        document_id: doc.id,
        action,
        expected_version: None,
        principal: by.clone(),
        idempotency_key: None,
        request_hash: format!("test-{}", id.0),
        correlation_id: id.0,
        causation_id: None,
        traceparent: None,
        submitted_at: Utc::now(),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected a JSON object, got {other}"),
    }
}

fn create(by: &Principal, doc: Doc<'_>, fields: Value) -> CommandEnvelope {
    let fields = object(fields);
    command(by, doc, Action::Create { fields })
}

fn update(by: &Principal, doc: Doc<'_>, patch: Value) -> CommandEnvelope {
    let patch = object(patch);
    command(by, doc, Action::Update { patch })
}

fn archive(by: &Principal, doc: Doc<'_>) -> CommandEnvelope {
    command(by, doc, Action::Archive)
}

fn restore(by: &Principal, doc: Doc<'_>) -> CommandEnvelope {
    command(by, doc, Action::Restore)
}

/// The command with `If-Match: "<version>"`.
fn if_match(mut command: CommandEnvelope, version: i64) -> CommandEnvelope {
    command.expected_version = Some(version);
    command
}

fn created(collection: &str) -> (String, i64) {
    (format!("{collection}.created"), 1)
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_create_emits_created_at_version_one_with_defaults_applied() {
    let scenario = given(petstore());
    let shoes = product();

    let outcome = scenario
        .when(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let success = succeeded(outcome);
    assert_eq!(success.effect, Effect::Created);
    let document = success.document;
    assert_eq!(document.id, shoes.id);
    assert_eq!(document.version, 1);
    assert!(!document.archived);
    assert_eq!(document.created_by, "sam");
    assert_eq!(document.updated_by, "sam");
    assert_eq!(
        Value::Object(document.fields),
        json!({"name": "Shoes", "price": 20, "stock": 0, "status": "draft"})
    );
    assert!(success.position.is_some(), "a create reports its position");
    let events = scenario.store.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "petstore.product.created");
    assert_eq!(events[0].version, 1);
    assert_eq!(events[0].tenant.as_str(), TENANT);
    assert_eq!(
        events[0].stream_id,
        format!("petstore.product.{}", shoes.id)
    );
}

#[tokio::test]
async fn a_user_who_may_read_but_not_create_is_forbidden() {
    let scenario = given(petstore());

    let outcome = scenario
        .when(&create(
            &alice(),
            product(),
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    rejected(outcome, RejectionCode::Forbidden);
    assert!(scenario.store.events().is_empty());
}

#[tokio::test]
async fn a_caller_who_may_not_read_the_collection_gets_not_found_on_create() {
    let scenario = given(petstore());

    let outcome = scenario
        .when(&create(
            &anonymous(),
            product(),
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    rejected(outcome, RejectionCode::NotFound);
    assert!(scenario.store.events().is_empty());
}

#[tokio::test]
async fn a_create_on_an_existing_id_conflicts_and_appends_nothing() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let outcome = scenario
        .when(&create(
            &staff(),
            shoes,
            json!({"name": "Boots", "price": 30}),
        ))
        .await;

    rejected(outcome, RejectionCode::Conflict);
    assert_eq!(scenario.event_log(), vec![created("petstore.product")]);
}

#[tokio::test]
async fn a_field_only_staff_may_write_is_refused_to_a_user_and_accepted_from_staff() {
    let scenario = given(notes());

    let by_user = scenario
        .when(&create(
            &alice(),
            note(),
            json!({"title": "Trip", "budget": 100}),
        ))
        .await;
    let by_staff = scenario
        .when(&create(
            &staff(),
            note(),
            json!({"title": "Trip", "budget": 100}),
        ))
        .await;

    invalid(by_user, &[("/budget", ErrorCode::ForbiddenField)]);
    assert_eq!(succeeded(by_staff).document.fields["budget"], json!(100));
    assert_eq!(scenario.event_log(), vec![created("notes.note")]);
}

#[tokio::test]
async fn a_field_only_staff_may_write_is_refused_in_the_owners_update() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(&alice(), trip, json!({"title": "Trip"})))
        .await;

    let outcome = scenario
        .when(&update(&alice(), trip, json!({"budget": 5})))
        .await;

    invalid(outcome, &[("/budget", ErrorCode::ForbiddenField)]);
    assert_eq!(scenario.event_log(), vec![created("notes.note")]);
}

// ---------------------------------------------------------------------------------------------
// Update: access and versions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_owner_may_update_their_document_and_another_user_is_forbidden() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(&alice(), trip, json!({"title": "Trip"})))
        .await;

    let by_owner = scenario
        .when(&update(&alice(), trip, json!({"title": "Trip to Lyon"})))
        .await;
    let by_other = scenario
        .when(&update(&bob(), trip, json!({"title": "Bob's now"})))
        .await;

    let success = succeeded(by_owner);
    assert_eq!(success.effect, Effect::Changed);
    assert_eq!(success.document.version, 2);
    assert_eq!(success.document.fields["title"], json!("Trip to Lyon"));
    assert_eq!(success.document.created_by, "alice");
    rejected(by_other, RejectionCode::Forbidden);
    assert_eq!(
        scenario.event_log(),
        vec![created("notes.note"), ("notes.note.updated".into(), 2)]
    );
}

#[tokio::test]
async fn an_update_of_a_missing_document_is_not_found() {
    let scenario = given(petstore());

    let outcome = scenario
        .when(&update(&staff(), product(), json!({"price": 1})))
        .await;

    rejected(outcome, RejectionCode::NotFound);
    assert!(scenario.store.events().is_empty());
}

#[tokio::test]
async fn an_update_that_changes_nothing_appends_nothing() {
    let scenario = given(petstore());
    let shoes = product();
    let first = scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20, "stock": 3}),
        ))
        .await;

    // `3.0` is the same integer as `3`, and clearing an absent field changes nothing either.
    let outcome = scenario
        .when(&update(
            &staff(),
            shoes,
            json!({"name": "Shoes", "stock": 3.0, "description": null}),
        ))
        .await;

    let success = succeeded(outcome);
    assert_eq!(success.effect, Effect::Changed);
    assert_eq!(success.document.version, 1);
    assert_eq!(success.document.fields, first.document.fields);
    assert_eq!(
        success.position, first.position,
        "the stream's last position"
    );
    assert_eq!(scenario.event_log(), vec![created("petstore.product")]);
}

#[tokio::test]
async fn an_update_with_a_stale_if_match_is_a_version_mismatch() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    scenario
        .given(&if_match(update(&staff(), shoes, json!({"price": 21})), 1))
        .await;

    let outcome = scenario
        .when(&if_match(update(&staff(), shoes, json!({"price": 22})), 1))
        .await;

    rejected(outcome, RejectionCode::VersionMismatch);
    assert_eq!(
        scenario.event_log(),
        vec![
            created("petstore.product"),
            ("petstore.product.updated".into(), 2)
        ]
    );
}

#[tokio::test]
async fn a_collection_that_requires_if_match_refuses_a_write_without_it() {
    let scenario = given(notes());
    let deal = contract();
    scenario
        .given(&create(&staff(), deal, json!({"title": "Deal"})))
        .await;

    let without = scenario
        .when(&update(&staff(), deal, json!({"title": "Better deal"})))
        .await;
    let archive_without = scenario.when(&archive(&staff(), deal)).await;
    let with = scenario
        .when(&if_match(
            update(&staff(), deal, json!({"title": "Better deal"})),
            1,
        ))
        .await;

    rejected(without, RejectionCode::PreconditionRequired);
    rejected(archive_without, RejectionCode::PreconditionRequired);
    assert_eq!(succeeded(with).document.version, 2);
}

// ---------------------------------------------------------------------------------------------
// Update: field rules
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn changing_an_immutable_field_is_refused_and_keeping_it_is_not() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20, "sku": "SHOE-01"}),
        ))
        .await;

    let changed = scenario
        .when(&update(&staff(), shoes, json!({"sku": "SHOE-02"})))
        .await;
    let cleared = scenario
        .when(&update(&staff(), shoes, json!({"sku": null})))
        .await;
    let kept = scenario
        .when(&update(
            &staff(),
            shoes,
            json!({"sku": "SHOE-01", "price": 25}),
        ))
        .await;

    invalid(changed, &[("/sku", ErrorCode::Immutable)]);
    invalid(cleared, &[("/sku", ErrorCode::Immutable)]);
    assert_eq!(succeeded(kept).document.fields["price"], json!(25));
    assert_eq!(scenario.store.events().len(), 2);
}

#[tokio::test]
async fn an_immutable_field_set_after_create_is_refused() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let outcome = scenario
        .when(&update(&staff(), shoes, json!({"sku": "SHOE-01"})))
        .await;

    invalid(outcome, &[("/sku", ErrorCode::Immutable)]);
}

#[tokio::test]
async fn an_immutable_field_nested_in_an_object_is_refused_at_its_pointer() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(
            &alice(),
            trip,
            json!({"title": "Trip", "origin": {"country": "NL", "city": "Delft"}}),
        ))
        .await;

    let changed = scenario
        .when(&update(
            &alice(),
            trip,
            json!({"origin": {"country": "FR"}}),
        ))
        .await;
    let sibling = scenario
        .when(&update(
            &alice(),
            trip,
            json!({"origin": {"city": "Leiden"}}),
        ))
        .await;

    invalid(changed, &[("/origin/country", ErrorCode::Immutable)]);
    let document = succeeded(sibling).document;
    assert_eq!(
        document.fields["origin"],
        json!({"country": "NL", "city": "Leiden"})
    );
    assert_eq!(document.version, 2);
}

#[tokio::test]
async fn an_immutable_object_patched_partially_without_change_is_accepted() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(
            &alice(),
            trip,
            json!({"title": "Trip", "frozen": {"a": 1, "b": 2}}),
        ))
        .await;

    let same = scenario
        .when(&update(&alice(), trip, json!({"frozen": {"a": 1}})))
        .await;
    let different = scenario
        .when(&update(&alice(), trip, json!({"frozen": {"a": 3}})))
        .await;

    let success = succeeded(same);
    assert_eq!(success.document.version, 1);
    assert_eq!(success.document.fields["frozen"], json!({"a": 1, "b": 2}));
    invalid(different, &[("/frozen", ErrorCode::Immutable)]);
    assert_eq!(scenario.event_log(), vec![created("notes.note")]);
}

#[tokio::test]
async fn clearing_a_required_field_is_refused() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let outcome = scenario
        .when(&update(&staff(), shoes, json!({"price": null})))
        .await;

    invalid(outcome, &[("/price", ErrorCode::Required)]);
    assert_eq!(scenario.store.events().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Unique values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_unique_value_taken_in_the_same_tenant_is_a_unique_violation() {
    let scenario = given(petstore());
    scenario
        .given(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    let boots = product();
    scenario
        .given(&create(
            &staff(),
            boots,
            json!({"name": "Boots", "price": 30}),
        ))
        .await;

    let on_create = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 5}),
        ))
        .await;
    let on_update = scenario
        .when(&update(&staff(), boots, json!({"name": "Shoes"})))
        .await;

    rejected(on_create, RejectionCode::UniqueViolation);
    rejected(on_update, RejectionCode::UniqueViolation);
    assert_eq!(scenario.store.events().len(), 2);
}

#[tokio::test]
async fn a_unique_value_is_free_in_another_tenant() {
    let scenario = given(petstore());
    scenario
        .given(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    let other_staff = caller("olga", &["staff"], "globex");

    let outcome = scenario
        .when(&create(
            &other_staff,
            product(),
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    succeeded(outcome);
    let tenants: Vec<String> = scenario
        .store
        .events()
        .iter()
        .map(|e| e.tenant.to_string())
        .collect();
    assert_eq!(tenants, ["acme", "globex"]);
}

#[tokio::test]
async fn a_unique_value_stays_reserved_while_archived_and_is_freed_once_changed() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    scenario.given(&archive(&admin(), shoes)).await;

    let while_archived = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 5}),
        ))
        .await;
    rejected(while_archived, RejectionCode::UniqueViolation);

    scenario.given(&restore(&admin(), shoes)).await;
    scenario
        .given(&update(&staff(), shoes, json!({"name": "Old shoes"})))
        .await;
    let after_change = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 5}),
        ))
        .await;

    succeeded(after_change);
    let types: Vec<String> = scenario
        .store
        .events()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "petstore.product.created",
            "petstore.product.archived",
            "petstore.product.restored",
            "petstore.product.updated",
            "petstore.product.created",
        ]
    );
}

#[tokio::test]
async fn clearing_an_optional_unique_value_frees_it() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(
            &alice(),
            trip,
            json!({"title": "Trip", "slug": "trip"}),
        ))
        .await;
    scenario
        .given(&update(&alice(), trip, json!({"slug": null})))
        .await;

    let outcome = scenario
        .when(&create(
            &bob(),
            note(),
            json!({"title": "Trip", "slug": "trip"}),
        ))
        .await;

    succeeded(outcome);
}

#[tokio::test]
async fn a_unique_number_is_taken_whatever_its_spelling() {
    let scenario = given(notes());
    scenario
        .given(&create(&alice(), note(), json!({"title": "A", "seat": 3})))
        .await;

    let outcome = scenario
        .when(&create(&bob(), note(), json!({"title": "B", "seat": 3.0})))
        .await;

    rejected(outcome, RejectionCode::UniqueViolation);
}

#[tokio::test]
async fn the_same_value_may_be_unique_in_two_collections() {
    let scenario = given(petstore());
    scenario
        .given(&create(&staff(), supplier(), json!({"name": "Acme"})))
        .await;

    let outcome = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Acme", "price": 1}),
        ))
        .await;

    succeeded(outcome);
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_reference_to_a_missing_document_is_refused_at_its_pointer() {
    let scenario = given(petstore());
    let nowhere = Uuid::now_v7();

    let outcome = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 20, "supplier": nowhere.to_string()}),
        ))
        .await;

    invalid(outcome, &[("/supplier", ErrorCode::RefNotFound)]);
    assert!(scenario.store.events().is_empty());
}

#[tokio::test]
async fn a_reference_to_an_existing_supplier_is_accepted() {
    let scenario = given(petstore());
    let acme = supplier();
    scenario
        .given(&create(&staff(), acme, json!({"name": "Acme"})))
        .await;

    let outcome = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 20, "supplier": acme.id.to_string()}),
        ))
        .await;

    let document = succeeded(outcome).document;
    assert_eq!(document.fields["supplier"], json!(acme.id.to_string()));
    assert_eq!(
        scenario.event_log(),
        vec![created("petstore.supplier"), created("petstore.product")]
    );
}

#[tokio::test]
async fn a_reference_to_an_archived_supplier_is_not_found() {
    let scenario = given(petstore());
    let acme = supplier();
    scenario
        .given(&create(&staff(), acme, json!({"name": "Acme"})))
        .await;
    scenario.given(&archive(&admin(), acme)).await;
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let outcome = scenario
        .when(&update(
            &staff(),
            shoes,
            json!({"supplier": acme.id.to_string()}),
        ))
        .await;

    invalid(outcome, &[("/supplier", ErrorCode::RefNotFound)]);
    assert_eq!(scenario.store.events().len(), 3);
}

#[tokio::test]
async fn a_reference_to_another_tenants_supplier_is_not_found() {
    let scenario = given(petstore());
    let globex = supplier();
    scenario
        .given(&create(
            &caller("olga", &["staff"], "globex"),
            globex,
            json!({"name": "Globex"}),
        ))
        .await;

    let outcome = scenario
        .when(&create(
            &staff(),
            product(),
            json!({"name": "Shoes", "price": 20, "supplier": globex.id.to_string()}),
        ))
        .await;

    invalid(outcome, &[("/supplier", ErrorCode::RefNotFound)]);
}

#[tokio::test]
async fn a_reference_the_caller_may_not_read_is_not_found() {
    let scenario = given(notes());
    let deal = contract();
    scenario
        .given(&create(&staff(), deal, json!({"title": "Deal"})))
        .await;

    let outcome = scenario
        .when(&create(
            &alice(),
            note(),
            json!({"title": "Trip", "contract": deal.id.to_string()}),
        ))
        .await;

    invalid(outcome, &[("/contract", ErrorCode::RefNotFound)]);
}

#[tokio::test]
async fn a_missing_reference_inside_an_array_is_refused_at_its_index() {
    let scenario = given(notes());
    let first = note();
    scenario
        .given(&create(&alice(), first, json!({"title": "First"})))
        .await;
    let nowhere = Uuid::now_v7();

    let outcome = scenario
        .when(&create(
            &alice(),
            note(),
            json!({"title": "Second", "related": [first.id.to_string(), nowhere.to_string()]}),
        ))
        .await;

    invalid(outcome, &[("/related/1", ErrorCode::RefNotFound)]);
}

// ---------------------------------------------------------------------------------------------
// Archive and restore
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_archive_answers_204_and_a_second_archive_is_not_found() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let first = scenario.when(&archive(&admin(), shoes)).await;
    let second = scenario.when(&archive(&admin(), shoes)).await;

    let success = succeeded(first);
    assert_eq!(success.effect, Effect::Archived);
    assert!(success.document.archived);
    assert_eq!(success.document.version, 2);
    rejected(second, RejectionCode::NotFound);
    assert_eq!(
        scenario.event_log(),
        vec![
            created("petstore.product"),
            ("petstore.product.archived".into(), 2)
        ]
    );
}

#[tokio::test]
async fn an_archived_document_cannot_be_updated() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    scenario.given(&archive(&admin(), shoes)).await;

    let outcome = scenario
        .when(&update(&staff(), shoes, json!({"price": 1})))
        .await;

    rejected(outcome, RejectionCode::NotFound);
}

#[tokio::test]
async fn only_the_delete_right_may_archive() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let by_staff = scenario.when(&archive(&staff(), shoes)).await;

    rejected(by_staff, RejectionCode::Forbidden);
    assert_eq!(scenario.store.events().len(), 1);
}

#[tokio::test]
async fn the_owner_may_archive_their_document_and_another_user_may_not() {
    let scenario = given(notes());
    let trip = note();
    scenario
        .given(&create(&alice(), trip, json!({"title": "Trip"})))
        .await;

    let by_other = scenario.when(&archive(&bob(), trip)).await;
    let by_owner = scenario.when(&archive(&alice(), trip)).await;

    rejected(by_other, RejectionCode::Forbidden);
    assert_eq!(succeeded(by_owner).effect, Effect::Archived);
}

#[tokio::test]
async fn restoring_a_live_document_conflicts() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let outcome = scenario.when(&restore(&admin(), shoes)).await;

    rejected(outcome, RejectionCode::Conflict);
    assert_eq!(scenario.store.events().len(), 1);
}

#[tokio::test]
async fn archive_then_restore_moves_the_version_by_two() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    scenario.given(&archive(&admin(), shoes)).await;

    let outcome = scenario.when(&restore(&admin(), shoes)).await;

    let success = succeeded(outcome);
    assert_eq!(success.effect, Effect::Changed);
    assert_eq!(success.document.version, 3);
    assert!(!success.document.archived);
    assert_eq!(
        scenario.event_log(),
        vec![
            created("petstore.product"),
            ("petstore.product.archived".into(), 2),
            ("petstore.product.restored".into(), 3),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Redelivery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_redelivered_command_gets_the_same_outcome_and_appends_once() {
    let scenario = given(petstore());
    let shoes = product();
    let command = create(&staff(), shoes, json!({"name": "Shoes", "price": 20}));

    let first = scenario.when(&command).await;
    let again = scenario.when(&command).await;

    assert_eq!(first, again);
    succeeded(again);
    assert_eq!(scenario.event_log(), vec![created("petstore.product")]);
}

#[tokio::test]
async fn a_redelivered_update_is_not_applied_twice_even_after_later_changes() {
    let scenario = given(petstore());
    let shoes = product();
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;
    let raise = update(&staff(), shoes, json!({"price": 21}));
    let first = scenario.when(&raise).await;
    scenario
        .given(&update(&staff(), shoes, json!({"price": 30})))
        .await;

    let again = scenario.when(&raise).await;

    assert_eq!(first, again);
    assert_eq!(succeeded(again).document.version, 2);
    assert_eq!(scenario.store.events().len(), 3);
}

#[tokio::test]
async fn a_redelivered_rejection_is_answered_from_the_stored_outcome() {
    let scenario = given(petstore());
    let shoes = product();
    let too_early = update(&staff(), shoes, json!({"price": 1}));
    let first = scenario.when(&too_early).await;
    scenario
        .given(&create(
            &staff(),
            shoes,
            json!({"name": "Shoes", "price": 20}),
        ))
        .await;

    let again = scenario.when(&too_early).await;

    assert_eq!(first, again);
    rejected(again, RejectionCode::NotFound);
    assert_eq!(scenario.store.events().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Collections and concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_command_on_an_undeclared_collection_is_not_found() {
    let scenario = given(petstore());

    let outcome = scenario
        .when(&create(
            &admin(),
            new_doc("petstore.unicorn"),
            json!({"name": "x"}),
        ))
        .await;

    rejected(outcome, RejectionCode::NotFound);
    assert!(scenario.store.events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_from_two_handlers_all_land_without_gaps() {
    let store = MemoryStore::default();
    let registry = Arc::new(petstore());
    // Two handler processes share one store: their stripe locks do not see each other, so
    // the store's expected-version check and the retries keep the stream consistent.
    let handlers = [
        Arc::new(Handler::new(store.clone(), registry.clone(), 50)),
        Arc::new(Handler::new(store.clone(), registry, 50)),
    ];
    let shoes = product();
    let create = create(&staff(), shoes, json!({"name": "Shoes", "price": 0}));
    succeeded(handlers[0].handle(&create).await.expect("store"));

    let mut tasks = tokio::task::JoinSet::new();
    for price in 1..=10 {
        let handler = handlers[price % 2].clone();
        let command = update(&staff(), shoes, json!({"price": price}));
        tasks.spawn(async move { handler.handle(&command).await });
    }
    while let Some(result) = tasks.join_next().await {
        succeeded(result.expect("task").expect("store"));
    }

    let versions: Vec<i64> = store.events().iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=11).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Declared commands
// ---------------------------------------------------------------------------------------------

fn run(by: &Principal, doc: Doc<'_>, name: &str, params: Value) -> CommandEnvelope {
    let params = object(params);
    command(
        by,
        doc,
        Action::Run {
            command: name.into(),
            params,
        },
    )
}

#[tokio::test]
async fn publish_emits_published_once_then_its_rule_refuses_it() {
    let scenario = given(petstore());
    let kite = product();
    scenario
        .given(&create(
            &staff(),
            kite,
            json!({"name": "Kite", "price": 30}),
        ))
        .await;

    let outcome = scenario
        .when(&run(&staff(), kite, "publish", json!({})))
        .await;

    let success = succeeded(outcome);
    assert_eq!(success.effect, Effect::Changed);
    assert_eq!(success.document.fields["status"], "published");
    assert_eq!(
        scenario.event_log(),
        [
            created("petstore.product"),
            ("petstore.product.published".into(), 2)
        ]
    );
    let again = scenario
        .when(&run(&staff(), kite, "publish", json!({})))
        .await;
    let refusal = rejected(again, RejectionCode::Refused("not_draft".into()));
    assert_eq!(refusal.detail, "Only a draft product can be published");
    assert_eq!(scenario.event_log().len(), 2, "a refusal appends nothing");
}

#[tokio::test]
async fn a_declared_command_needs_its_right_its_name_and_valid_params() {
    let scenario = given(petstore());
    let kite = product();
    scenario
        .given(&create(
            &staff(),
            kite,
            json!({"name": "Kite", "price": 30}),
        ))
        .await;

    let by_reader = scenario
        .when(&run(&alice(), kite, "publish", json!({})))
        .await;
    rejected(by_reader, RejectionCode::Forbidden);
    let unknown = scenario
        .when(&run(&staff(), kite, "explode", json!({})))
        .await;
    rejected(unknown, RejectionCode::NotFound);
    let with_params = scenario
        .when(&run(&staff(), kite, "publish", json!({"at": "noon"})))
        .await;
    let invalid = rejected(with_params, RejectionCode::ValidationFailed);
    assert_eq!(invalid.errors[0].pointer, "/at");
    let nothing = scenario
        .when(&run(&staff(), product(), "publish", json!({})))
        .await;
    rejected(nothing, RejectionCode::NotFound);
    assert_eq!(scenario.event_log().len(), 1);
}

/// A counter whose `bump` is Rust code: it adds `by` to `count`, refusing to pass `limit`.
const COUNTER: &str = r"
fields:
  count: {type: integer, default: 0}
  limit: {type: integer, default: 3}
acl: {create: user, read: user}
commands:
  bump:
    acl: user
    kind: rust
    params:
      by: {type: integer, required: true, min: 1}
    emits: [bumped, full]
  open:
    on: collection
    acl: user
    kind: rust
    params:
      limit: {type: integer, required: true, min: 1}
    emits: [opened, bumped]
  start:
    on: collection
    acl: user
    params:
      at: {type: integer, required: true}
    emits: started
    set: {count: {param: at}}
";

#[derive(serde::Deserialize)]
struct By {
    by: i64,
}

struct Bump;

impl RustCommand for Bump {
    type Params = By;

    fn decide(
        &self,
        counter: &DocumentState,
        params: By,
        _: &Principal,
    ) -> Result<Vec<Emit>, Refusal> {
        let count = counter.fields["count"].as_i64().unwrap_or(0);
        let limit = counter.fields["limit"].as_i64().unwrap_or(0);
        if count + params.by > limit {
            return Err(Refusal::new("over_limit", "that would pass the limit"));
        }
        let bumped = Emit::new("bumped", json!({"by": params.by})).set("count", count + params.by);
        if count + params.by == limit {
            return Ok(vec![bumped, Emit::new("full", json!({}))]);
        }
        Ok(vec![bumped])
    }
}

/// Opens a counter with its limit; a limit over 100 starts it at 1, as the house rule says.
struct Open;

#[derive(serde::Deserialize)]
struct Limit {
    limit: i64,
}

impl CollectionCommand for Open {
    type Params = Limit;

    fn decide(&self, params: Limit, _: &Principal) -> Result<Vec<Emit>, Refusal> {
        if params.limit == 13 {
            return Err(Refusal::new("unlucky", "no counter goes to 13"));
        }
        let opened = Emit::new("opened", json!({"limit": params.limit})).set("limit", params.limit);
        if params.limit > 100 {
            return Ok(vec![
                opened,
                Emit::new("bumped", json!({"by": 1})).set("count", 1),
            ]);
        }
        Ok(vec![opened])
    }
}

fn counters() -> Registry {
    let mut registry = Registry::from_sources(&[("tally", "counter", COUNTER)])
        .unwrap_or_else(|e| panic!("the counter must load:\n{e}"));
    let mut code = RustCommands::default();
    code.register("tally.counter.bump", Bump);
    code.register_collection("tally.counter.open", Open);
    registry
        .attach(&code)
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    registry
}

#[tokio::test]
async fn a_rust_command_appends_its_own_data_and_folds_by_what_it_set() {
    let scenario = given(counters());
    let counter = new_doc("tally.counter");
    scenario.given(&create(&alice(), counter, json!({}))).await;

    let outcome = scenario
        .when(&run(&alice(), counter, "bump", json!({"by": 2})))
        .await;

    assert_eq!(succeeded(outcome).document.fields["count"], 2);
    let events = scenario.store.events();
    let bumped = &events[1];
    assert_eq!(bumped.event_type, "tally.counter.bumped");
    assert_eq!(bumped.data, json!({"by": 2}));
    let over = scenario
        .when(&run(&alice(), counter, "bump", json!({"by": 2})))
        .await;
    rejected(over, RejectionCode::Refused("over_limit".into()));
    assert_eq!(scenario.event_log().len(), 2, "a refusal appends nothing");
}

#[tokio::test]
async fn a_rust_command_may_append_several_events_in_one_commit() {
    let scenario = given(counters());
    let counter = new_doc("tally.counter");
    scenario.given(&create(&alice(), counter, json!({}))).await;

    let outcome = scenario
        .when(&run(&alice(), counter, "bump", json!({"by": 3})))
        .await;

    let done = succeeded(outcome);
    assert_eq!(
        (done.document.version, done.document.fields["count"].clone()),
        (3, json!(3))
    );
    assert_eq!(
        scenario.event_log(),
        vec![
            created("tally.counter"),
            ("tally.counter.bumped".into(), 2),
            ("tally.counter.full".into(), 3),
        ]
    );
}

#[tokio::test]
async fn a_declared_command_on_the_collection_creates_its_document_with_its_own_event() {
    let scenario = given(counters());
    let counter = new_doc("tally.counter");

    let outcome = scenario
        .when(&run(&alice(), counter, "start", json!({"at": 2})))
        .await;

    let done = succeeded(outcome);
    assert_eq!(done.effect, Effect::Created);
    assert_eq!(
        done.document.fields,
        object(json!({"count": 2, "limit": 3})),
        "defaults filled in"
    );
    assert_eq!(
        scenario.event_log(),
        vec![("tally.counter.started".into(), 1)]
    );
    let again = scenario
        .when(&run(&alice(), counter, "start", json!({"at": 2})))
        .await;
    rejected(again, RejectionCode::Conflict);
    let as_document_command = scenario
        .when(&run(
            &alice(),
            new_doc("tally.counter"),
            "bump",
            json!({"by": 1}),
        ))
        .await;
    rejected(as_document_command, RejectionCode::NotFound);
}

#[tokio::test]
async fn a_rust_command_on_the_collection_creates_from_its_first_event() {
    let scenario = given(counters());

    let plain = succeeded(
        scenario
            .when(&run(
                &alice(),
                new_doc("tally.counter"),
                "open",
                json!({"limit": 5}),
            ))
            .await,
    );
    let big = succeeded(
        scenario
            .when(&run(
                &alice(),
                new_doc("tally.counter"),
                "open",
                json!({"limit": 500}),
            ))
            .await,
    );
    let unlucky = scenario
        .when(&run(
            &alice(),
            new_doc("tally.counter"),
            "open",
            json!({"limit": 13}),
        ))
        .await;
    let invalid = scenario
        .when(&run(
            &alice(),
            new_doc("tally.counter"),
            "open",
            json!({"limit": 0}),
        ))
        .await;

    assert_eq!(
        (plain.effect, plain.document.fields),
        (Effect::Created, object(json!({"count": 0, "limit": 5})))
    );
    assert_eq!(
        (big.document.version, big.document.fields),
        (2, object(json!({"count": 1, "limit": 500})))
    );
    rejected(unlucky, RejectionCode::Refused("unlucky".into()));
    rejected(invalid, RejectionCode::ValidationFailed);
    let events = scenario.store.events();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "tally.counter.opened",
            "tally.counter.opened",
            "tally.counter.bumped"
        ]
    );
    assert_eq!(
        events[0].data,
        json!({"limit": 5}),
        "the event's data is the code's own"
    );
}

/// Code that emits an event its declaration does not list, or data that is not an object.
struct Sloppy;

impl RustCommand for Sloppy {
    type Params = By;

    fn decide(&self, _: &DocumentState, params: By, _: &Principal) -> Result<Vec<Emit>, Refusal> {
        match params.by {
            1 => Ok(vec![Emit::new("zeroed", json!({})).set("count", 0)]),
            _ => Ok(vec![Emit::new("bumped", json!([params.by]))]),
        }
    }
}

#[tokio::test]
async fn code_that_emits_what_its_command_does_not_declare_appends_nothing() {
    let mut registry = Registry::from_sources(&[("tally", "counter", COUNTER)])
        .unwrap_or_else(|e| panic!("the counter must load:\n{e}"));
    let mut code = RustCommands::default();
    code.register("tally.counter.bump", Sloppy);
    code.register_collection("tally.counter.open", Open);
    registry
        .attach(&code)
        .unwrap_or_else(|problems| panic!("{problems:?}"));
    let scenario = given(registry);
    let counter = new_doc("tally.counter");
    scenario.given(&create(&alice(), counter, json!({}))).await;

    for by in [1, 2] {
        let outcome = scenario
            .when(&run(&alice(), counter, "bump", json!({"by": by})))
            .await;
        rejected(outcome, RejectionCode::Internal);
    }
    assert_eq!(scenario.event_log(), vec![created("tally.counter")]);
}

#[test]
fn code_registered_for_the_wrong_target_is_refused_at_start() {
    let mut registry = Registry::from_sources(&[("tally", "counter", COUNTER)])
        .unwrap_or_else(|e| panic!("the counter must load:\n{e}"));
    let mut code = RustCommands::default();
    code.register("tally.counter.open", Bump);
    code.register_collection("tally.counter.bump", Open);
    let problems = registry.attach(&code).err().unwrap_or_default();
    assert_eq!(
        problems,
        vec![
            "`tally.counter.bump` is declared on one document, so its code must be a RustCommand",
            "`tally.counter.open` is declared `on: collection`, so its code must be a CollectionCommand",
        ]
    );
}

#[tokio::test]
async fn a_rust_command_without_its_code_attached_appends_nothing() {
    let registry = Registry::from_sources(&[("tally", "counter", COUNTER)])
        .unwrap_or_else(|e| panic!("the counter must load:\n{e}"));
    let scenario = given(registry);
    let counter = new_doc("tally.counter");
    scenario.given(&create(&alice(), counter, json!({}))).await;

    let outcome = scenario
        .when(&run(&alice(), counter, "bump", json!({"by": 1})))
        .await;

    rejected(outcome, RejectionCode::Internal);
    assert_eq!(scenario.event_log().len(), 1);
}
