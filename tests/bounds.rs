//! Bounded resources: a board holds at most so many columns, groups and items, and an item's
//! values and an update's body at most so many bytes. Past a bound the answer is a stable code
//! (`limit_reached` 422, `content_too_large` 413), on REST and sockets alike, nothing is stored,
//! and the board keeps accepting writes. The servers here run with small bounds.
//!
//! The event log is read in pages bounded by bytes as well as by count, over REST and in a
//! socket's replay, so a log of large events reaches the client whole, each event once, while
//! the server's memory stays flat (measured from `/proc/self/status`: the server runs in this
//! process).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

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

both_backends_with!(small_pages; the_log_is_paged_by_bytes);

both_backends_with!(large_log; paging_a_large_log_keeps_memory_flat);

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

const PAGE_BYTES: usize = 16 * 1024;

fn small_pages(settings: &mut boardroom::config::Settings) {
    settings.events_page_bytes = PAGE_BYTES as u32;
}

/// One page of `GET /boards/{board}/events`: its size on the wire and its body.
async fn events_page(server: &TestServer, f: &Fixture, after: i64) -> (usize, Value) {
    let url = server.url(&format!("/api/v1/boards/{}/events?after={after}&limit=1000", f.board));
    let response =
        reqwest::Client::new().get(url).bearer_auth(&f.owner.access_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    (text.len(), body)
}

/// Pages through the whole log from the start; answers each event's `seq` and the number of
/// pages, checking every page against the byte bound.
async fn page_through(server: &TestServer, f: &Fixture, page_bytes: usize) -> (Vec<i64>, usize) {
    let (mut seen, mut pages, mut after) = (Vec::new(), 0, 0);
    loop {
        let (size, body) = events_page(server, f, after).await;
        pages += 1;
        let events = body["events"].as_array().unwrap();
        assert!(
            size <= page_bytes || events.len() == 1,
            "a page of {} events took {size} bytes",
            events.len()
        );
        seen.extend(events.iter().map(|e| e["seq"].as_i64().unwrap()));
        if body["has_more"] == false {
            break;
        }
        after = body["last_seq"].as_i64().unwrap();
        assert!(pages < 10_000, "paging does not end");
    }
    (seen, pages)
}

/// A socket that keeps nothing it reads (the test client in `realtime` keeps every frame).
struct Socket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Socket {
    async fn open(server: &TestServer, token: &str) -> Socket {
        let url = format!("ws://{}/api/v1/ws", server.addr());
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request.headers_mut().insert("sec-websocket-protocol", JSON.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut socket = Socket(ws);
        assert_eq!(socket.next().await["type"], "hello");
        socket
    }

    async fn send(&mut self, frame: Value) {
        self.0.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// The next frame (pings skipped).
    async fn next(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), self.0.next())
                .await
                .expect("no frame within 30 s");
            match next {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    }

    /// Resumes `board` from the start of its log; answers the `seq` of every event replayed up to
    /// `current`, which the reply must name.
    async fn replay_all(&mut self, board: &str, current: i64) -> Vec<i64> {
        self.send(json!({"type": "subscribe", "id": 1, "board_id": board, "after_seq": 0})).await;
        let reply = self.next().await;
        assert_eq!(reply["type"], "reply", "{reply}");
        assert_eq!(reply["data"]["recovered"], true, "{reply}");
        assert_eq!(reply["data"]["seq"], current);
        let mut seen = Vec::new();
        while seen.last().copied().unwrap_or(0) < current {
            let frame = self.next().await;
            if frame["type"] == "event" {
                seen.push(frame["seq"].as_i64().unwrap());
            }
        }
        seen
    }
}

async fn the_log_is_paged_by_bytes(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let column = post(server, &f, "/columns", json!({"title": "Notes", "type": "long_text"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = post(server, &f, "/items", json!({"group_id": f.group, "name": "log"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let set = |text: String| {
        let body = json!({"values": {column.clone(): text}});
        let path = item_path.clone();
        async move { server.send_as(Method::PATCH, &path, token, Some(&body)).await.expect(200).clone() }
    };
    // Events of many sizes, and one larger than a whole page.
    for i in 0..40 {
        set("x".repeat(100 + i * 150)).await;
    }
    let huge = set("y".repeat(18_000)).await;
    for i in 0..5 {
        set(format!("small {i}")).await;
    }
    let current = snapshot(server, &f).await["seq"].as_i64().unwrap();
    let (seen, pages) = page_through(server, &f, PAGE_BYTES).await;
    assert_eq!(seen, (1..=current).collect::<Vec<_>>(), "each event exactly once, in order");
    assert!(pages >= 10, "only {pages} pages: the log was not cut by bytes");
    // The huge event came, alone in its page, and paging went on past it.
    let huge_seq = current - 5;
    let (size, body) = events_page(server, &f, huge_seq - 1).await;
    assert!(size > PAGE_BYTES);
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["data"]["version"], huge["version"]);
    assert_eq!(body["has_more"], true);
    // A socket resuming from the start is replayed every event once, in order, then goes live.
    let mut socket = Socket::open(server, token).await;
    let replayed = socket.replay_all(&f.board, current).await;
    assert_eq!(replayed, (1..=current).collect::<Vec<_>>());
    post(server, &f, "/items", json!({"group_id": f.group, "name": "live"})).await.expect(201);
    let live = loop {
        let frame = socket.next().await;
        if frame["type"] == "event" {
            break frame;
        }
    };
    assert_eq!(live["seq"], current + 1);
}

/// The log written here is several times the margin allowed; reading it whole at once anywhere
/// (a page, a replay) would take the process past it.
const LOG_EVENTS: usize = 256;
const RSS_MARGIN: usize = 48 * 1024 * 1024;
const LARGE_PAGE_BYTES: usize = 1024 * 1024;

fn large_log(settings: &mut boardroom::config::Settings) {
    settings.events_page_bytes = LARGE_PAGE_BYTES as u32;
}

/// The process's resident memory now, from `/proc/self/status`.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// Samples the resident memory every few milliseconds until dropped; `peak()` is the most seen.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    fn start() -> PeakRss {
        let (stop, peak) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(rss_bytes())));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        PeakRss { stop, peak, thread: Some(thread) }
    }

    fn peak(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed).max(rss_bytes())
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn paging_a_large_log_keeps_memory_flat(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    // Three long_text columns of 20,000 four-byte characters: 240 KB of values, within the
    // default 256 KiB; each change of all three logs an event of about 480 KB (the item and
    // what changed).
    let mut columns = Vec::new();
    for title in ["A", "B", "C"] {
        let column = post(server, &f, "/columns", json!({"title": title, "type": "long_text"}))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        columns.push(column);
    }
    let item = post(server, &f, "/items", json!({"group_id": f.group, "name": "heavy"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let text = |n: usize| format!("{n}{}", "😀".repeat(19_990));
    for round in 0..LOG_EVENTS / 8 {
        let writes = (0..8).map(|i| {
            let n = round * 8 + i;
            let values: serde_json::Map<String, Value> =
                columns.iter().map(|c| (c.clone(), json!(text(n)))).collect();
            let body = json!({ "values": values });
            let path = item_path.clone();
            async move { server.send_as(Method::PATCH, &path, token, Some(&body)).await }
        });
        for reply in futures::future::join_all(writes).await {
            reply.expect(200);
        }
    }
    let current = snapshot(server, &f).await["seq"].as_i64().unwrap();
    let size = match server.state().store().pool() {
        boardroom::storage::Pool::Sqlite(_) => "length(CAST(payload AS BLOB))",
        boardroom::storage::Pool::Postgres(_) => "octet_length(payload::text)",
    };
    let sql = format!("SELECT CAST(SUM({size}) AS BIGINT) FROM board_events WHERE board_id = $1");
    let board: uuid::Uuid = f.board.parse().unwrap();
    let logged: i64 = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar::<_, i64>(&sql).bind(board).fetch_one(pool).await.unwrap()
    });
    assert!(logged as usize > 2 * RSS_MARGIN, "the log ({logged} bytes) is too small to tell");
    // Warm up what any page needs (connections, buffers), then measure the whole log read twice.
    events_page(server, &f, 0).await;
    let baseline = rss_bytes();
    let mut rss = PeakRss::start();
    let (seen, pages) = page_through(server, &f, LARGE_PAGE_BYTES).await;
    assert_eq!(seen, (1..=current).collect::<Vec<_>>(), "each event exactly once, in order");
    assert!(pages as i64 >= current / 3, "{pages} pages for {current} events of ~480 KB");
    let mut socket = Socket::open(server, token).await;
    let replayed = socket.replay_all(&f.board, current).await;
    assert_eq!(replayed, (1..=current).collect::<Vec<_>>());
    let peak = rss.peak();
    let grew = peak.saturating_sub(baseline);
    eprintln!(
        "log of {current} events, {} MiB; RSS {} MiB at the start, peak {} MiB (+{} MiB)",
        logged / (1 << 20),
        baseline >> 20,
        peak >> 20,
        grew >> 20
    );
    assert!(grew < RSS_MARGIN, "RSS grew by {} MiB while paging the log", grew >> 20);
}
