//! Bounded resources: a board holds at most so many columns, groups and items, and an item's
//! values and an update's body at most so many bytes. Past a bound the answer is a stable code
//! (`limit_reached` 422, `content_too_large` 413), on REST and sockets alike, nothing is stored,
//! and the board keeps accepting writes. The servers here run with small bounds.

use reqwest::Method;
use serde_json::{json, Value};

use crate::boards::{fixture, Fixture};
use crate::harness::{both_backends_with, Reply, TestServer};
use crate::realtime::{connect, JSON};

both_backends_with!(
    small_bounds;
    counts_stop_at_their_bounds,
    concurrent_creates_cannot_pass_the_item_bound,
    an_item_cannot_grow_past_its_bound,
    update_bodies_are_bounded_in_bytes,
);

const MAX_COLUMNS: usize = 3;
const MAX_GROUPS: usize = 3;
const MAX_ITEMS: usize = 5;
const MAX_VALUES_BYTES: usize = 4096;
const MAX_BODY_BYTES: usize = 1024;

fn small_bounds(settings: &mut boardroom::config::Settings) {
    settings.board_max_columns = MAX_COLUMNS as u32;
    settings.board_max_groups = MAX_GROUPS as u32;
    settings.board_max_items = MAX_ITEMS as u32;
    settings.item_values_max_bytes = MAX_VALUES_BYTES as u32;
    settings.update_body_max_bytes = MAX_BODY_BYTES as u32;
}

async fn post(server: &TestServer, f: &Fixture, path: &str, body: Value) -> Reply {
    server
        .post(&format!("/api/v1/boards/{}{path}", f.board), Some(&f.owner.access_token), &body)
        .await
}

async fn snapshot(server: &TestServer, f: &Fixture) -> Value {
    let path = format!("/api/v1/boards/{}", f.board);
    server.get_as(&path, &f.owner.access_token).await.expect(200).clone()
}

fn len(snapshot: &Value, what: &str) -> usize {
    snapshot[what].as_array().unwrap().len()
}

/// The code of a socket reply that must have failed.
fn socket_error(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "reply succeeded: {reply}");
    reply["error"]["code"].as_str().unwrap()
}

async fn counts_stop_at_their_bounds(server: &TestServer) {
    let f = fixture(server).await;
    let mut socket = connect(server, &f.owner.access_token, JSON).await;
    // Columns.
    for i in 0..MAX_COLUMNS {
        post(server, &f, "/columns", json!({"title": format!("c{i}"), "type": "text"}))
            .await
            .expect(201);
    }
    post(server, &f, "/columns", json!({"title": "one more", "type": "text"}))
        .await
        .expect_error(422, "limit_reached");
    let reply = socket
        .request(json!({"type": "create_column", "board_id": f.board, "title": "x", "column_type": "text"}))
        .await;
    assert_eq!(socket_error(&reply), "limit_reached");
    // Groups (the board starts with one).
    for i in 1..MAX_GROUPS {
        post(server, &f, "/groups", json!({"title": format!("g{i}")})).await.expect(201);
    }
    post(server, &f, "/groups", json!({"title": "one more"}))
        .await
        .expect_error(422, "limit_reached");
    let reply =
        socket.request(json!({"type": "create_group", "board_id": f.board, "title": "x"})).await;
    assert_eq!(socket_error(&reply), "limit_reached");
    // Items.
    let mut items = Vec::new();
    for i in 0..MAX_ITEMS {
        let item =
            post(server, &f, "/items", json!({"group_id": f.group, "name": format!("i{i}")}))
                .await
                .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned();
        items.push(item);
    }
    // An archived item is still held: it counts.
    let archive = format!("/api/v1/boards/{}/items/{}/archive", f.board, items[0]);
    server.post(&archive, Some(&f.owner.access_token), &json!({})).await.expect(200);
    post(server, &f, "/items", json!({"group_id": f.group, "name": "one more"}))
        .await
        .expect_error(422, "limit_reached");
    let reply = socket
        .request(
            json!({"type": "create_item", "board_id": f.board, "group_id": f.group, "name": "x"}),
        )
        .await;
    assert_eq!(socket_error(&reply), "limit_reached");
    // Nothing was stored by the refusals; the board holds exactly the bounds.
    let snap = snapshot(server, &f).await;
    assert_eq!(len(&snap, "columns"), MAX_COLUMNS);
    assert_eq!(len(&snap, "groups"), MAX_GROUPS);
    assert_eq!(len(&snap, "items"), MAX_ITEMS);
    let seq = snap["seq"].as_i64().unwrap();
    // Deleting makes room again, and other writes go on.
    let item = format!("/api/v1/boards/{}/items/{}", f.board, items[1]);
    server.send_as(Method::DELETE, &item, &f.owner.access_token, None).await.expect(204);
    post(server, &f, "/items", json!({"group_id": f.group, "name": "room again"}))
        .await
        .expect(201);
    let snap = snapshot(server, &f).await;
    assert_eq!(len(&snap, "items"), MAX_ITEMS);
    assert_eq!(snap["seq"].as_i64().unwrap(), seq + 2, "the refusals wrote events");
    // The bound survives a restart of the board's actor (the count is loaded, not remembered).
    assert!(server.state().boards().inject_panic(f.board.parse().unwrap()));
    for attempt in 0.. {
        let reply = post(server, &f, "/items", json!({"group_id": f.group, "name": "x"})).await;
        if reply.status != 503 || attempt == 50 {
            reply.expect_error(422, "limit_reached");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The actor applies one command at a time and counts the items waiting in its batch, so a burst
/// of creates gets exactly as many items as the bound leaves room for.
async fn concurrent_creates_cannot_pass_the_item_bound(server: &TestServer) {
    let f = fixture(server).await;
    let path = format!("/api/v1/boards/{}/items", f.board);
    let bodies: Vec<Value> =
        (0..4 * MAX_ITEMS).map(|i| json!({"group_id": f.group, "name": format!("i{i}")})).collect();
    let creates = bodies.iter().map(|body| server.post(&path, Some(&f.owner.access_token), body));
    let replies = futures::future::join_all(creates).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.expect_error(422, "limit_reached");
    }
    assert_eq!(created, MAX_ITEMS);
    assert_eq!(len(&snapshot(server, &f).await, "items"), MAX_ITEMS);
}

async fn an_item_cannot_grow_past_its_bound(server: &TestServer) {
    let f = fixture(server).await;
    let column =
        |title: &str| post(server, &f, "/columns", json!({"title": title, "type": "long_text"}));
    let a = column("A").await.expect(201)["id"].as_str().unwrap().to_owned();
    let b = column("B").await.expect(201)["id"].as_str().unwrap().to_owned();
    // Too large from the start: refused, nothing created.
    let big = "é".repeat(MAX_VALUES_BYTES / 2);
    post(
        server,
        &f,
        "/items",
        json!({"group_id": f.group, "name": "big", "values": {a.clone(): big}}),
    )
    .await
    .expect_error(413, "content_too_large");
    let item = post(
        server,
        &f,
        "/items",
        json!({"group_id": f.group, "name": "grows", "values": {a.clone(): "a".repeat(2000)}}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let before = server.get_as(&item_path, &f.owner.access_token).await.expect(200).clone();
    let seq = snapshot(server, &f).await["seq"].as_i64().unwrap();
    // Each change is small; the item as it would become is not (2000 + 3000 bytes of text).
    let grow = json!({"values": {b.clone(): "é".repeat(1500)}});
    let token = &f.owner.access_token;
    server
        .send_as(Method::PATCH, &item_path, token, Some(&grow))
        .await
        .expect_error(413, "content_too_large");
    let mut socket = connect(server, token, JSON).await;
    let reply = socket
        .request(json!({"type": "update_item", "board_id": f.board, "item_id": item, "values": {b.clone(): "é".repeat(1500)}}))
        .await;
    assert_eq!(socket_error(&reply), "content_too_large");
    // Nothing stored: the item and the log are as they were.
    assert_eq!(server.get_as(&item_path, token).await.expect(200), &before);
    assert_eq!(snapshot(server, &f).await["seq"].as_i64().unwrap(), seq);
    // The board still accepts writes, this item's included, up to the bound.
    let fits = json!({"values": {b.clone(): "b".repeat(1000)}});
    let after =
        server.send_as(Method::PATCH, &item_path, token, Some(&fits)).await.expect(200).clone();
    assert_eq!(after["version"], 2);
    let size = serde_json::to_vec(&after["values"]).unwrap().len();
    assert!(size <= MAX_VALUES_BYTES, "{size}");
    // Clearing a value shrinks the item, and a column it could not hold before now fits.
    let swap = json!({"values": {a.clone(): null, b.clone(): "é".repeat(1500)}});
    server.send_as(Method::PATCH, &item_path, token, Some(&swap)).await.expect(200);
    post(server, &f, "/items", json!({"group_id": f.group, "name": "another"})).await.expect(201);
}

async fn update_bodies_are_bounded_in_bytes(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let item = post(server, &f, "/items", json!({"group_id": f.group, "name": "talk"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let updates = format!("/api/v1/boards/{}/items/{item}/updates", f.board);
    // 600 characters, under the character limit; 1200 bytes, over the byte bound.
    let too_big = "é".repeat(600);
    server
        .post(&updates, Some(token), &json!({"body": too_big}))
        .await
        .expect_error(413, "content_too_large");
    let mut socket = connect(server, token, JSON).await;
    let reply = socket
        .request(
            json!({"type": "create_update", "board_id": f.board, "item_id": item, "body": too_big}),
        )
        .await;
    assert_eq!(socket_error(&reply), "content_too_large");
    let fits = "é".repeat(MAX_BODY_BYTES / 2);
    let update = server.post(&updates, Some(token), &json!({"body": fits})).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let edit = format!("{updates}/{update}");
    server
        .send_as(Method::PATCH, &edit, token, Some(&json!({"body": too_big})))
        .await
        .expect_error(413, "content_too_large");
    let listed = server.get_as(&updates, token).await.expect(200).clone();
    assert_eq!(listed["updates"].as_array().unwrap().len(), 1);
    assert_eq!(listed["updates"][0]["body"], fits.as_str());
    assert!(listed["updates"][0]["edited_at"].is_null());
    server.post(&updates, Some(token), &json!({"body": "short"})).await.expect(201);
}
