//! Boards end to end: the domain (columns, groups, items, values, moves, updates), the event
//! log, idempotent creates, item versions, cross-board and cross-org refusals, deletion, idle
//! actors restarting from the database, and a crashed actor losing nothing it acknowledged.

use boardroom_protocol::boards::BoardRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{both_backends, both_backends_with, TestServer, TestUser};

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
    an_access_change_is_audited_exactly_when_it_commits,
    a_person_column_follows_org_membership,
    the_event_log_shows_a_key_what_its_scopes_read,
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

async fn post(server: &TestServer, user: &TestUser, path: &str, body: Value) -> Value {
    let reply = server.post(path, Some(&user.access_token), &body).await;
    assert!(reply.status == 200 || reply.status == 201, "{path}: {} {}", reply.status, reply.body);
    reply.body
}

/// `POST path` as `user` with an `Idempotency-Key`.
async fn post_with_key(
    server: &TestServer,
    user: &TestUser,
    path: &str,
    key: &str,
    body: &Value,
) -> crate::harness::Reply {
    server
        .call(Method::POST, path)
        .bearer(&user.access_token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
}

async fn patch(server: &TestServer, user: &TestUser, path: &str, body: Value) -> Value {
    server.send_as(Method::PATCH, path, &user.access_token, Some(&body)).await.expect(200).clone()
}

async fn a_board_holds_columns_groups_items_and_updates(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let status = post(
        server,
        &f.owner,
        &format!("{b}/columns"),
        json!({"title": "Status", "type": "status", "settings": {"labels": ["Todo", "Done"]}}),
    )
    .await;
    let estimate = post(
        server,
        &f.owner,
        &format!("{b}/columns"),
        json!({"title": "Estimate", "type": "number"}),
    )
    .await;
    let owner_col = post(
        server,
        &f.owner,
        &format!("{b}/columns"),
        json!({"title": "Owner", "type": "person"}),
    )
    .await;
    let due = post(
        server,
        &f.owner,
        &format!("{b}/columns"),
        json!({"title": "Due", "type": "date", "before": status["id"]}),
    )
    .await;
    let later = post(server, &f.owner, &format!("{b}/groups"), json!({"title": "Later"})).await;

    let item = post(server, &f.owner, &format!("{b}/items"), json!({
        "group_id": f.group, "name": "Ship it",
        "values": {status["id"].as_str().unwrap(): "Todo", estimate["id"].as_str().unwrap(): 3, owner_col["id"].as_str().unwrap(): [f.owner.id], due["id"].as_str().unwrap(): "2026-12-24"}
    })).await;
    assert_eq!(item["version"], 1);
    assert_eq!(item["values"][status["id"].as_str().unwrap()], "Todo");
    post(
        server,
        &f.owner,
        &format!("{b}/items"),
        json!({"group_id": f.group, "name": "First", "before": item["id"]}),
    )
    .await;

    // Order: columns by position (Due was placed before Status), items within the group.
    let snap = server.get_as(&b, &f.owner.access_token).await;
    let snap = snap.expect(200).clone();
    let titles: Vec<&str> =
        snap["columns"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Due", "Status", "Estimate", "Owner"]);
    let names: Vec<&str> =
        snap["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["First", "Ship it"]);
    assert_eq!(snap["groups"].as_array().unwrap().len(), 2);

    // Values merge per column; null clears one.
    let id = item["id"].as_str().unwrap();
    let updated = patch(server, &f.owner, &format!("{b}/items/{id}"), json!({"values": {status["id"].as_str().unwrap(): "Done", estimate["id"].as_str().unwrap(): null}})).await;
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["values"][status["id"].as_str().unwrap()], "Done");
    assert!(updated["values"].get(estimate["id"].as_str().unwrap()).is_none());
    assert_eq!(updated["values"][due["id"].as_str().unwrap()], "2026-12-24");

    // Move across groups, archive, restore.
    let moved =
        post(server, &f.owner, &format!("{b}/items/{id}/move"), json!({"group_id": later["id"]}))
            .await;
    assert_eq!(moved["group_id"], later["id"]);
    let archived = post(server, &f.owner, &format!("{b}/items/{id}/archive"), json!({})).await;
    assert_eq!(archived["archived"], true);
    let restored =
        post(server, &f.owner, &format!("{b}/items/{id}/archive"), json!({"archived": false}))
            .await;
    assert_eq!(restored["archived"], false);
    let page = server
        .get_as(
            &format!("{b}/items?group_id={}", later["id"].as_str().unwrap()),
            &f.owner.access_token,
        )
        .await;
    assert_eq!(page.expect(200)["items"].as_array().unwrap().len(), 1);
    let page = server.get_as(&format!("{b}/items?limit=1"), &f.owner.access_token).await;
    let page = page.expect(200).clone();
    assert_eq!(page["items"][0]["name"], "First");
    let next = page["next_cursor"].as_str().unwrap();
    let rest =
        server.get_as(&format!("{b}/items?limit=1&cursor={next}"), &f.owner.access_token).await;
    assert_eq!(rest.expect(200)["items"][0]["name"], "Ship it");

    // Updates with a reply; the author edits, the owner deletes.
    let update =
        post(server, &f.owner, &format!("{b}/items/{id}/updates"), json!({"body": "Looks good"}))
            .await;
    let reply = post(
        server,
        &f.owner,
        &format!("{b}/items/{id}/updates"),
        json!({"body": "Thanks", "parent_id": update["id"]}),
    )
    .await;
    assert_eq!(reply["parent_id"], update["id"]);
    // Replies are one level deep.
    server
        .post(
            &format!("{b}/items/{id}/updates"),
            Some(&f.owner.access_token),
            &json!({"body": "Nested", "parent_id": reply["id"]}),
        )
        .await
        .expect_error(422, "validation_failed");
    let edited = patch(
        server,
        &f.owner,
        &format!("{b}/items/{id}/updates/{}", update["id"].as_str().unwrap()),
        json!({"body": "Looks great"}),
    )
    .await;
    assert!(edited["edited_at"].is_string());
    let list = server.get_as(&format!("{b}/items/{id}/updates"), &f.owner.access_token).await;
    let list = list.expect(200)["updates"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["body"], "Looks great");

    // Deleting a column removes its values from items.
    server
        .send_as(
            Method::DELETE,
            &format!("{b}/columns/{}", due["id"].as_str().unwrap()),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    let item = server.get_as(&format!("{b}/items/{id}"), &f.owner.access_token).await;
    assert!(item.expect(200)["values"].get(due["id"].as_str().unwrap()).is_none());
    assert!(item.header("etag").is_some());

    // The board list shows it with the caller's role.
    let boards =
        server.get_as(&format!("/api/v1/orgs/{}/boards", f.org), &f.owner.access_token).await;
    assert_eq!(boards.expect(200)["boards"][0]["role"], "owner");
}

async fn bad_input_is_refused_and_changes_nothing(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let status = post(
        server,
        &f.owner,
        &format!("{b}/columns"),
        json!({"title": "Status", "type": "status", "settings": {"labels": ["Todo"]}}),
    )
    .await;
    let number =
        post(server, &f.owner, &format!("{b}/columns"), json!({"title": "N", "type": "number"}))
            .await;
    let link =
        post(server, &f.owner, &format!("{b}/columns"), json!({"title": "L", "type": "link"}))
            .await;
    let person =
        post(server, &f.owner, &format!("{b}/columns"), json!({"title": "P", "type": "person"}))
            .await;
    // Every column type can be created, on both backends.
    for kind in ["text", "long_text", "date", "checkbox", "dropdown"] {
        let settings = if kind == "dropdown" { json!({"labels": ["a", "b"]}) } else { json!(null) };
        post(
            server,
            &f.owner,
            &format!("{b}/columns"),
            json!({"title": kind, "type": kind, "settings": settings}),
        )
        .await;
    }
    let seq_before = server.get_as(&b, &f.owner.access_token).await.body["seq"].clone();
    let stranger = server.register("stranger").await;
    let item = |values: Value| json!({"group_id": f.group, "name": "x", "values": values});
    let s = status["id"].as_str().unwrap();
    let n = number["id"].as_str().unwrap();
    let l = link["id"].as_str().unwrap();
    let p = person["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    for (body, status_code, code) in [
        (item(json!({s: "Nope"})), 422, "validation_failed"),
        (item(json!({n: "12"})), 422, "validation_failed"),
        (item(json!({l: "javascript:alert(1)"})), 422, "validation_failed"),
        (item(json!({p: [stranger.id]})), 422, "validation_failed"),
        (item(json!({unknown: 1})), 422, "validation_failed"),
        (item(json!({"not-a-uuid": 1})), 400, "malformed_body"),
        (json!({"group_id": f.group, "name": "x".repeat(501)}), 422, "validation_failed"),
        (json!({"group_id": f.group, "name": "  "}), 422, "validation_failed"),
        (json!({"group_id": f.group, "name": "x", "valeus": {}}), 400, "malformed_body"),
        (json!({"group_id": uuid::Uuid::now_v7(), "name": "x"}), 404, "not_found"),
    ] {
        let reply = server.post(&format!("{b}/items"), Some(&f.owner.access_token), &body).await;
        reply.expect_error(status_code, code);
    }
    server
        .call(Method::POST, &format!("{b}/items"))
        .bearer(&f.owner.access_token)
        .raw("application/json", "{\"group_id\":")
        .send()
        .await
        .expect_error(400, "malformed_body");
    server
        .post(
            &format!("{b}/columns"),
            Some(&f.owner.access_token),
            &json!({"title": "S", "type": "status"}),
        )
        .await
        .expect_error(422, "validation_failed");
    server
        .post(
            &format!("{b}/columns"),
            Some(&f.owner.access_token),
            &json!({"title": "S", "type": "formula"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let after = server.get_as(&b, &f.owner.access_token).await;
    let after = after.expect(200);
    assert_eq!(after["seq"], seq_before, "refused commands must not touch the log");
    assert_eq!(after["items"].as_array().unwrap().len(), 0);
}

async fn the_event_log_is_gap_free_and_replays_to_the_state(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let text =
        post(server, &f.owner, &format!("{b}/columns"), json!({"title": "T", "type": "text"}))
            .await;
    let t = text["id"].as_str().unwrap().to_owned();
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(
            post(
                server,
                &f.owner,
                &format!("{b}/items"),
                json!({"group_id": f.group, "name": format!("item {i}")}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Concurrent writers on one board: every acknowledged write lands, seq stays gap-free.
    let mut writers = Vec::new();
    for w in 0..16 {
        let item = items[w % items.len()].clone();
        let path = format!("{b}/items/{item}");
        let token = f.owner.access_token.clone();
        let url = server.url(&path);
        let t = t.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acked = 0;
            for n in 0..10 {
                let reply = client
                    .patch(&url)
                    .bearer_auth(&token)
                    .json(&json!({"values": {t.as_str(): format!("w{w}-{n}")}}))
                    .send()
                    .await
                    .unwrap();
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
        let item = json!({"group_id": f.group, "name": format!("doomed {i}")});
        doomed.push(post(server, &f.owner, &format!("{b}/items"), item).await["id"].clone());
    }
    let token = f.owner.access_token.as_str();
    let deletions = doomed.iter().map(|id| {
        let path = format!("{b}/items/{}", id.as_str().unwrap());
        async move { server.send_as(Method::DELETE, &path, token, None).await }
    });
    for reply in futures::future::join_all(deletions).await {
        reply.expect(204);
    }

    let snapshot = server.get_as(&b, &f.owner.access_token).await.expect(200).clone();
    let left: Vec<&Value> =
        snapshot["items"].as_array().unwrap().iter().map(|i| &i["id"]).collect();
    assert_eq!(left.len(), items.len(), "{left:?}");
    assert!(doomed.iter().all(|d| !left.contains(&d)));
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get_as(&format!("{b}/events?after={after}&limit=50"), &f.owner.access_token)
            .await;
        let page = page.expect(200).clone();
        let batch = page["events"].as_array().unwrap().clone();
        if batch.is_empty() {
            break;
        }
        after = batch.last().unwrap()["seq"].as_i64().unwrap();
        events.extend(batch);
    }
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gap-free and ordered");
    assert_eq!(snapshot["seq"].as_i64().unwrap(), *seqs.last().unwrap());
    assert_eq!(events[0]["kind"], "board.created");
    assert_eq!(events.iter().filter(|e| e["kind"] == "item.updated").count(), 160);

    // Replaying the log gives the final state of every item.
    let mut replayed: std::collections::HashMap<String, Value> = Default::default();
    for event in &events {
        match event["kind"].as_str().unwrap() {
            "item.created" | "item.updated" | "item.moved" | "item.archived" => {
                let mut data = event["data"].clone();
                data.as_object_mut().unwrap().remove("changed_values");
                data.as_object_mut().unwrap().remove("from_group_id");
                replayed.insert(data["id"].as_str().unwrap().to_owned(), data);
            }
            "item.deleted" => {
                replayed.remove(event["data"]["id"].as_str().unwrap());
            }
            _ => {}
        }
    }
    for item in snapshot["items"].as_array().unwrap() {
        // The snapshot's item also counts its files; the log carries that as attachment.* events.
        let mut item = item.clone();
        assert_eq!(item.as_object_mut().unwrap().remove("attachment_count"), Some(0.into()));
        assert_eq!(&replayed[item["id"].as_str().unwrap()], &item);
    }
    assert_eq!(replayed.len(), snapshot["items"].as_array().unwrap().len());
}

async fn idempotency_key_returns_the_first_result(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let items = format!("{b}/items");
    let once = json!({"group_id": f.group, "name": "Once"});
    let send = || post_with_key(server, &f.owner, &items, "create-42", &once);
    let first = send().await;
    let second = send().await;
    assert_eq!(first.expect(201), second.expect(201));
    let snap = server.get_as(&b, &f.owner.access_token).await;
    assert_eq!(snap.body["items"].as_array().unwrap().len(), 1);
    // Retries racing the first attempt (none of them committed yet) still create once.
    let burst_item = json!({"group_id": f.group, "name": "Burst"});
    let burst = (0..8).map(|_| post_with_key(server, &f.owner, &items, "burst-7", &burst_item));
    let replies = futures::future::join_all(burst).await;
    let ids: std::collections::HashSet<String> =
        replies.iter().map(|r| r.expect(201)["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let snap = server.get_as(&b, &f.owner.access_token).await;
    assert_eq!(snap.body["items"].as_array().unwrap().len(), 2);
    // Board creation is idempotent too.
    let boards_path = format!("/api/v1/orgs/{}/boards", f.org);
    let twice = json!({"name": "Twice?"});
    let org_board = |key: &'static str| post_with_key(server, &f.owner, &boards_path, key, &twice);
    let a = org_board("board-1").await;
    let again = org_board("board-1").await;
    assert_eq!(a.expect(201)["id"], again.expect(201)["id"]);
    let boards =
        server.get_as(&format!("/api/v1/orgs/{}/boards", f.org), &f.owner.access_token).await;
    assert_eq!(boards.body["boards"].as_array().unwrap().len(), 2);
    // Keys are remembered for a window, then pruned: the same key then creates anew.
    let pruned = server
        .state()
        .store()
        .prune_idempotency(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(pruned >= 2, "{pruned}");
    let after = org_board("board-1").await;
    assert_ne!(after.expect(201)["id"], a.body["id"]);
    // A malformed key is refused.
    post_with_key(
        server,
        &f.owner,
        &items,
        "bad key with spaces",
        &json!({"group_id": f.group, "name": "x"}),
    )
    .await
    .expect_error(400, "bad_request");
}

async fn item_versions_guard_concurrent_edits(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let item =
        post(server, &f.owner, &format!("{b}/items"), json!({"group_id": f.group, "name": "v1"}))
            .await;
    let path = format!("{b}/items/{}", item["id"].as_str().unwrap());
    let ok = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "v2"}))
        .send()
        .await;
    assert_eq!(ok.expect(200)["version"], 2);
    assert_eq!(ok.header("etag"), Some("\"2\""));
    let stale = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "lost"}))
        .send()
        .await;
    stale.expect_error(409, "version_conflict");
    server
        .send_as(
            Method::PATCH,
            &path,
            &f.owner.access_token,
            Some(&json!({"name": "lost", "expected_version": 1})),
        )
        .await
        .expect_error(409, "version_conflict");
    // Without a version, the last writer wins; `If-Match: *` asks for any version.
    let lww = patch(server, &f.owner, &path, json!({"name": "v3"})).await;
    assert_eq!((lww["name"].as_str(), lww["version"].as_i64()), (Some("v3"), Some(3)));
    let any = server
        .call(Method::PATCH, &path)
        .bearer(&f.owner.access_token)
        .header("if-match", "*")
        .json(&json!({"name": "v4"}))
        .send()
        .await;
    assert_eq!(any.expect(200)["version"], 4);
    // Archiving reads its (optional) body within the same size limit, answering in JSON.
    server
        .call(Method::POST, &format!("{path}/archive"))
        .bearer(&f.owner.access_token)
        .raw("application/json", vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .expect_error(413, "payload_too_large");
    let after = server.get_as(&path, &f.owner.access_token).await;
    assert_eq!(after.expect(200)["archived"], false);
}

async fn cross_board_and_cross_org_operations_are_refused(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let other = server
        .post(
            &format!("/api/v1/orgs/{}/boards", f.org),
            Some(&f.owner.access_token),
            &json!({"name": "Other"}),
        )
        .await;
    let other = other.expect(201).clone();
    let other_group = other["groups"][0]["id"].as_str().unwrap();
    let item =
        post(server, &f.owner, &format!("{b}/items"), json!({"group_id": f.group, "name": "mine"}))
            .await;
    let id = item["id"].as_str().unwrap();
    // A group of another board is not this board's group.
    server
        .post(
            &format!("{b}/items/{id}/move"),
            Some(&f.owner.access_token),
            &json!({"group_id": other_group}),
        )
        .await
        .expect_error(404, "not_found");
    server
        .post(
            &format!("{b}/items"),
            Some(&f.owner.access_token),
            &json!({"group_id": other_group, "name": "x"}),
        )
        .await
        .expect_error(404, "not_found");
    // This board's item through the other board's path.
    server
        .get_as(
            &format!("/api/v1/boards/{}/items/{id}", other["id"].as_str().unwrap()),
            &f.owner.access_token,
        )
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
        .send_as(
            Method::PATCH,
            &format!("{b}/items/{id}"),
            &mallory.access_token,
            Some(&json!({"name": "pwned"})),
        )
        .await
        .expect_error(404, "not_found");
    // Board access changes are security events: they reach the audit log.
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    server
        .send_as(
            Method::PUT,
            &format!("{b}/members/{}", carol.id),
            &f.owner.access_token,
            Some(&json!({"role": "editor"})),
        )
        .await
        .expect(200);
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
        .send_as(
            Method::PUT,
            &format!("{b}/members/{}", mallory.id),
            &f.owner.access_token,
            Some(&json!({"role": "editor"})),
        )
        .await
        .expect_error(422, "validation_failed");
}

/// People named in a person column must belong to the organization as it is now: someone
/// removed from it is refused at once, and accepted again once re-added.
async fn a_person_column_follows_org_membership(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let column =
        post(server, &f.owner, &format!("{b}/columns"), json!({"title": "P", "type": "person"}))
            .await;
    let column = column["id"].as_str().unwrap();
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    let naming_carol = json!({"group_id": f.group, "name": "x", "values": {column: [carol.id]}});
    post(server, &f.owner, &format!("{b}/items"), naming_carol.clone()).await;
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
    post(server, &f.owner, &format!("{b}/items"), naming_carol).await;
}

/// `GET /boards/{board}/events` applies the same scope rule as sockets: a key without
/// `items:read` sees no item events, but its `last_seq` still moves past them.
async fn the_event_log_shows_a_key_what_its_scopes_read(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    post(server, &f.owner, &format!("{b}/items"), json!({"group_id": f.group, "name": "x"})).await;
    let log_as = |key: String| {
        let path = format!("{b}/events?after=0");
        async move { server.get_as(&path, &key).await.expect(200).clone() }
    };
    let (_, boards_only) = server.create_key(&f.owner, &f.org, &["boards:read"]).await;
    let (_, with_items) = server.create_key(&f.owner, &f.org, &["boards:read", "items:read"]).await;
    let kinds = |log: &Value| -> Vec<String> {
        log["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let (narrow, wide) = (log_as(boards_only).await, log_as(with_items).await);
    assert!(!kinds(&narrow).iter().any(|k| k.starts_with("item.")), "{narrow}");
    assert!(kinds(&wide).contains(&"item.created".to_owned()), "{wide}");
    assert_eq!(narrow["last_seq"], wide["last_seq"]);
}

/// The organization's audit actions, newest first.
async fn audit_actions(server: &TestServer, f: &Fixture) -> Vec<String> {
    let log =
        server.get_as(&format!("/api/v1/orgs/{}/audit-log", f.org), &f.owner.access_token).await;
    log.expect(200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// A board access change and its audit row commit together: a change the store refused leaves
/// no audit row, and the retried change leaves exactly one.
async fn an_access_change_is_audited_exactly_when_it_commits(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    let grant = json!({"role": "editor"});
    let path = format!("{b}/members/{}", carol.id);
    // Wake the board's actor, then move its stored log under it.
    server.get_as(&b, &f.owner.access_token).await.expect(200);
    server.move_board_seq(&f.board, 2).await;
    server
        .send_as(Method::PUT, &path, &f.owner.access_token, Some(&grant))
        .await
        .expect_error(503, "unavailable");
    server.flush_audit().await;
    let actions = audit_actions(server, &f).await;
    assert!(!actions.contains(&"board.member_added".to_owned()), "{actions:?}");
    server.send_as(Method::PUT, &path, &f.owner.access_token, Some(&grant)).await.expect(200);
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
    let (items, item) = (format!("{b}/items"), json!({"group_id": f.group, "name": "x"}));
    let keyed_create = || post_with_key(server, &f.owner, &items, "made-before", &item);
    keyed_create().await.expect(201);
    server.send_as(Method::DELETE, &b, &f.owner.access_token, None).await.expect(204);
    // Not even a retry of something that was created on it answers.
    keyed_create().await.expect_error(404, "not_found");
    server.get_as(&b, &f.owner.access_token).await.expect_error(404, "not_found");
    server
        .post(
            &format!("{b}/items"),
            Some(&f.owner.access_token),
            &json!({"group_id": f.group, "name": "x"}),
        )
        .await
        .expect_error(404, "not_found");
    let boards =
        server.get_as(&format!("/api/v1/orgs/{}/boards", f.org), &f.owner.access_token).await;
    assert_eq!(boards.expect(200)["boards"].as_array().unwrap().len(), 0);
}

/// Another writer moving the board's stored `seq` (a second node, say) makes the actor's next
/// batch fail as a whole: nothing of it is written, the command is answered 503, and the actor
/// reloads and goes on from the stored `seq`.
async fn a_batch_whose_log_moved_writes_nothing_and_the_board_recovers(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let item =
        post(server, &f.owner, &format!("{b}/items"), json!({"group_id": f.group, "name": "kept"}))
            .await;
    let item_path = format!("{b}/items/{}", item["id"].as_str().unwrap());
    let seq = server.get_as(&b, &f.owner.access_token).await.expect(200)["seq"].as_i64().unwrap();
    server.move_board_seq(&f.board, 5).await;
    let body = json!({"name": "lost"});
    server
        .send_as(Method::PATCH, &item_path, &f.owner.access_token, Some(&body))
        .await
        .expect_error(503, "unavailable");
    let stored = server.get_as(&item_path, &f.owner.access_token).await;
    assert_eq!(stored.expect(200)["name"], "kept");
    let events = server.get_as(&format!("{b}/events?after={seq}"), &f.owner.access_token).await;
    assert_eq!(events.expect(200)["events"], json!([]), "the refused batch left no event");
    let renamed = patch(server, &f.owner, &item_path, json!({"name": "renamed"})).await;
    assert_eq!(renamed["name"], "renamed");
    let snapshot = server.get_as(&b, &f.owner.access_token).await;
    assert_eq!(snapshot.expect(200)["seq"], seq + 6, "the log goes on from the stored seq");
}

/// Many boards writing at once (on Postgres their batches share statements): one board whose
/// stored `seq` moved fails alone, and every other board's write is committed with its event.
async fn boards_committing_together_keep_their_own_results(server: &TestServer) {
    let f = fixture(server).await;
    let mut boards = Vec::new();
    for n in 0..16 {
        let board = post(
            server,
            &f.owner,
            &format!("/api/v1/orgs/{}/boards", f.org),
            json!({"name": format!("b{n}")}),
        )
        .await;
        let id = board["id"].as_str().unwrap().to_owned();
        let group = board["groups"][0]["id"].as_str().unwrap().to_owned();
        let item = post(
            server,
            &f.owner,
            &format!("/api/v1/boards/{id}/items"),
            json!({"group_id": group, "name": "before"}),
        )
        .await;
        boards.push((id, item["id"].as_str().unwrap().to_owned()));
    }
    server.move_board_seq(&boards[5].0, 3).await;
    let body = json!({"name": "after"});
    let token = f.owner.access_token.as_str();
    let writes = boards.iter().map(|(board, item)| {
        let path = format!("/api/v1/boards/{board}/items/{item}");
        let body = &body;
        async move { server.send_as(Method::PATCH, &path, token, Some(body)).await }
    });
    let replies = futures::future::join_all(writes).await;
    for (n, ((board, item), reply)) in boards.iter().zip(&replies).enumerate() {
        let stored = server
            .get_as(&format!("/api/v1/boards/{board}/items/{item}"), &f.owner.access_token)
            .await;
        let events = server
            .get_as(&format!("/api/v1/boards/{board}/events?after=0"), &f.owner.access_token)
            .await;
        let kinds: Vec<Value> = events.expect(200)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].clone())
            .collect();
        if n == 5 {
            reply.expect_error(503, "unavailable");
            assert_eq!(stored.expect(200)["name"], "before");
            assert!(!kinds.contains(&json!("item.updated")), "board {n}: {kinds:?}");
        } else {
            assert_eq!(reply.expect(200)["name"], "after", "board {n}");
            assert_eq!(stored.expect(200)["name"], "after");
            assert_eq!(kinds.last(), Some(&json!("item.updated")), "board {n}: {kinds:?}");
        }
    }
}

/// Below the board actor's own checks, the store never lets one organization's batch overwrite
/// another's item: the item upsert only updates a row of the same organization and board, and
/// a batch that does not write every row is refused as a whole (no event, no `seq` move).
async fn a_batch_naming_another_orgs_item_writes_nothing(server: &TestServer) {
    use boardroom_actors::board::{BoardStore, Change};
    use boardroom_actors::domain::{BoardEvent, EventData, Item};

    let f = fixture(server).await;
    let theirs = post(
        server,
        &f.owner,
        &format!("/api/v1/boards/{}/items", f.board),
        json!({"group_id": f.group, "name": "theirs"}),
    )
    .await;
    let mallory = server.register("mallory").await;
    let other_org = server.create_org(&mallory, "Other").await;
    let board = post(
        server,
        &mallory,
        &format!("/api/v1/orgs/{other_org}/boards"),
        json!({"name": "mine"}),
    )
    .await;
    let path = format!("/api/v1/boards/{}", board["id"].as_str().unwrap());
    let seq =
        server.get_as(&path, &mallory.access_token).await.expect(200)["seq"].as_i64().unwrap();
    let (org, board_id): (uuid::Uuid, uuid::Uuid) =
        (other_org.parse().unwrap(), board["id"].as_str().unwrap().parse().unwrap());
    let now = chrono::Utc::now();
    let item = Item {
        id: theirs["id"].as_str().unwrap().parse().unwrap(),
        group_id: board["groups"][0]["id"].as_str().unwrap().parse().unwrap(),
        name: "hijacked".into(),
        values: Default::default(),
        position: "a0".into(),
        version: 99,
        archived_at: None,
        created_by: None,
        created_at: now,
        updated_at: now,
    };
    let event = BoardEvent {
        organization_id: org,
        board_id,
        seq: seq + 1,
        actor: None,
        data: EventData::ItemUpdated { item: item.clone(), changed_values: Default::default() },
        created_at: now,
    };
    let store = server.state().store();
    let refused = store.commit(org, board_id, seq, &[Change::Item(item)], &[event], &[]).await;
    assert!(refused.is_err(), "a batch naming another organization's item must fail");
    let stored = server
        .get_as(
            &format!("/api/v1/boards/{}/items/{}", f.board, theirs["id"].as_str().unwrap()),
            &f.owner.access_token,
        )
        .await;
    assert_eq!(stored.expect(200)["name"], "theirs");
    let events = server.get_as(&format!("{path}/events?after={seq}"), &mallory.access_token).await;
    assert_eq!(events.expect(200)["events"], json!([]));
}

async fn a_crashed_board_actor_is_restarted_and_loses_nothing(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let second = server
        .post(
            &format!("/api/v1/orgs/{}/boards", f.org),
            Some(&f.owner.access_token),
            &json!({"name": "Bystander"}),
        )
        .await;
    let second = second.expect(201).clone();
    let bystander = format!("/api/v1/boards/{}", second["id"].as_str().unwrap());
    for i in 0..5 {
        post(
            server,
            &f.owner,
            &format!("{b}/items"),
            json!({"group_id": f.group, "name": format!("before {i}")}),
        )
        .await;
    }
    server.get_as(&bystander, &f.owner.access_token).await.expect(200);
    let board_id: uuid::Uuid = f.board.parse().unwrap();
    assert!(server.state().boards().inject_panic(board_id), "the board's actor should be running");
    // The next command succeeds (on a fresh actor that reloaded from the database).
    let mut created = None;
    for _ in 0..50 {
        let reply = server
            .post(
                &format!("{b}/items"),
                Some(&f.owner.access_token),
                &json!({"group_id": f.group, "name": "after"}),
            )
            .await;
        if reply.status == 201 {
            created = Some(reply.body);
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(created.is_some(), "no command succeeded after the crash");
    let snap = server.get_as(&b, &f.owner.access_token).await;
    let snap = snap.expect(200).clone();
    let names: Vec<&str> =
        snap["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before 0", "before 1", "before 2", "before 3", "before 4", "after"]);
    assert_eq!(snap["seq"], 7);
    // The other board never noticed.
    server.get_as(&bystander, &f.owner.access_token).await.expect(200);
}

async fn an_idle_board_actor_stops_and_comes_back(server: &TestServer) {
    let f = fixture(server).await;
    let b = format!("/api/v1/boards/{}", f.board);
    let (items, item) = (format!("{b}/items"), json!({"group_id": f.group, "name": "kept"}));
    let create = || post_with_key(server, &f.owner, &items, "before-the-nap", &item);
    let created = create().await.expect(201).clone();
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
    assert_eq!(create().await.expect(201), &created);
    let snap = server.get_as(&b, &f.owner.access_token).await;
    let snap = snap.expect(200);
    assert_eq!(snap["items"].as_array().unwrap().len(), 1);
    assert_eq!(snap["items"][0]["name"], "kept");
}
