//! Boards end to end: the domain (columns, groups, items, values, moves, updates), the event
//! log, idempotent creates, item versions, cross-board and cross-org refusals, deletion, idle
//! actors restarting from the database, and a crashed actor losing nothing it acknowledged.

use std::collections::BTreeMap;

use boardroom_protocol::audit::AuditLog;
use boardroom_protocol::boards::{
    ArchiveItem, BoardList, BoardRole, CreateBoard, CreateUpdate, CreatedBoard, EditUpdate, Item,
    ItemPage, MoveItem, SetMember, Snapshot, Update, UpdateItem, UpdateList,
};
use boardroom_protocol::events::{EventData, EventKind, EventLog};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{
    both_backends, both_backends_with, column, group, id, item, TestServer, TestUser,
};

both_backends!(
    a_board_holds_columns_groups_items_and_updates,
    bad_input_is_refused_and_changes_nothing,
    the_event_log_is_gap_free_and_replays_to_the_state,
    idempotency_key_returns_the_first_result,
    item_versions_guard_concurrent_edits,
    cross_board_and_cross_org_operations_are_refused,
    a_deleted_board_is_gone,
    a_crashed_board_actor_is_restarted_and_loses_nothing,
    a_batch_whose_log_moved_writes_nothing_and_the_board_recovers,
    boards_committing_together_keep_their_own_results,
    a_batch_naming_another_orgs_item_writes_nothing,
    a_batch_creating_and_changing_items_writes_them_all,
    an_access_change_is_audited_exactly_when_it_commits,
    a_person_column_follows_org_membership,
    the_event_log_shows_a_key_what_its_scopes_read,
    a_new_item_goes_after_the_last_by_position,
    the_log_gives_back_text_exactly_as_written,
);

both_backends_with!(short_idle; an_idle_board_actor_stops_and_comes_back);

fn short_idle(settings: &mut boardroom::config::Settings) {
    settings.board_idle_secs = 1;
}

/// A board with an owner, plus the ids of its first group.
pub struct Fixture {
    pub owner: TestUser,
    pub org: String,
    pub board: String,
    pub group: String,
}

pub async fn fixture(server: &TestServer) -> Fixture {
    let owner = server.register("owner").await;
    let org = server.create_org(&owner, "Acme").await;
    let created = server.create_board(&owner, &org, "Roadmap").await;
    assert_eq!(created.role, BoardRole::Owner);
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    Fixture { owner, org, board, group }
}

/// `POST path` as `user` with an `Idempotency-Key`.
async fn post_with_key<B: Serialize>(
    server: &TestServer,
    user: &TestUser,
    path: &str,
    key: &str,
    body: &B,
) -> crate::harness::Reply {
    server
        .call(Method::POST, path)
        .bearer(&user.access_token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
}

/// `POST path` as `user`, expecting `status` and the answer's protocol type.
async fn post_as<T: serde::de::DeserializeOwned>(
    server: &TestServer,
    user: &TestUser,
    path: &str,
    body: &impl Serialize,
    status: u16,
) -> T {
    server.post(path, Some(&user.access_token), body).await.expect_as(status)
}

/// `PATCH path` of an item as `user`; answers the item.
async fn patch_item(server: &TestServer, user: &TestUser, path: &str, body: &UpdateItem) -> Item {
    server.send_body(Method::PATCH, path, &user.access_token, body).await.expect_as(200)
}

/// Renaming an item.
fn rename(name: &str) -> UpdateItem {
    UpdateItem { name: Some(name.to_owned()), ..UpdateItem::default() }
}

/// An item body with `values`.
fn item_with(
    group: &str,
    name: &str,
    values: BTreeMap<Uuid, Value>,
) -> boardroom_protocol::boards::CreateItem {
    boardroom_protocol::boards::CreateItem { values, ..item(group, name) }
}

/// The board at `b` as `user` sees it.
async fn snapshot(server: &TestServer, user: &TestUser, b: &str) -> Snapshot {
    server.get_as(b, &user.access_token).await.expect_as(200)
}

/// The board's log after `after`, one page, as `token`'s holder sees it.
async fn log(server: &TestServer, token: &str, b: &str, after: i64) -> EventLog {
    server.get_as(&format!("{b}/events?after={after}"), token).await.expect_as(200)
}

/// The kinds of a page of the log.
fn kinds(log: &EventLog) -> Vec<EventKind> {
    log.events.iter().map(|e| e.event.kind()).collect()
}

/// The item an `item.*` event carries after the change; `None` for other kinds.
fn item_of(event: &EventData) -> Option<&Item> {
    match event {
        EventData::ItemCreated(item) | EventData::ItemArchived(item) => Some(item),
        EventData::ItemUpdated(updated) => Some(&updated.item),
        EventData::ItemMoved(moved) => Some(&moved.item),
        _ => None,
    }
}

/// An item created without a placement goes after its group's last item by position: not after
/// the newest item, nor after one of another group; before and after still place exactly.
async fn a_new_item_goes_after_the_last_by_position(server: &TestServer) {
    let f = fixture(server).await;
    let (owner, board) = (&f.owner, f.board.as_str());
    let b = format!("/api/v1/boards/{board}");
    let other = server.create_group(owner, board, &group("Other")).await.id.to_string();
    let second = server.create_item(owner, board, &item(&f.group, "Second")).await;
    let before = boardroom_protocol::boards::CreateItem {
        before: Some(second.id),
        ..item(&f.group, "First")
    };
    let first = server.create_item(owner, board, &before).await;
    server.create_item(owner, board, &item(&other, "Elsewhere")).await;
    server.create_item(owner, board, &item(&f.group, "Third")).await;
    let after_first = boardroom_protocol::boards::CreateItem {
        after: Some(first.id),
        ..item(&f.group, "Between")
    };
    server.create_item(owner, board, &after_first).await;
    server.create_item(owner, board, &item(&f.group, "Fourth")).await;
    let snap = snapshot(server, owner, &b).await;
    let names: Vec<&str> = snap
        .items
        .iter()
        .filter(|i| i.item.group_id.to_string() == f.group)
        .map(|i| i.item.name.as_str())
        .collect();
    assert_eq!(names, ["First", "Between", "Second", "Third", "Fourth"]);
    // Moved without a placement, an item goes after the others, as a new one would.
    let to_end = MoveItem { group_id: f.group.parse().unwrap(), before: None, after: None };
    let moved: Item =
        post_as(server, owner, &format!("{b}/items/{}/move", first.id), &to_end, 200).await;
    assert_eq!(moved.name, "First");
    let snap = snapshot(server, owner, &b).await;
    let names: Vec<&str> = snap
        .items
        .iter()
        .filter(|i| i.item.group_id.to_string() == f.group)
        .map(|i| i.item.name.as_str())
        .collect();
    assert_eq!(names, ["Between", "Second", "Third", "Fourth", "First"]);
}

async fn a_board_holds_columns_groups_items_and_updates(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let (owner, board) = (&f.owner, f.board.as_str());
    let labelled =
        |title: &str, kind: &str, labels: Value| boardroom_protocol::boards::CreateColumn {
            settings: Some(json!({ "labels": labels })),
            ..column(title, kind)
        };
    let status = server
        .create_column(owner, board, &labelled("Status", "status", json!(["Todo", "Done"])))
        .await
        .id;
    let estimate = server.create_column(owner, board, &column("Estimate", "number")).await.id;
    let owner_col = server.create_column(owner, board, &column("Owner", "person")).await.id;
    let due =
        boardroom_protocol::boards::CreateColumn { before: Some(status), ..column("Due", "date") };
    let due = server.create_column(owner, board, &due).await.id;
    let later = server.create_group(owner, board, &group("Later")).await.id;

    let values = BTreeMap::from([
        (status, json!("Todo")),
        (estimate, json!(3)),
        (owner_col, json!([f.owner.id])),
        (due, json!("2026-12-24")),
    ]);
    let shipped = server.create_item(owner, board, &item_with(&f.group, "Ship it", values)).await;
    assert_eq!(shipped.version, 1);
    assert_eq!(shipped.values[&status], "Todo");
    let first = boardroom_protocol::boards::CreateItem {
        before: Some(shipped.id),
        ..item(&f.group, "First")
    };
    server.create_item(owner, board, &first).await;

    // Order: columns by position (Due was placed before Status), items within the group.
    let snap = snapshot(server, owner, &b).await;
    let titles: Vec<&str> = snap.columns.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["Due", "Status", "Estimate", "Owner"]);
    let names: Vec<&str> = snap.items.iter().map(|i| i.item.name.as_str()).collect();
    assert_eq!(names, ["First", "Ship it"]);
    assert_eq!(snap.groups.len(), 2);

    // Values merge per column; null clears one.
    let id = shipped.id;
    let merge = UpdateItem {
        values: BTreeMap::from([(status, json!("Done")), (estimate, Value::Null)]),
        ..UpdateItem::default()
    };
    let updated = patch_item(server, owner, &format!("{b}/items/{id}"), &merge).await;
    assert_eq!(updated.version, 2);
    assert_eq!(updated.values[&status], "Done");
    assert!(!updated.values.contains_key(&estimate));
    assert_eq!(updated.values[&due], "2026-12-24");

    // Move across groups, archive, restore.
    let moved: Item = post_as(
        server,
        owner,
        &format!("{b}/items/{id}/move"),
        &MoveItem { group_id: later, before: None, after: None },
        200,
    )
    .await;
    assert_eq!(moved.group_id, later);
    let archive = format!("{b}/items/{id}/archive");
    let archived: Item = post_as(server, owner, &archive, &ArchiveItem::default(), 200).await;
    assert!(archived.archived && archived.archived_at.is_some());
    let restore = ArchiveItem { archived: Some(false) };
    let restored: Item = post_as(server, owner, &archive, &restore, 200).await;
    assert!(!restored.archived && restored.archived_at.is_none());
    let page = server.get_as(&format!("{b}/items?group_id={later}"), &owner.access_token).await;
    assert_eq!(page.expect_as::<ItemPage>(200).items.len(), 1);
    let page = server.get_as(&format!("{b}/items?limit=1"), &owner.access_token).await;
    let page: ItemPage = page.expect_as(200);
    assert_eq!(page.items[0].name, "First");
    let next = page.next_cursor.expect("a next page");
    let rest =
        server.get_as(&format!("{b}/items?limit=1&cursor={next}"), &owner.access_token).await;
    assert_eq!(rest.expect_as::<ItemPage>(200).items[0].name, "Ship it");

    // Updates with a reply; the author edits, the owner deletes.
    let updates = format!("{b}/items/{id}/updates");
    let comment = |body: &str, parent_id| CreateUpdate { body: body.to_owned(), parent_id };
    let update: Update = post_as(server, owner, &updates, &comment("Looks good", None), 201).await;
    let reply: Update =
        post_as(server, owner, &updates, &comment("Thanks", Some(update.id)), 201).await;
    assert_eq!(reply.parent_id, Some(update.id));
    // Replies are one level deep.
    server
        .post(&updates, Some(&owner.access_token), &comment("Nested", Some(reply.id)))
        .await
        .expect_error(422, "validation_failed");
    let edited: Update = server
        .send_body(
            Method::PATCH,
            &format!("{updates}/{}", update.id),
            &owner.access_token,
            &EditUpdate { body: "Looks great".into() },
        )
        .await
        .expect_as(200);
    assert!(edited.edited_at.is_some());
    let list = server.get_as(&updates, &owner.access_token).await;
    let list = list.expect_as::<UpdateList>(200).updates;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].body, "Looks great");

    // Deleting a column removes its values from items.
    server
        .send_as(Method::DELETE, &format!("{b}/columns/{due}"), &owner.access_token, None)
        .await
        .expect(204);
    let item = server.get_as(&format!("{b}/items/{id}"), &owner.access_token).await;
    assert!(!item.expect_as::<Item>(200).values.contains_key(&due));
    assert!(item.header("etag").is_some());

    // The board list shows it with the caller's role.
    let boards =
        server.get_as(&format!("/api/v1/orgs/{}/boards", f.org), &owner.access_token).await;
    assert_eq!(boards.expect_as::<BoardList>(200).boards[0].role, BoardRole::Owner);
}

async fn bad_input_is_refused_and_changes_nothing(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let (owner, board) = (&f.owner, f.board.as_str());
    let labelled = boardroom_protocol::boards::CreateColumn {
        settings: Some(json!({"labels": ["Todo"]})),
        ..column("Status", "status")
    };
    let status = server.create_column(owner, board, &labelled).await.id;
    let number = server.create_column(owner, board, &column("N", "number")).await.id;
    let link = server.create_column(owner, board, &column("L", "link")).await.id;
    let person = server.create_column(owner, board, &column("P", "person")).await.id;
    // Every column type can be created, on both backends.
    for kind in ["text", "long_text", "date", "checkbox", "dropdown"] {
        let settings = (kind == "dropdown").then(|| json!({"labels": ["a", "b"]}));
        let body = boardroom_protocol::boards::CreateColumn { settings, ..column(kind, kind) };
        server.create_column(owner, board, &body).await;
    }
    let seq_before = snapshot(server, owner, &b).await.seq;
    let stranger = server.register("stranger").await;
    let valued =
        |column: Uuid, value: Value| item_with(&f.group, "x", BTreeMap::from([(column, value)]));
    let unknown = Uuid::now_v7();
    let well_formed = [
        (valued(status, json!("Nope")), 422, "validation_failed"),
        (valued(number, json!("12")), 422, "validation_failed"),
        (valued(link, json!("javascript:alert(1)")), 422, "validation_failed"),
        (valued(person, json!([stranger.id])), 422, "validation_failed"),
        (valued(unknown, json!(1)), 422, "validation_failed"),
        (item(&f.group, &"x".repeat(501)), 422, "validation_failed"),
        (item(&f.group, "  "), 422, "validation_failed"),
        (item(&Uuid::now_v7().to_string(), "x"), 404, "not_found"),
    ];
    for (body, status_code, code) in well_formed {
        let reply = server.post(&format!("{b}/items"), Some(&owner.access_token), &body).await;
        reply.expect_error(status_code, code);
    }
    // Malformed on purpose: a value keyed by no column id, a misspelt field.
    for body in [
        json!({"group_id": f.group, "name": "x", "values": {"not-a-uuid": 1}}),
        json!({"group_id": f.group, "name": "x", "valeus": {}}),
    ] {
        let reply = server.post(&format!("{b}/items"), Some(&owner.access_token), &body).await;
        reply.expect_error(400, "malformed_body");
    }
    server
        .call(Method::POST, &format!("{b}/items"))
        .bearer(&owner.access_token)
        .raw("application/json", "{\"group_id\":")
        .send()
        .await
        .expect_error(400, "malformed_body");
    for refused in [column("S", "status"), column("S", "formula")] {
        server
            .post(&format!("{b}/columns"), Some(&owner.access_token), &refused)
            .await
            .expect_error(422, "validation_failed");
    }
    let after = snapshot(server, owner, &b).await;
    assert_eq!(after.seq, seq_before, "refused commands must not touch the log");
    assert_eq!(after.items.len(), 0);
}

async fn the_event_log_is_gap_free_and_replays_to_the_state(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let t = server.create_column(&f.owner, &f.board, &column("T", "text")).await.id;
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(
            server.create_item(&f.owner, &f.board, &item(&f.group, &format!("item {i}"))).await.id,
        );
    }
    // Concurrent writers on one board: every acknowledged write lands, seq stays gap-free.
    let mut writers = Vec::new();
    for w in 0..16 {
        let item = items[w % items.len()];
        let path = format!("{b}/items/{item}");
        let token = f.owner.access_token.clone();
        let url = server.url(&path);
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = 0;
            for n in 0..10 {
                let body = UpdateItem {
                    values: BTreeMap::from([(t, json!(format!("w{w}-{n}")))]),
                    ..UpdateItem::default()
                };
                let reply =
                    client.patch(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(reply.status().as_u16(), 200, "{}", reply.text().await.unwrap());
                acked += 1;
            }
            acked
        }));
    }
    let mut acked = 0;
    for w in writers {
        acked += w.await.unwrap();
    }
    assert_eq!(acked, 160);
    // Concurrent deletions share batches (one statement for many rows): all go, none else.
    let mut doomed = Vec::new();
    for i in 0..8 {
        doomed.push(
            server
                .create_item(&f.owner, &f.board, &item(&f.group, &format!("doomed {i}")))
                .await
                .id,
        );
    }
    let token = f.owner.access_token.as_str();
    let deletions = doomed.iter().map(|id| {
        let path = format!("{b}/items/{id}");
        async move { server.send_as(Method::DELETE, &path, token, None).await }
    });
    for reply in futures::future::join_all(deletions).await {
        reply.expect(204);
    }

    let snapshot = snapshot(server, &f.owner, &b).await;
    let left: Vec<Uuid> = snapshot.items.iter().map(|i| i.item.id).collect();
    assert_eq!(left.len(), items.len(), "{left:?}");
    assert!(doomed.iter().all(|d| !left.contains(d)));
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get_as(&format!("{b}/events?after={after}&limit=50"), &f.owner.access_token)
            .await;
        let page: EventLog = page.expect_as(200);
        let Some(last) = page.events.last() else { break };
        after = last.seq;
        events.extend(page.events);
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gap-free and ordered");
    assert_eq!(snapshot.seq, *seqs.last().unwrap());
    assert_eq!(events[0].event.kind(), EventKind::BoardCreated);
    assert_eq!(events.iter().filter(|e| e.event.kind() == EventKind::ItemUpdated).count(), 160);

    // Replaying the log gives the final state of every item.
    let mut replayed: std::collections::HashMap<Uuid, Item> = Default::default();
    for event in &events {
        if let EventData::ItemDeleted(deleted) = &event.event {
            replayed.remove(&deleted.id);
        } else if let Some(item) = item_of(&event.event) {
            replayed.insert(item.id, item.clone());
        }
    }
    for shown in &snapshot.items {
        // The snapshot's item also counts its files; the log carries that as attachment.* events.
        assert_eq!(shown.attachment_count, 0);
        assert_eq!(&replayed[&shown.item.id], &shown.item);
    }
    assert_eq!(replayed.len(), snapshot.items.len());
}

async fn idempotency_key_returns_the_first_result(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let items = format!("{b}/items");
    let once = item(&f.group, "Once");
    let send = || post_with_key(server, &f.owner, &items, "create-42", &once);
    let first = send().await;
    let second = send().await;
    assert_eq!(first.expect_as::<Item>(201), second.expect_as::<Item>(201));
    assert_eq!(snapshot(server, &f.owner, &b).await.items.len(), 1);
    // Retries racing the first attempt (none of them committed yet) still create once.
    let burst_item = item(&f.group, "Burst");
    let burst = (0..8).map(|_| post_with_key(server, &f.owner, &items, "burst-7", &burst_item));
    let replies = futures::future::join_all(burst).await;
    let ids: std::collections::HashSet<Uuid> =
        replies.iter().map(|r| r.expect_as::<Item>(201).id).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(snapshot(server, &f.owner, &b).await.items.len(), 2);
    // Board creation is idempotent too.
    let boards_path = format!("/api/v1/orgs/{}/boards", f.org);
    let twice = CreateBoard { name: "Twice?".into(), description: String::new() };
    let org_board = |key: &'static str| post_with_key(server, &f.owner, &boards_path, key, &twice);
    let a = org_board("board-1").await.expect_as::<CreatedBoard>(201);
    let again = org_board("board-1").await.expect_as::<CreatedBoard>(201);
    assert_eq!(a, again);
    let boards = server.get_as(&boards_path, &f.owner.access_token).await;
    assert_eq!(boards.expect_as::<BoardList>(200).boards.len(), 2);
    // Keys are remembered for a window, then pruned: the same key then creates anew.
    let pruned = server
        .state()
        .store()
        .prune_idempotency(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(pruned >= 2, "{pruned}");
    let after = org_board("board-1").await.expect_as::<CreatedBoard>(201);
    assert_ne!(after.board.id, a.board.id);
    // A malformed key is refused.
    post_with_key(server, &f.owner, &items, "bad key with spaces", &item(&f.group, "x"))
        .await
        .expect_error(400, "bad_request");
}

async fn item_versions_guard_concurrent_edits(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let created = server.create_item(&f.owner, &f.board, &item(&f.group, "v1")).await;
    let path = format!("{b}/items/{}", created.id);
    let ok = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "\"1\"")
        .json(&rename("v2"))
        .send()
        .await;
    assert_eq!(ok.expect_as::<Item>(200).version, 2);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    let stale = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "\"1\"")
        .json(&rename("lost"))
        .send()
        .await;
    stale.expect_error(409, "version_conflict");
    let expecting_1 = UpdateItem { expected_version: Some(1), ..rename("lost") };
    server
        .send_body(Method::PATCH, &path, &f.owner.access_token, &expecting_1)
        .await
        .expect_error(409, "version_conflict");
    // Without a version, the last writer wins; `If-Match: *` asks for any version.
    let lww = patch_item(server, &f.owner, &path, &rename("v3")).await;
    assert_eq!((lww.name.as_str(), lww.version), ("v3", 3));
    let any = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "*")
        .json(&rename("v4"))
        .send()
        .await;
    assert_eq!(any.expect_as::<Item>(200).version, 4);
    // Archiving reads its (optional) body within the same size limit, answering in JSON.
    server
        .call(Method::POST, &format!("{path}/archive"))
        .bearer(&f.owner.access_token)
        .raw("application/json", vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect_error(413, "payload_too_large");
    let after = server.get_as(&path, &f.owner.access_token).await;
    assert!(!after.expect_as::<Item>(200).archived);
}

async fn cross_board_and_cross_org_operations_are_refused(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let other = server.create_board(&f.owner, &f.org, "Other").await;
    let other_group = other.groups[0].id;
    let id = server.create_item(&f.owner, &f.board, &item(&f.group, "mine")).await.id;
    // A group of another board is not this board's group.
    server
        .post(
            &format!("{b}/items/{id}/move"),
            Some(&f.owner.access_token),
            &MoveItem { group_id: other_group, before: None, after: None },
        )
        .await
        .expect_error(404, "not_found");
    server
        .post(
            &format!("{b}/items"),
            Some(&f.owner.access_token),
            &item(&other_group.to_string(), "x"),
        )
        .await
        .expect_error(404, "not_found");
    // This board's item through the other board's path.
    server
        .get_as(&format!("/api/v1/boards/{}/items/{id}", other.board.id), &f.owner.access_token)
        .await
        .expect_error(404, "not_found");
    // Another organization's admin sees nothing.
    let mallory = server.register("mallory").await;
    server.create_org(&mallory, "Evil").await;
    for path in
        [b.clone(), format!("{b}/items/{id}"), format!("{b}/events"), format!("{b}/members")]
    {
        server.get_as(&path, &mallory.access_token).await.expect_error(404, "not_found");
    }
    server
        .send_body(
            Method::PATCH,
            &format!("{b}/items/{id}"),
            &mallory.access_token,
            &rename("pwned"),
        )
        .await
        .expect_error(404, "not_found");
    // Board access changes are security events: they reach the audit log.
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    server.add_board_member(&f.owner, &f.board, &carol, "editor").await;
    server
        .send_as(Method::DELETE, &format!("{b}/members/{}", carol.id), &f.owner.access_token, None)
        .await
        .expect(204);
    // The audit rows were committed with the changes: they are there when the answers are.
    let actions = audit_actions(server, &f).await;
    assert!(
        actions.contains(&"board.member_added".to_owned())
            && actions.contains(&"board.member_removed".to_owned()),
        "{actions:?}"
    );
    // A member of another org cannot be made a board member.
    server
        .send_body(
            Method::PUT,
            &format!("{b}/members/{}", mallory.id),
            &f.owner.access_token,
            &SetMember { role: "editor".into() },
        )
        .await
        .expect_error(422, "validation_failed");
}

/// People named in a person column must belong to the organization as it is now: someone
/// removed from it is refused at once, and accepted again once re-added.
async fn a_person_column_follows_org_membership(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let column = server.create_column(&f.owner, &f.board, &column("P", "person")).await.id;
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    let naming_carol = item_with(&f.group, "x", BTreeMap::from([(column, json!([carol.id]))]));
    server.create_item(&f.owner, &f.board, &naming_carol).await;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{}/members/{}", f.org, carol.id),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    server
        .post(&format!("{b}/items"), Some(&f.owner.access_token), &naming_carol)
        .await
        .expect_error(422, "validation_failed");
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    server.create_item(&f.owner, &f.board, &naming_carol).await;
}

/// `GET /boards/{board}/events` applies the same scope rule as sockets: a key without
/// `items:read` sees no item events, but its `last_seq` still moves past them.
async fn the_event_log_shows_a_key_what_its_scopes_read(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    server.create_item(&f.owner, &f.board, &item(&f.group, "x")).await;
    let (_, boards_only) = server.create_key(&f.owner, &f.org, &["boards:read"]).await;
    let (_, with_items) = server.create_key(&f.owner, &f.org, &["boards:read", "items:read"]).await;
    let (narrow, wide) =
        (log(server, &boards_only, &b, 0).await, log(server, &with_items, &b, 0).await);
    assert!(!kinds(&narrow).iter().any(|k| k.as_str().starts_with("item.")), "{narrow:?}");
    assert!(kinds(&wide).contains(&EventKind::ItemCreated), "{wide:?}");
    assert_eq!(narrow.last_seq, wide.last_seq);
}

/// The organization's audit actions, newest first.
async fn audit_actions(server: &TestServer, f: &Fixture) -> Vec<String> {
    let log =
        server.get_as(&format!("/api/v1/orgs/{}/audit-log", f.org), &f.owner.access_token).await;
    log.expect_as::<AuditLog>(200).entries.into_iter().map(|e| e.action).collect()
}

/// A board access change and its audit row commit together: a change the store refused leaves
/// no audit row, and the retried change leaves exactly one.
async fn an_access_change_is_audited_exactly_when_it_commits(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    let grant = SetMember { role: "editor".into() };
    let path = format!("{b}/members/{}", carol.id);
    // Wake the board's actor, then move its stored log under it.
    snapshot(server, &f.owner, &b).await;
    server.move_board_seq(&f.board, 2).await;
    server
        .send_body(Method::PUT, &path, &f.owner.access_token, &grant)
        .await
        .expect_error(503, "unavailable");
    server.flush_audit().await;
    let actions = audit_actions(server, &f).await;
    assert!(!actions.contains(&"board.member_added".to_owned()), "{actions:?}");
    server.send_body(Method::PUT, &path, &f.owner.access_token, &grant).await.expect(200);
    let actions = audit_actions(server, &f).await;
    let added = actions.iter().filter(|a| *a == "board.member_added").count();
    assert_eq!(added, 1, "{actions:?}");
    assert_eq!(actions[0], "board.member_added", "the newest row is the change just made");
    // The chain is still whole with rows appended by board commits and the audit actor.
    server.flush_audit().await;
    let report = server.verify_audit().await;
    assert!(matches!(report, boardroom::storage::ChainReport::Intact(_)), "{report:?}");
}

async fn a_deleted_board_is_gone(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let (items, body) = (format!("{b}/items"), item(&f.group, "x"));
    let keyed_create = || post_with_key(server, &f.owner, &items, "made-before", &body);
    keyed_create().await.expect_as::<Item>(201);
    server.send_as(Method::DELETE, &b, &f.owner.access_token, None).await.expect(204);
    // Not even a retry of something that was created on it answers.
    keyed_create().await.expect_error(404, "not_found");
    server.get_as(&b, &f.owner.access_token).await.expect_error(404, "not_found");
    server.post(&items, Some(&f.owner.access_token), &body).await.expect_error(404, "not_found");
    let boards =
        server.get_as(&format!("/api/v1/orgs/{}/boards", f.org), &f.owner.access_token).await;
    assert_eq!(boards.expect_as::<BoardList>(200).boards.len(), 0);
}

/// Another writer moving the board's stored `seq` (a second node, say) makes the actor's next
/// batch fail as a whole: nothing of it is written, the command is answered 503, and the actor
/// reloads and goes on from the stored `seq`.
async fn a_batch_whose_log_moved_writes_nothing_and_the_board_recovers(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let kept = server.create_item(&f.owner, &f.board, &item(&f.group, "kept")).await;
    let item_path = format!("{b}/items/{}", kept.id);
    let seq = snapshot(server, &f.owner, &b).await.seq;
    server.move_board_seq(&f.board, 5).await;
    server
        .send_body(Method::PATCH, &item_path, &f.owner.access_token, &rename("lost"))
        .await
        .expect_error(503, "unavailable");
    let stored = server.get_as(&item_path, &f.owner.access_token).await;
    assert_eq!(stored.expect_as::<Item>(200).name, "kept");
    let events = log(server, &f.owner.access_token, &b, seq).await;
    assert_eq!(events.events, vec![], "the refused batch left no event");
    let renamed = patch_item(server, &f.owner, &item_path, &rename("renamed")).await;
    assert_eq!(renamed.name, "renamed");
    let snapshot = snapshot(server, &f.owner, &b).await;
    assert_eq!(snapshot.seq, seq + 6, "the log goes on from the stored seq");
}

/// Many boards writing at once (on Postgres their batches share statements): one board whose
/// stored `seq` moved fails alone, and every other board's write is committed with its event.
async fn boards_committing_together_keep_their_own_results(server: &TestServer) {
    let f = fixture(server).await;
    let mut boards = Vec::new();
    for n in 0..16 {
        let board = server.create_board(&f.owner, &f.org, &format!("b{n}")).await;
        let (id, group) = (board.board.id.to_string(), board.groups[0].id.to_string());
        let item = server.create_item(&f.owner, &id, &item(&group, "before")).await;
        boards.push((id, item.id));
    }
    server.move_board_seq(&boards[5].0, 3).await;
    let body = rename("after");
    let token = f.owner.access_token.as_str();
    let writes = boards.iter().map(|(board, item)| {
        let path = format!("/api/v1/boards/{board}/items/{item}");
        let body = &body;
        async move { server.send_body(Method::PATCH, &path, token, body).await }
    });
    let replies = futures::future::join_all(writes).await;
    for (n, ((board, item), reply)) in boards.iter().zip(&replies).enumerate() {
        let stored = server
            .get_as(&format!("/api/v1/boards/{board}/items/{item}"), &f.owner.access_token)
            .await;
        let stored = stored.expect_as::<Item>(200);
        let kinds = kinds(&log(server, token, &format!("/api/v1/boards/{board}"), 0).await);
        if n == 5 {
            reply.expect_error(503, "unavailable");
            assert_eq!(stored.name, "before");
            assert!(!kinds.contains(&EventKind::ItemUpdated), "board {n}: {kinds:?}");
        } else {
            assert_eq!(reply.expect_as::<Item>(200).name, "after", "board {n}");
            assert_eq!(stored.name, "after");
            assert_eq!(kinds.last(), Some(&EventKind::ItemUpdated), "board {n}: {kinds:?}");
        }
    }
}

/// An item as a board actor hands it to the store, at `position` `a{version}`.
fn domain_item(
    id: Uuid,
    group: Uuid,
    name: &str,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> boardroom_actors::domain::Item {
    boardroom_actors::domain::Item {
        id,
        group_id: group,
        name: name.into(),
        values: Default::default(),
        position: format!("a{version}"),
        version,
        archived_at: None,
        created_by: None,
        created_at: at,
        updated_at: at,
    }
}

/// Below the board actor's own checks, the store never lets one organization's batch overwrite
/// another's item, whether the batch names it as created or as changed: the item upsert only
/// updates a row of the same organization and board, and a batch that does not write every row
/// is refused as a whole (no event, no `seq` move).
async fn a_batch_naming_another_orgs_item_writes_nothing(server: &TestServer) {
    use boardroom_actors::board::{BoardStore, Change};
    use boardroom_actors::domain::{BoardEvent, EventData as DomainData};

    let f = fixture(server).await;
    let theirs = server.create_item(&f.owner, &f.board, &item(&f.group, "theirs")).await;
    let mallory = server.register("mallory").await;
    let other_org = server.create_org(&mallory, "Other").await;
    let board = server.create_board(&mallory, &other_org, "mine").await;
    let path = format!("/api/v1/boards/{}", board.board.id);
    let seq = snapshot(server, &mallory, &path).await.seq;
    let (org, board_id): (Uuid, Uuid) = (id(&other_org), board.board.id);
    let now = chrono::Utc::now();
    let item = domain_item(theirs.id, board.groups[0].id, "hijacked", 99, now);
    let as_created = DomainData::ItemCreated(item.clone());
    let as_changed =
        DomainData::ItemUpdated { item: item.clone(), changed_values: Default::default() };
    for data in [as_created, as_changed] {
        let event = BoardEvent {
            organization_id: org,
            board_id,
            seq: seq + 1,
            actor: None,
            data,
            created_at: now,
        };
        let store = server.state().store();
        let changes = [Change::Item(item.clone())];
        let refused = store.commit(org, board_id, seq, &changes, &[event], &[]).await;
        assert!(refused.is_err(), "a batch naming another organization's item must fail");
        let stored = server
            .get_as(
                &format!("/api/v1/boards/{}/items/{}", f.board, theirs.id),
                &f.owner.access_token,
            )
            .await;
        assert_eq!(stored.expect_as::<Item>(200).name, "theirs");
        assert_eq!(log(server, &mallory.access_token, &path, seq).await.events, vec![]);
    }
}

/// One batch that creates an item and changes others (the created one among them) writes every
/// row in its final state, with every event, and moves the board's `seq` to the last one.
async fn a_batch_creating_and_changing_items_writes_them_all(server: &TestServer) {
    use boardroom_actors::board::{BoardStore, Change};
    use boardroom_actors::domain::{BoardEvent, EventData as DomainData};

    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let before = server.create_item(&f.owner, &f.board, &item(&f.group, "before")).await;
    let seq = snapshot(server, &f.owner, &b).await.seq;
    let (org, board_id, group) = (id(&f.org), id(&f.board), id(&f.group));
    let now = chrono::Utc::now();
    let new_id = boardroom::storage::new_id();
    let created = domain_item(new_id, group, "new", 1, now);
    let renamed_new = domain_item(new_id, group, "new, renamed", 2, now);
    let renamed_old = domain_item(before.id, group, "after", before.version + 1, now);
    let event = |seq: i64, data: DomainData| BoardEvent {
        organization_id: org,
        board_id,
        seq,
        actor: None,
        data,
        created_at: now,
    };
    let events = [
        event(seq + 1, DomainData::ItemCreated(created.clone())),
        event(
            seq + 2,
            DomainData::ItemUpdated {
                item: renamed_new.clone(),
                changed_values: Default::default(),
            },
        ),
        event(
            seq + 3,
            DomainData::ItemUpdated {
                item: renamed_old.clone(),
                changed_values: Default::default(),
            },
        ),
    ];
    let changes = [Change::Item(created), Change::Item(renamed_new), Change::Item(renamed_old)];
    let store = server.state().store();
    store.commit(org, board_id, seq, &changes, &events, &[]).await.expect("the batch commits");
    // Read back from the database: the board's actor did not see this batch.
    let stored = |item: Uuid| async move {
        let row: (String, i64) = boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query_as("SELECT name, version FROM items WHERE id = $1")
                .bind(item).fetch_one(pool).await.expect("the item row")
        });
        row
    };
    assert_eq!(stored(new_id).await, ("new, renamed".to_owned(), 2));
    assert_eq!(stored(before.id).await, ("after".to_owned(), before.version + 1));
    let (logged, moved_to): (i64, i64) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM board_events WHERE board_id = $1 AND seq > $2), \
             (SELECT seq FROM boards WHERE id = $1)",
        )
        .bind(board_id).bind(seq).fetch_one(pool).await.expect("the board's log")
    });
    assert_eq!((logged, moved_to), (3, seq + 3));
}

async fn a_crashed_board_actor_is_restarted_and_loses_nothing(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let second = server.create_board(&f.owner, &f.org, "Bystander").await;
    let bystander = format!("/api/v1/boards/{}", second.board.id);
    for i in 0..5 {
        server.create_item(&f.owner, &f.board, &item(&f.group, &format!("before {i}"))).await;
    }
    snapshot(server, &f.owner, &bystander).await;
    let board_id: uuid::Uuid = f.board.parse().unwrap();
    assert!(server.state().boards().inject_panic(board_id), "the board's actor should be running");
    // The next command succeeds (on a fresh actor that reloaded from the database).
    let mut created = None;
    for _ in 0..50 {
        let reply = server
            .post(&format!("{b}/items"), Some(&f.owner.access_token), &item(&f.group, "after"))
            .await;
        if reply.status == 201 {
            created = Some(reply.expect_as::<Item>(201));
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(created.is_some(), "no command succeeded after the crash");
    let snap = snapshot(server, &f.owner, &b).await;
    let names: Vec<&str> = snap.items.iter().map(|i| i.item.name.as_str()).collect();
    assert_eq!(names, ["before 0", "before 1", "before 2", "before 3", "before 4", "after"]);
    assert_eq!(snap.seq, 7);
    // The other board never noticed.
    snapshot(server, &f.owner, &bystander).await;
}

async fn an_idle_board_actor_stops_and_comes_back(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let (items, body) = (format!("{b}/items"), item(&f.group, "kept"));
    let create = || post_with_key(server, &f.owner, &items, "before-the-nap", &body);
    let created: Item = create().await.expect_as(201);
    let board_id: uuid::Uuid = f.board.parse().unwrap();
    let mut stopped = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if !server.state().boards().is_running(board_id) {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the idle actor should have stopped");
    // The restarted actor never saw the key: the retry is answered from the store.
    assert_eq!(create().await.expect_as::<Item>(201), created);
    let snap = snapshot(server, &f.owner, &b).await;
    let items: Vec<&Item> = snap.items.iter().map(|i| &i.item).collect();
    assert_eq!(items, vec![&created]);
}

/// The log keeps each event's data as the text the server wrote (`json` on Postgres, TEXT on
/// SQLite): quotes, backslashes, escapes, markup, JSON-looking text, characters outside the
/// Basic Multilingual Plane, text that looks like a JSON escape and a value near its length
/// limit come back from the log exactly.
async fn the_log_gives_back_text_exactly_as_written(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let notes = server.create_column(&f.owner, &f.board, &column("Notes", "long_text")).await.id;
    let name = r#"say "hi" \ back\slash \u0000 é 日本 😀 </script> {"json":[1,{"a":null}]}"#;
    let line = "tab\there \"quoted\" \\ 😀 ünïcode {\"k\": [true]}\n";
    let long: String = line.repeat(19_000 / line.chars().count());
    assert!(long.chars().count() <= 20_000);
    let created = server
        .create_item(
            &f.owner,
            &f.board,
            &item_with(&f.group, name, BTreeMap::from([(notes, json!(long))])),
        )
        .await;
    let edited = format!("{long}edited");
    let edit = UpdateItem {
        values: BTreeMap::from([(notes, json!(edited.clone()))]),
        ..UpdateItem::default()
    };
    patch_item(server, &f.owner, &format!("{b}/items/{}", created.id), &edit).await;

    let page = log(server, &f.owner.access_token, &b, 0).await;
    let mut seen = 0;
    for event in &page.events {
        match &event.event {
            EventData::ItemCreated(item) => {
                assert_eq!(item.name, name);
                assert_eq!(item.values[&notes], json!(long));
                seen += 1;
            }
            EventData::ItemUpdated(updated) => {
                assert_eq!(updated.item.name, name);
                assert_eq!(updated.changed_values[&notes], json!(edited));
                assert_eq!(updated.item.values[&notes], json!(edited));
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 2, "{:?}", kinds(&page));
}
