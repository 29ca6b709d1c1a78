//! Bounded resources: a board holds at most so many columns, groups and items, and an item's
//! values and an update's body at most so many bytes. Past a bound the answer is a stable code
//! (`limit_reached` 422, `content_too_large` 413), on REST and sockets alike, nothing is stored,
//! and the board keeps accepting writes. The servers here run with small bounds.
//!
//! The event log is read in pages bounded by bytes as well as by count, over REST and in a
//! socket's replay, so a log of large events reaches the client whole, each event once, while
//! the server's memory stays flat (measured from `/proc/self/status`: the server runs in this
//! process).

use std::time::Duration;

use boardroom_protocol::boards::{self as wire, Item, Snapshot, UpdateItem};
use boardroom_protocol::events::{EventData, EventLog};
use reqwest::Method;
use serde_json::json;

use crate::boards::{fixture, Fixture};
use crate::harness::memory::{rss_bytes, PeakRss};
use crate::harness::socket::{connect, error_code, msg, subscribed, Socket, JSON};
use crate::harness::{self, both_backends_with, Reply, TestServer};

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

async fn post<B: serde::Serialize>(server: &TestServer, f: &Fixture, path: &str, body: B) -> Reply {
    server
        .post(&format!("/api/v1/boards/{}{path}", f.board), Some(&f.owner.access_token), &body)
        .await
}

async fn snapshot(server: &TestServer, f: &Fixture) -> Snapshot {
    let path = format!("/api/v1/boards/{}", f.board);
    server.get_as(&path, &f.owner.access_token).await.expect_as(200)
}

/// Item `name` with `column` set to `value`.
fn item_with(f: &Fixture, name: &str, column: uuid::Uuid, value: String) -> wire::CreateItem {
    let mut item = harness::item(&f.group, name);
    item.values.insert(column, json!(value));
    item
}

/// Sets the item values in `values` (`None` clears one).
fn set_values(values: &[(uuid::Uuid, Option<String>)]) -> UpdateItem {
    let values = values.iter().map(|(column, value)| (*column, json!(value))).collect();
    UpdateItem { values, ..Default::default() }
}

async fn counts_stop_at_their_bounds(server: &TestServer) {
    let f = fixture(server).await;
    let mut socket = connect(server, &f.owner.access_token, JSON).await;
    // Columns.
    for i in 0..MAX_COLUMNS {
        server.create_column(&f.owner, &f.board, &harness::column(&format!("c{i}"), "text")).await;
    }
    post(server, &f, "/columns", harness::column("one more", "text"))
        .await
        .expect_error(422, "limit_reached");
    let reply = socket.request(msg::create_column(&f.board, harness::column("x", "text"))).await;
    assert_eq!(error_code(&reply), "limit_reached");
    // Groups (the board starts with one).
    for i in 1..MAX_GROUPS {
        server.create_group(&f.owner, &f.board, &harness::group(&format!("g{i}"))).await;
    }
    post(server, &f, "/groups", harness::group("one more"))
        .await
        .expect_error(422, "limit_reached");
    let reply = socket.request(msg::create_group(&f.board, harness::group("x"))).await;
    assert_eq!(error_code(&reply), "limit_reached");
    // Items.
    let mut items = Vec::new();
    for i in 0..MAX_ITEMS {
        let item = harness::item(&f.group, &format!("i{i}"));
        items.push(server.create_item(&f.owner, &f.board, &item).await.id);
    }
    // An archived item is still held: it counts.
    let archive = format!("/api/v1/boards/{}/items/{}/archive", f.board, items[0]);
    let archived: Item = server
        .post(&archive, Some(&f.owner.access_token), &wire::ArchiveItem { archived: None })
        .await
        .expect_as(200);
    assert!(archived.archived);
    post(server, &f, "/items", harness::item(&f.group, "one more"))
        .await
        .expect_error(422, "limit_reached");
    let reply = socket.request(msg::create_item(&f.board, harness::item(&f.group, "x"))).await;
    assert_eq!(error_code(&reply), "limit_reached");
    // Nothing was stored by the refusals; the board holds exactly the bounds.
    let snap = snapshot(server, &f).await;
    assert_eq!(snap.columns.len(), MAX_COLUMNS);
    assert_eq!(snap.groups.len(), MAX_GROUPS);
    assert_eq!(snap.items.len(), MAX_ITEMS);
    let seq = snap.seq;
    // Deleting makes room again, and other writes go on.
    let item = format!("/api/v1/boards/{}/items/{}", f.board, items[1]);
    server.send_as(Method::DELETE, &item, &f.owner.access_token, None).await.expect(204);
    server.create_item(&f.owner, &f.board, &harness::item(&f.group, "room again")).await;
    let snap = snapshot(server, &f).await;
    assert_eq!(snap.items.len(), MAX_ITEMS);
    assert_eq!(snap.seq, seq + 2, "the refusals wrote events");
    // The bound survives a restart of the board's actor (the count is loaded, not remembered).
    assert!(server.state().boards().inject_panic(f.board.parse().unwrap()));
    for attempt in 0.. {
        let reply = post(server, &f, "/items", harness::item(&f.group, "x")).await;
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
    let bodies: Vec<wire::CreateItem> =
        (0..4 * MAX_ITEMS).map(|i| harness::item(&f.group, &format!("i{i}"))).collect();
    let creates = bodies.iter().map(|body| server.post(&path, Some(&f.owner.access_token), body));
    let replies = futures::future::join_all(creates).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.expect_error(422, "limit_reached");
    }
    assert_eq!(created, MAX_ITEMS);
    assert_eq!(snapshot(server, &f).await.items.len(), MAX_ITEMS);
}

async fn an_item_cannot_grow_past_its_bound(server: &TestServer) {
    let f = fixture(server).await;
    let notes = |title: &str| harness::column(title, "long_text");
    let a = server.create_column(&f.owner, &f.board, &notes("A")).await.id;
    let b = server.create_column(&f.owner, &f.board, &notes("B")).await.id;
    // Too large from the start: refused, nothing created.
    let big = "é".repeat(MAX_VALUES_BYTES / 2);
    post(server, &f, "/items", item_with(&f, "big", a, big))
        .await
        .expect_error(413, "content_too_large");
    let grows = item_with(&f, "grows", a, "a".repeat(2000));
    let item = server.create_item(&f.owner, &f.board, &grows).await.id.to_string();
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let before: Item = server.get_as(&item_path, &f.owner.access_token).await.expect_as(200);
    let seq = snapshot(server, &f).await.seq;
    // Each change is small; the item as it would become is not (2000 + 3000 bytes of text).
    let grow = set_values(&[(b, Some("é".repeat(1500)))]);
    let token = &f.owner.access_token;
    server
        .send_body(Method::PATCH, &item_path, token, &grow)
        .await
        .expect_error(413, "content_too_large");
    let mut socket = connect(server, token, JSON).await;
    let reply = socket.request(msg::update_item(&f.board, &item, grow)).await;
    assert_eq!(error_code(&reply), "content_too_large");
    // Nothing stored: the item and the log are as they were.
    assert_eq!(server.get_as(&item_path, token).await.expect_as::<Item>(200), before);
    assert_eq!(snapshot(server, &f).await.seq, seq);
    // The board still accepts writes, this item's included, up to the bound.
    let fits = set_values(&[(b, Some("b".repeat(1000)))]);
    let after: boardroom_protocol::events::ItemUpdated =
        server.send_body(Method::PATCH, &item_path, token, &fits).await.expect_as(200);
    assert_eq!(after.item.version, 2);
    let size = serde_json::to_vec(&after.item.values).unwrap().len();
    assert!(size <= MAX_VALUES_BYTES, "{size}");
    // Clearing a value shrinks the item, and a column it could not hold before now fits.
    let swap = set_values(&[(a, None), (b, Some("é".repeat(1500)))]);
    server.send_body(Method::PATCH, &item_path, token, &swap).await.expect(200);
    server.create_item(&f.owner, &f.board, &harness::item(&f.group, "another")).await;
}

async fn update_bodies_are_bounded_in_bytes(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let item = server.create_item(&f.owner, &f.board, &harness::item(&f.group, "talk")).await;
    let item = item.id.to_string();
    let updates = format!("/api/v1/boards/{}/items/{item}/updates", f.board);
    let update = |body: &str| wire::CreateUpdate { body: body.to_owned(), parent_id: None };
    // 600 characters, under the character limit; 1200 bytes, over the byte bound.
    let too_big = "é".repeat(600);
    server
        .post(&updates, Some(token), &update(&too_big))
        .await
        .expect_error(413, "content_too_large");
    let mut socket = connect(server, token, JSON).await;
    let reply = socket.request(msg::create_update(&f.board, &item, update(&too_big))).await;
    assert_eq!(error_code(&reply), "content_too_large");
    let fits = "é".repeat(MAX_BODY_BYTES / 2);
    let created: wire::Update =
        server.post(&updates, Some(token), &update(&fits)).await.expect_as(201);
    let edit = format!("{updates}/{}", created.id);
    server
        .send_body(Method::PATCH, &edit, token, &wire::EditUpdate { body: too_big })
        .await
        .expect_error(413, "content_too_large");
    let listed: wire::UpdateList = server.get_as(&updates, token).await.expect_as(200);
    assert_eq!(listed.updates.len(), 1);
    assert_eq!(listed.updates[0].body, fits);
    assert!(listed.updates[0].edited_at.is_none());
    server.post(&updates, Some(token), &update("short")).await.expect(201);
}

const PAGE_BYTES: usize = 16 * 1024;

fn small_pages(settings: &mut boardroom::config::Settings) {
    settings.events_page_bytes = PAGE_BYTES as u32;
}

/// One page of `GET /boards/{board}/events`: its size on the wire and its body.
async fn events_page(server: &TestServer, f: &Fixture, after: i64) -> (usize, EventLog) {
    let url = server.url(&format!("/api/v1/boards/{}/events?after={after}&limit=1000", f.board));
    let response =
        reqwest::Client::new().get(url).bearer_auth(&f.owner.access_token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: EventLog = serde_json::from_str(&text).unwrap();
    (text.len(), body)
}

/// Pages through the whole log from the start; answers each event's `seq` and the number of
/// pages, checking every page against the byte bound.
async fn page_through(server: &TestServer, f: &Fixture, page_bytes: usize) -> (Vec<i64>, usize) {
    let (mut seen, mut pages, mut after) = (Vec::new(), 0, 0);
    loop {
        let (size, body) = events_page(server, f, after).await;
        pages += 1;
        let events = &body.events;
        assert!(
            size <= page_bytes || events.len() == 1,
            "a page of {} events took {size} bytes",
            events.len()
        );
        seen.extend(events.iter().map(|e| e.seq));
        if !body.has_more {
            break;
        }
        after = body.last_seq.unwrap();
        assert!(pages < 10_000, "paging does not end");
    }
    (seen, pages)
}

/// Opens a socket that keeps nothing it reads, so it holds no memory of the log it replays.
async fn open(server: &TestServer, token: &str) -> Socket {
    connect(server, token, JSON).await.keeping_no_history().with_patience(Duration::from_secs(30))
}

/// Resumes `board` from the start of its log; answers the `seq` of every event replayed up to
/// `current`, which the reply must name.
async fn replay_all(socket: &mut Socket, board: &str, current: i64) -> Vec<i64> {
    let reply = subscribed(&socket.request(msg::resume(board, 0)).await);
    assert!(reply.recovered, "{reply:?}");
    assert_eq!(reply.seq, current);
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < current {
        seen.push(socket.next_event().await.seq);
    }
    seen
}

async fn the_log_is_paged_by_bytes(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let column =
        server.create_column(&f.owner, &f.board, &harness::column("Notes", "long_text")).await.id;
    let item = server.create_item(&f.owner, &f.board, &harness::item(&f.group, "log")).await.id;
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let set = |text: String| {
        let body = set_values(&[(column, Some(text))]);
        let path = item_path.clone();
        async move {
            let reply = server.send_body(Method::PATCH, &path, token, &body).await;
            reply.expect_as::<boardroom_protocol::events::ItemUpdated>(200).item
        }
    };
    // Events of many sizes, and one larger than a whole page.
    for i in 0..40 {
        set("x".repeat(100 + i * 150)).await;
    }
    let huge = set("y".repeat(18_000)).await;
    for i in 0..5 {
        set(format!("small {i}")).await;
    }
    let current = snapshot(server, &f).await.seq;
    let (seen, pages) = page_through(server, &f, PAGE_BYTES).await;
    assert_eq!(seen, (1..=current).collect::<Vec<_>>(), "each event exactly once, in order");
    assert!(pages >= 10, "only {pages} pages: the log was not cut by bytes");
    // The huge event came, alone in its page, and paging went on past it.
    let huge_seq = current - 5;
    let (size, body) = events_page(server, &f, huge_seq - 1).await;
    assert!(size > PAGE_BYTES);
    assert_eq!(body.events.len(), 1);
    let EventData::ItemUpdated(logged) = &body.events[0].event else {
        panic!("not the update: {:?}", body.events[0])
    };
    assert_eq!(logged.item.version, huge.version);
    assert!(body.has_more);
    // A socket resuming from the start is replayed every event once, in order, then goes live.
    let mut socket = open(server, token).await;
    let replayed = replay_all(&mut socket, &f.board, current).await;
    assert_eq!(replayed, (1..=current).collect::<Vec<_>>());
    server.create_item(&f.owner, &f.board, &harness::item(&f.group, "live")).await;
    assert_eq!(socket.next_event().await.seq, current + 1);
}

/// The log written here is several times the margin allowed; reading it whole at once anywhere
/// (a page, a replay) would take the process past it.
const LOG_EVENTS: usize = 256;
const RSS_MARGIN: usize = 48 * 1024 * 1024;
const LARGE_PAGE_BYTES: usize = 1024 * 1024;

fn large_log(settings: &mut boardroom::config::Settings) {
    settings.events_page_bytes = LARGE_PAGE_BYTES as u32;
}

async fn paging_a_large_log_keeps_memory_flat(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    // Three long_text columns of 20,000 four-byte characters: 240 KB of values, within the
    // default 256 KiB; each change of all three logs an event of about 480 KB (the item and
    // what changed).
    let mut columns = Vec::new();
    for title in ["A", "B", "C"] {
        let column = harness::column(title, "long_text");
        columns.push(server.create_column(&f.owner, &f.board, &column).await.id);
    }
    let item = server.create_item(&f.owner, &f.board, &harness::item(&f.group, "heavy")).await.id;
    let item_path = format!("/api/v1/boards/{}/items/{item}", f.board);
    let text = |n: usize| format!("{n}{}", "😀".repeat(19_990));
    for round in 0..LOG_EVENTS / 8 {
        let writes = (0..8).map(|i| {
            let n = round * 8 + i;
            let values: Vec<_> = columns.iter().map(|c| (*c, Some(text(n)))).collect();
            let body = set_values(&values);
            let path = item_path.clone();
            async move { server.send_body(Method::PATCH, &path, token, &body).await }
        });
        for reply in futures::future::join_all(writes).await {
            reply.expect(200);
        }
    }
    let current = snapshot(server, &f).await.seq;
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
    let mut socket = open(server, token).await;
    let replayed = replay_all(&mut socket, &f.board, current).await;
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
