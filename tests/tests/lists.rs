//! Lists: every filter operator on every field type, order with nulls and the id tie-breaker,
//! keyset pages under concurrent writes, full-text search, select and counts, tenant and ACL
//! scoping, and every `400`.

use std::collections::BTreeSet;

use herald_tests::{Options, TestApp, header, json, send, write_apps};
use reqwest::Method;
use serde_json::{Value, json};

const ITEM: &str = "search_language: english
fields:
  name: {type: string, required: true, filter: true, sort: true, search: true}
  blurb: {type: string, search: true}
  price: {type: number, filter: true, sort: true}
  qty: {type: integer, filter: true, sort: true}
  active: {type: boolean, filter: true, sort: true}
  kind: {type: string, enum: [tool, toy, food], filter: true}
  due: {type: date, filter: true, sort: true}
  seen_at: {type: datetime, filter: true, sort: true}
  maker: {type: uuid, filter: true}
  contact: {type: email, filter: true}
  tags: {type: array, items: {type: string}, filter: true}
  sizes: {type: array, items: {type: integer}, nullable: true, filter: true}
  dims:
    type: object
    fields:
      width: {type: number, filter: true, sort: true}
      label: {type: string, filter: true}
  cost: {type: number, filter: true, sort: true, acl: {read: staff, write: user}}
  memo: {type: string, search: true, acl: {read: staff, write: user}}
  plain: {type: string}
acl: {create: user, read: user, update: user, delete: user, history: user}
";
const NOTE: &str = "fields:
  title: {type: string, filter: true, sort: true, search: true}
  mood: {type: string, filter: true, acl: {read: owner, write: user}}
acl: {create: user, read: owner, update: owner}
";
const BARE: &str = "fields:
  title: {type: string, filter: true}
acl: {create: user, read: user}
";
const MAKER: &str = "11111111-2222-4333-8444-555555555555";

async fn spawn() -> TestApp {
    let apps = write_apps(&[
        ("shop", "item", ITEM),
        ("shop", "note", NOTE),
        ("shop", "bare", BARE),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    TestApp::spawn_with(Options {
        apps,
        ..herald_tests::petstore()
    })
    .await
}

/// Creates the documents in order; returns their ids and the position of the last write.
async fn seed(app: &TestApp, path: &str, token: &str, bodies: &[Value]) -> (Vec<String>, String) {
    let mut ids = Vec::new();
    let mut position = String::new();
    for body in bodies {
        let response = app.post(path, token, body).await;
        position = header(&response, "herald-position");
        let created = json(response).await;
        assert!(created["id"].is_string(), "create failed: {created}");
        ids.push(created["id"].as_str().unwrap_or_default().to_owned());
    }
    (ids, position)
}

/// One list request with `pairs` as its query.
async fn list(app: &TestApp, path: &str, token: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    send(app.request(Method::GET, path, Some(token)).query(pairs)).await
}

/// One list request's body.
async fn list_body(app: &TestApp, path: &str, token: &str, pairs: &[(&str, &str)]) -> Value {
    json(list(app, path, token, pairs).await).await
}

/// The `name`s a successful list returns, in order.
async fn names(app: &TestApp, token: &str, position: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut query = pairs.to_vec();
    query.push(("min_position", position));
    query.push(("limit", "200"));
    let response = list(app, "/v1/shop/item", token, &query).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, 200, "{pairs:?}: {body}");
    body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn items() -> Vec<Value> {
    vec![
        json!({"name": "alpha", "price": 5, "qty": 1, "active": true, "kind": "tool",
               "due": "2024-01-15", "seen_at": "2024-01-01T10:00:00Z", "maker": MAKER,
               "contact": "a@shop.io", "tags": ["red", "blue"], "sizes": [1, 2],
               "dims": {"width": 3, "label": "box"}, "cost": 1}),
        json!({"name": "bravo", "price": 12.5, "qty": 3, "active": false, "kind": "toy",
               "due": "2024-03-01", "seen_at": "2024-01-02T10:00:00+02:00",
               "contact": "b@shop.io", "tags": ["red"], "sizes": [2, 3],
               "dims": {"width": 8, "label": "crate"}, "cost": 9}),
        json!({"name": "charlie", "price": 20, "qty": 3, "kind": "food",
               "due": "2024-06-30", "tags": ["green"], "sizes": null, "dims": {"label": "box"}}),
        json!({"name": "delta", "qty": 7, "active": true, "kind": "toy",
               "seen_at": "2023-12-31T23:00:00-05:00", "sizes": [3]}),
        json!({"name": "Echo", "price": 12.5, "active": false}),
    ]
}

/// A query and the names it finds.
type Case<'a> = (Vec<(&'a str, &'a str)>, BTreeSet<String>);

#[tokio::test]
async fn every_operator_filters_every_field_type() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let (ids, at) = seed(&app, "/v1/shop/item", &user, &items()).await;
    let maker = format!("eq.{MAKER}");
    let one_id = format!("eq.{}", ids[2]);
    let two_ids = format!("in.({},{})", ids[0], ids[4]);
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    let cases: Vec<Case<'_>> = vec![
        (vec![("name", "eq.alpha")], set(&["alpha"])),
        (
            vec![("name", "neq.alpha")],
            set(&["bravo", "charlie", "delta", "Echo"]),
        ),
        (
            vec![("name", "gte.bravo"), ("name", "lte.charlie")],
            set(&["bravo", "charlie"]),
        ),
        (vec![("name", "like.*ha*")], set(&["alpha", "charlie"])),
        (vec![("name", "like.%lie")], set(&["charlie"])),
        (vec![("name", "ilike.e*")], set(&["Echo"])),
        (vec![("name", "not.ilike.*a*")], set(&["Echo"])),
        (
            vec![("name", "in.(alpha,\"delta\",zulu)")],
            set(&["alpha", "delta"]),
        ),
        (vec![("price", "gt.5")], set(&["bravo", "charlie", "Echo"])),
        (
            vec![("price", "gte.12.5")],
            set(&["bravo", "charlie", "Echo"]),
        ),
        (vec![("price", "lt.12.5")], set(&["alpha"])),
        (
            vec![("price", "lte.12.5")],
            set(&["alpha", "bravo", "Echo"]),
        ),
        (vec![("price", "eq.12.5")], set(&["bravo", "Echo"])),
        (vec![("price", "is.null")], set(&["delta"])),
        (
            vec![("price", "not.is.null")],
            set(&["alpha", "bravo", "charlie", "Echo"]),
        ),
        (vec![("price", "neq.12.5")], set(&["alpha", "charlie"])),
        (vec![("qty", "in.(1,7)")], set(&["alpha", "delta"])),
        (vec![("qty", "not.in.(1,7)")], set(&["bravo", "charlie"])),
        (
            vec![("qty", "gte.3"), ("qty", "lt.7")],
            set(&["bravo", "charlie"]),
        ),
        (vec![("active", "is.true")], set(&["alpha", "delta"])),
        (vec![("active", "eq.false")], set(&["bravo", "Echo"])),
        (vec![("active", "is.null")], set(&["charlie"])),
        (
            vec![("active", "not.is.false")],
            set(&["alpha", "charlie", "delta"]),
        ),
        (vec![("kind", "eq.toy")], set(&["bravo", "delta"])),
        (vec![("kind", "not.in.(toy,tool)")], set(&["charlie"])),
        (vec![("due", "gte.2024-03-01")], set(&["bravo", "charlie"])),
        (vec![("due", "lt.2024-03-01")], set(&["alpha"])),
        // Instants compare, whatever the offset: bravo is 2024-01-02T08:00Z, delta is
        // 2024-01-01T04:00Z, and 06:00-05:00 is 11:00Z.
        (
            vec![("seen_at", "lt.2024-01-02T00:00:00Z")],
            set(&["alpha", "delta"]),
        ),
        (
            vec![("seen_at", "gt.2024-01-01T06:00:00-05:00")],
            set(&["bravo"]),
        ),
        (vec![("maker", &maker)], set(&["alpha"])),
        (
            vec![("maker", "is.null")],
            set(&["bravo", "charlie", "delta", "Echo"]),
        ),
        (vec![("contact", "eq.b@shop.io")], set(&["bravo"])),
        (
            vec![("contact", "like.*@shop.io")],
            set(&["alpha", "bravo"]),
        ),
        (vec![("tags", "cs.{red}")], set(&["alpha", "bravo"])),
        (vec![("tags", "cs.{red,blue}")], set(&["alpha"])),
        (vec![("tags", "not.cs.{red}")], set(&["charlie"])),
        (vec![("tags", "is.null")], set(&["delta", "Echo"])),
        (vec![("sizes", "cs.{3}")], set(&["bravo", "delta"])),
        // A stored null is no value, like an absent one.
        (vec![("sizes", "is.null")], set(&["charlie", "Echo"])),
        (vec![("dims.width", "gt.5")], set(&["bravo"])),
        (vec![("dims.label", "eq.box")], set(&["alpha", "charlie"])),
        (
            vec![("dims.width", "is.null")],
            set(&["charlie", "delta", "Echo"]),
        ),
        (vec![("id", &one_id)], set(&["charlie"])),
        (vec![("id", &two_ids)], set(&["alpha", "Echo"])),
        (
            vec![("price", "gt.1"), ("price", "lt.20"), ("kind", "eq.toy")],
            set(&["bravo"]),
        ),
        (
            vec![("active", "eq.false"), ("name", "like.*o")],
            set(&["bravo", "Echo"]),
        ),
        (
            vec![("created_at", "gt.2000-01-01T00:00:00Z")],
            set(&["alpha", "bravo", "charlie", "delta", "Echo"]),
        ),
        (vec![("updated_at", "lt.2000-01-01T00:00:00Z")], set(&[])),
    ];
    for (pairs, expected) in &cases {
        let found: BTreeSet<String> = names(&app, &user, &at, pairs).await.into_iter().collect();
        assert_eq!(&found, expected, "{pairs:?}");
    }
    // Staff may read `cost`, so staff may filter on it.
    let cheap = names(&app, &staff, &at, &[("cost", "lt.5")]).await;
    assert_eq!(cheap, vec!["alpha".to_owned()]);
}

#[tokio::test]
async fn order_places_nulls_and_breaks_ties_by_id() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let (_, at) = seed(&app, "/v1/shop/item", &user, &items()).await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // bravo and Echo tie on 12.5: id (creation order) decides, in the key's direction.
        ("price", vec!["alpha", "bravo", "Echo", "charlie", "delta"]),
        (
            "price.asc",
            vec!["alpha", "bravo", "Echo", "charlie", "delta"],
        ),
        (
            "price.desc",
            vec!["delta", "charlie", "Echo", "bravo", "alpha"],
        ),
        (
            "price.asc.nullsfirst",
            vec!["delta", "alpha", "bravo", "Echo", "charlie"],
        ),
        (
            "price.desc.nullslast",
            vec!["charlie", "Echo", "bravo", "alpha", "delta"],
        ),
        (
            "price.desc,id.asc",
            vec!["delta", "charlie", "bravo", "Echo", "alpha"],
        ),
        (
            "qty.desc,name.asc",
            vec!["Echo", "delta", "bravo", "charlie", "alpha"],
        ),
        (
            "active,qty.desc",
            vec!["Echo", "bravo", "delta", "alpha", "charlie"],
        ),
        (
            "dims.width.desc",
            vec!["Echo", "delta", "charlie", "bravo", "alpha"],
        ),
        (
            "due.asc",
            vec!["alpha", "bravo", "charlie", "delta", "Echo"],
        ),
        (
            "seen_at.desc.nullslast",
            vec!["bravo", "alpha", "delta", "Echo", "charlie"],
        ),
        (
            "id.desc",
            vec!["Echo", "delta", "charlie", "bravo", "alpha"],
        ),
        (
            "created_at",
            vec!["alpha", "bravo", "charlie", "delta", "Echo"],
        ),
    ];
    for (order, expected) in &cases {
        let found = names(&app, &user, &at, &[("order", order)]).await;
        assert_eq!(found, *expected, "order={order}");
        // Pages of two walk the same order, whatever the nulls and ties.
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = vec![
                ("order", *order),
                ("limit", "2"),
                ("min_position", at.as_str()),
            ];
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor));
            }
            let page = list_body(&app, "/v1/shop/item", &user, &pairs).await;
            for document in page["data"].as_array().cloned().unwrap_or_default() {
                walked.push(document["name"].as_str().unwrap_or_default().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(walked, *expected, "pages of order={order}");
    }
}

#[tokio::test]
async fn pages_return_every_document_once_while_others_are_written() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let bodies: Vec<Value> = (0..60)
        .map(|i| {
            // Every fifth price is missing, and prices repeat, so nulls and ties cross pages.
            let price = if i % 5 == 0 {
                Value::Null
            } else {
                json!(i % 7)
            };
            json!({"name": format!("n{i:02}"), "price": price, "qty": i})
        })
        .map(|mut body| {
            if body["price"].is_null() {
                body.as_object_mut().map(|o| o.remove("price"));
            }
            body
        })
        .collect();
    let (ids, at) = seed(&app, "/v1/shop/item", &user, &bodies).await;
    let before: BTreeSet<String> = ids.iter().cloned().collect();

    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let base = app.base.clone();
        let user = user.clone();
        let ids = ids.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut written = 0u32;
            // Bounded, so a walk in creation order reaches the end.
            while !stop.is_cancelled() && written < 100 {
                // New documents anywhere in the order, and updates that leave the order alone.
                let create = client
                    .post(format!("{base}/v1/shop/item"))
                    .bearer_auth(&user)
                    .json(&json!({"name": format!("new{written}"), "price": written % 7}))
                    .send();
                let id = &ids[written as usize % ids.len()];
                let update = client
                    .patch(format!("{base}/v1/shop/item/{id}"))
                    .bearer_auth(&user)
                    .json(&json!({"blurb": format!("edit {written}")}))
                    .send();
                let (created, updated) = tokio::join!(create, update);
                assert!(created.is_ok_and(|r| r.status() == 201));
                assert!(updated.is_ok_and(|r| r.status() == 200));
                written += 1;
            }
            written
        })
    };
    for order in [
        "",
        "price",
        "price.desc",
        "qty.desc",
        "price.asc.nullsfirst,qty",
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = vec![("limit", "7"), ("min_position", at.as_str())];
            if !order.is_empty() {
                pairs.push(("order", order));
            }
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor));
            }
            let response = list(&app, "/v1/shop/item", &user, &pairs).await;
            assert_eq!(response.status(), 200);
            let page = json(response).await;
            for document in page["data"].as_array().cloned().unwrap_or_default() {
                seen.push(document["id"].as_str().unwrap_or_default().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "order={order}: a document came twice"
        );
        assert!(
            before.is_subset(&unique),
            "order={order}: {} documents that existed before the walk were skipped",
            before.difference(&unique).count()
        );
    }
    stop.cancel();
    let written = match writer.await {
        Ok(written) => written,
        Err(error) => panic!("the writer failed: {error}"),
    };
    assert!(written > 0, "the writer ran during the walks");
}

#[tokio::test]
async fn search_ranks_matches_and_never_looks_into_hidden_fields() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let (_, at) = seed(
        &app,
        "/v1/shop/item",
        &user,
        &[
            json!({"name": "toolbox", "blurb": "holds a claw hammer"}),
            json!({"name": "claw hammer", "blurb": "forged steel"}),
            json!({"name": "nails", "blurb": "for hammers and boards", "memo": "supplier owes us"}),
            json!({"name": "glue", "blurb": "sticks boards"}),
        ],
    )
    .await;
    // English stemming: "hammering" finds "hammer"; a name match outranks a blurb match.
    let mut found = names(&app, &user, &at, &[("q", "hammering")]).await;
    assert_eq!(found[0], "claw hammer");
    found.sort();
    assert_eq!(found, vec!["claw hammer", "nails", "toolbox"]);
    let found = names(&app, &user, &at, &[("q", "boards -glue")]).await;
    assert_eq!(found, vec!["nails"], "web search syntax");
    let found = names(&app, &user, &at, &[("q", "hammer"), ("order", "name")]).await;
    assert_eq!(
        found,
        vec!["claw hammer", "nails", "toolbox"],
        "an explicit order wins"
    );
    let found = names(&app, &user, &at, &[("q", "hammer"), ("name", "like.*o*")]).await;
    assert_eq!(found, vec!["toolbox"], "search combines with filters");
    // `memo` is staff-only: its words find nothing for a user, and do for staff.
    assert!(
        names(&app, &user, &at, &[("q", "supplier")])
            .await
            .is_empty()
    );
    assert_eq!(
        names(&app, &staff, &at, &[("q", "supplier")]).await,
        vec!["nails"]
    );
    // Pages of a ranked search.
    let first = list_body(
        &app,
        "/v1/shop/item",
        &user,
        &[("q", "hammer"), ("limit", "1"), ("min_position", &at)],
    )
    .await;
    assert_eq!(first["data"][0]["name"], "claw hammer");
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let rest = names(&app, &user, &at, &[("q", "hammer"), ("cursor", &cursor)]).await;
    assert_eq!(rest.len(), 2);
    assert!(!rest.contains(&"claw hammer".to_owned()));
}

#[tokio::test]
async fn select_count_and_link_shape_the_page() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let (_, at) = seed(&app, "/v1/shop/item", &user, &items()).await;
    let response = send(
        app.request(Method::GET, "/v1/shop/item", Some(&user))
            .query(&[
                ("select", "name,price"),
                ("order", "price.desc"),
                ("price", "not.is.null"),
                ("limit", "2"),
                ("min_position", &at),
            ])
            .header("prefer", "count=exact"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "preference-applied"), "count=exact");
    let link = header(&response, "link");
    let page = json(response).await;
    assert_eq!(
        page["total"], 4,
        "every match is counted, not just the page"
    );
    assert_eq!(page["has_more"], true);
    let first = page["data"][0].as_object().cloned().unwrap_or_default();
    let keys: BTreeSet<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "name", "price"].into_iter().collect());
    assert_eq!(first["name"], "charlie");
    // The Link repeats the query with the next cursor.
    let target = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("Link: {link}"));
    assert!(target.starts_with("/v1/shop/item?"), "{target}");
    assert!(target.contains("select=name%2Cprice") && target.contains("cursor="));
    let next = send(
        app.request(Method::GET, target, Some(&user))
            .header("prefer", "count=exact"),
    )
    .await;
    let next = json(next).await;
    let names: Vec<&str> = next["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["bravo", "alpha"]);
    assert_eq!(next["has_more"], false);
    assert_eq!(next["next_cursor"], Value::Null);
    // Without the preference there is no count.
    let plain = list_body(&app, "/v1/shop/item", &user, &[("min_position", &at)]).await;
    assert!(plain.get("total").is_none());
}

#[tokio::test]
async fn lists_search_and_history_stay_inside_tenant_and_rights() {
    let app = spawn().await;
    let uma = app.token("uma", &[], "acme");
    let ulf = app.token("ulf", &[], "acme");
    let staff = app.token("sam", &["staff"], "acme");
    let other = app.token("uma", &["admin"], "globex");
    let (item_ids, _) = seed(&app, "/v1/shop/item", &uma, &items()).await;
    let (_, _) = seed(
        &app,
        "/v1/shop/note",
        &uma,
        &[
            json!({"title": "uma's", "mood": "calm"}),
            json!({"title": "uma's too", "mood": "glad"}),
        ],
    )
    .await;
    let (_, at) = seed(
        &app,
        "/v1/shop/note",
        &ulf,
        &[json!({"title": "ulf's", "mood": "calm"})],
    )
    .await;
    let titles = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|d| d["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // Another tenant sees nothing, even as its admin, in lists, search and history.
    let foreign = list_body(
        &app,
        "/v1/shop/item",
        &other,
        &[("min_position", &at), ("q", "alpha")],
    )
    .await;
    assert_eq!(foreign["data"], json!([]));
    let foreign = list_body(&app, "/v1/shop/item", &other, &[("min_position", &at)]).await;
    assert_eq!(foreign["data"], json!([]));
    let history = app
        .get(&format!("/v1/shop/item/{}/history", item_ids[0]), &other)
        .await;
    assert_eq!(history.status(), 404);
    // Owner-read notes: each user lists, searches and filters only its own, on its own
    // owner-readable field.
    let own = list_body(&app, "/v1/shop/note", &ulf, &[("min_position", &at)]).await;
    assert_eq!(titles(own), vec!["ulf's"]);
    let calm = list_body(
        &app,
        "/v1/shop/note",
        &uma,
        &[("mood", "eq.calm"), ("min_position", &at)],
    )
    .await;
    assert_eq!(titles(calm), vec!["uma's"]);
    let found = list_body(
        &app,
        "/v1/shop/note",
        &ulf,
        &[("q", "uma"), ("min_position", &at)],
    )
    .await;
    assert_eq!(found["data"], json!([]));
    // Staff reads notes only as their owner, like everyone: it lists none of the others'.
    let hidden = list(&app, "/v1/shop/note", &staff, &[]).await;
    assert_eq!(hidden.status(), 200);
    assert_eq!(json(hidden).await["data"], json!([]));
    // A field the caller may not read cannot be filtered, sorted or searched on.
    for (parameter, value) in [("cost", "lt.5"), ("order", "cost"), ("order", "cost.desc")] {
        let response = list(&app, "/v1/shop/item", &uma, &[(parameter, value)]).await;
        assert_eq!(response.status(), 400, "{parameter}={value}");
        let body = json(response).await;
        assert_eq!(body["errors"][0]["parameter"], parameter);
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("may not read"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn every_bad_query_is_a_400_naming_its_parameter() {
    let app = spawn().await;
    let user = app.token("uma", &[], "acme");
    let (_, at) = seed(&app, "/v1/shop/item", &user, &items()).await;
    let page = list_body(
        &app,
        "/v1/shop/item",
        &user,
        &[("limit", "1"), ("order", "price"), ("min_position", &at)],
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("colour", "eq.red")], "colour"),
        (vec![("plain", "eq.x")], "plain"),
        (vec![("dims", "eq.x")], "dims"),
        (vec![("dims.depth", "eq.1")], "dims.depth"),
        (vec![("price", "approx.5")], "price"),
        (vec![("price", "5")], "price"),
        (vec![("price", "eq.cheap")], "price"),
        (vec![("qty", "eq.1.5")], "qty"),
        (vec![("qty", "in.(1,x)")], "qty"),
        (vec![("qty", "in.()")], "qty"),
        (vec![("qty", "in.1,2")], "qty"),
        (vec![("active", "eq.yes")], "active"),
        (vec![("active", "is.maybe")], "active"),
        (vec![("active", "gt.true")], "active"),
        (vec![("kind", "eq.plant")], "kind"),
        (vec![("kind", "like.t*")], "kind"),
        (vec![("due", "eq.2024-13-01")], "due"),
        (vec![("seen_at", "gt.yesterday")], "seen_at"),
        (vec![("maker", "eq.42")], "maker"),
        (vec![("contact", "eq.not-an-email")], "contact"),
        (vec![("price", "like.1*")], "price"),
        (vec![("price", "cs.{1}")], "price"),
        (vec![("tags", "eq.red")], "tags"),
        (vec![("sizes", "cs.{big}")], "sizes"),
        (vec![("name", "is.true")], "name"),
        (vec![("name", "not.not.eq.a")], "name"),
        (vec![("id", "eq.nope")], "id"),
        (vec![("order", "colour")], "order"),
        (vec![("order", "kind")], "order"),
        (vec![("order", "price.sideways")], "order"),
        (vec![("order", "price,price.desc")], "order"),
        (vec![("order", ".desc")], "order"),
        (vec![("order", "name,price,qty,due,seen_at")], "order"),
        (vec![("order", "id,name")], "order"),
        (vec![("name", "like.abc\\")], "name"),
        (vec![("due", "eq.+999-01-01")], "due"),
        (vec![("select", "name,colour")], "select"),
        (vec![("select", "dims.width")], "select"),
        (vec![("q", "")], "q"),
        (vec![("q", "   ")], "q"),
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "201")], "limit"),
        (vec![("limit", "ten")], "limit"),
        (vec![("limit", "5"), ("limit", "6")], "limit"),
        (vec![("order", "price"), ("cursor", "garbage")], "cursor"),
        (vec![("order", "price"), ("cursor", &tampered)], "cursor"),
        // A cursor is bound to its query: another order or filter refuses it.
        (vec![("order", "price.desc"), ("cursor", &cursor)], "cursor"),
        (
            vec![("order", "price"), ("qty", "gt.0"), ("cursor", &cursor)],
            "cursor",
        ),
        (vec![("cursor", &cursor)], "cursor"),
        (vec![("min_position", "nope")], "min_position"),
    ];
    let events = app.count("herald.events").await;
    for (pairs, parameter) in &cases {
        let response = list(&app, "/v1/shop/item", &user, pairs).await;
        assert_eq!(response.status(), 400, "{pairs:?}");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
        let body = json(response).await;
        assert_eq!(body["code"], "invalid_query", "{pairs:?}");
        assert_eq!(
            body["errors"][0]["parameter"], *parameter,
            "{pairs:?}: {body}"
        );
    }
    // A collection without search fields refuses q.
    let response = list(&app, "/v1/shop/bare", &user, &[("q", "x")]).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["errors"][0]["parameter"], "q");
    assert_eq!(app.count("herald.events").await, events, "nothing changed");
    // The untampered cursor works with its own query.
    let next = list(
        &app,
        "/v1/shop/item",
        &user,
        &[("order", "price"), ("cursor", &cursor), ("limit", "1")],
    )
    .await;
    assert_eq!(next.status(), 200);
}
