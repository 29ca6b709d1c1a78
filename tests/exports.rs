//! Exports: a person's data export (their data and nobody else's, to them alone, expiring);
//! a board as CSV (values rendered for people, formula cells defused) and as its JSON
//! snapshot, for whoever may read the board and nobody else, each export audited.

use boardroom_protocol::audit::AuditLog;
use std::collections::BTreeMap;

use boardroom_protocol::boards::{self, Snapshot};
use boardroom_protocol::exports::{Export, ExportStatus};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{both_backends, both_backends_with, column, id, TestServer, TestUser};

both_backends!(board_export_renders_values_for_people, board_export_is_refused_to_outsiders);

async fn export(
    server: &TestServer,
    board: &str,
    format: &str,
    token: &str,
) -> crate::harness::Reply {
    server.get_as(&format!("/api/v1/boards/{board}/export?format={format}"), token).await
}

async fn audit_targets(
    server: &TestServer,
    admin: &TestUser,
    org: &str,
    action: &str,
) -> Vec<Value> {
    server.flush_audit().await;
    let log: AuditLog = server
        .get_as(&format!("/api/v1/orgs/{org}/audit-log?action={action}"), &admin.access_token)
        .await
        .expect_as(200);
    log.entries
        .into_iter()
        .map(|e| json!({ "target": e.target, "actor": e.actor_id, "metadata": e.metadata }))
        .collect()
}

fn labelled(title: &str, column_type: &str, labels: &[&str]) -> boards::CreateColumn {
    boards::CreateColumn {
        settings: Some(json!({ "labels": labels })),
        ..column(title, column_type)
    }
}

async fn board_export_renders_values_for_people(server: &TestServer) {
    let owner = server.register("owner").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&owner, "Acme").await;
    server.add_member(&owner, &org, &bob, "member").await;
    let created = server.create_board(&owner, &org, "Launch").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    server.add_board_member(&owner, &board, &bob, "viewer").await;

    let cols = [
        server
            .create_column(&owner, &board, &labelled("Status", "status", &["Done", "Stuck"]))
            .await,
        server.create_column(&owner, &board, &column("Owner", "person")).await,
        server.create_column(&owner, &board, &column("Due", "date")).await,
        server.create_column(&owner, &board, &column("Signed", "checkbox")).await,
        server.create_column(&owner, &board, &column("Budget", "number")).await,
        server.create_column(&owner, &board, &labelled("Tags", "dropdown", &["red", "blue"])).await,
        server.create_column(&owner, &board, &column("Spec", "link")).await,
        server.create_column(&owner, &board, &column("Note", "text")).await,
    ];
    let values: [Value; 8] = [
        json!("Done"),
        json!([bob.id]),
        json!("2026-11-30"),
        json!(true),
        json!(-3),
        json!(["red", "blue"]),
        json!({ "url": "https://example.com/spec", "text": "the spec" }),
        json!("@SUM(A1:A9), \"quoted\""),
    ];
    let mut first = crate::harness::item(&group, "=HYPERLINK(\"http://evil.test\")");
    first.values = cols.iter().zip(&values).map(|(c, v)| (c.id, v.clone())).collect();
    server.create_item(&owner, &board, &first).await;
    // An item with no values: every cell is empty, a checkbox never ticked included.
    server.create_item(&owner, &board, &crate::harness::item(&group, "Plain")).await;

    let answer = export(server, &board, "csv", &bob.access_token).await;
    answer.expect(200);
    assert!(answer.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        answer.header("content-disposition"),
        Some(format!("attachment; filename=\"board-{board}.csv\"").as_str())
    );
    let text = answer.body.as_str().expect("the CSV as text").to_owned();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "Item", "Group", "Status", "Owner", "Due", "Signed", "Budget", "Tags", "Spec", "Note",
            "Archived"
        ]
    );
    let rows: Vec<Vec<String>> =
        reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    let group_title = created.groups[0].title.clone();
    assert_eq!(rows.len(), 2, "one row per item: {text}");
    assert_eq!(
        rows[0],
        [
            "'=HYPERLINK(\"http://evil.test\")",
            group_title.as_str(),
            "Done",
            "bob",
            "2026-11-30",
            "yes",
            "-3",
            "red, blue",
            "the spec (https://example.com/spec)",
            "'@SUM(A1:A9), \"quoted\"",
            "no",
        ]
    );
    assert_eq!(rows[1], ["Plain", group_title.as_str(), "", "", "", "", "", "", "", "", "no"]);

    let answer = export(server, &board, "json", &bob.access_token).await;
    let snapshot: Snapshot = answer.expect_as(200);
    assert_eq!(
        answer.header("content-disposition"),
        Some(format!("attachment; filename=\"board-{board}.json\"").as_str())
    );
    assert_eq!(snapshot.board.id, id(&board));
    assert_eq!(snapshot.items.len(), 2);
    assert_eq!(snapshot.items[0].item.values.get(&cols[1].id), Some(&json!([bob.id])));

    let exported = audit_targets(server, &owner, &org, "board.exported").await;
    assert_eq!(exported.len(), 2, "each export audited once: {exported:?}");
    for row in &exported {
        assert_eq!(row["target"], json!(board));
        assert_eq!(row["actor"], json!(bob.id));
        assert_eq!(row["metadata"]["items"], json!(2));
    }
    let formats: Vec<&Value> = exported.iter().map(|r| &r["metadata"]["format"]).collect();
    assert!(formats.contains(&&json!("csv")) && formats.contains(&&json!("json")));
}

async fn board_export_is_refused_to_outsiders(server: &TestServer) {
    let owner = server.register("owner").await;
    let stranger = server.register("stranger").await;
    let colleague = server.register("colleague").await;
    let org = server.create_org(&owner, "Acme").await;
    server.create_org(&stranger, "Elsewhere").await;
    server.add_member(&owner, &org, &colleague, "member").await;
    let board = server.create_board(&owner, &org, "Secret").await.board.id.to_string();

    // Another organization's user, and a member of the organization not on the board: 404.
    export(server, &board, "csv", &stranger.access_token).await.expect_error(404, "not_found");
    export(server, &board, "json", &colleague.access_token).await.expect_error(404, "not_found");
    // A format that is not one is refused before anything is read.
    export(server, &board, "xlsx", &owner.access_token).await.expect_error(400, "bad_request");

    // A key needs both read scopes: without items:read the export would be an empty board.
    let (_, boards_only) = server.create_key(&owner, &org, &["boards:read"]).await;
    export(server, &board, "csv", &boards_only).await.expect_error(403, "insufficient_scope");
    let (_, both) = server.create_key(&owner, &org, &["boards:read", "items:read"]).await;
    export(server, &board, "csv", &both).await.expect(200);

    let exported = audit_targets(server, &owner, &org, "board.exported").await;
    assert_eq!(exported.len(), 1, "only the export that happened is audited: {exported:?}");
}

both_backends!(personal_export_holds_the_owners_data_and_nobody_elses);
both_backends_with!(expire_at_once; an_expired_export_is_gone);

fn expire_at_once(settings: &mut boardroom::config::Settings) {
    settings.export_ttl_secs = 0;
}

/// Polls the export until it is no longer pending (the build runs in the background).
async fn until_built(server: &TestServer, user: &TestUser, export: &str) -> Export {
    for _ in 0..400 {
        let answer: Export = server
            .get_as(&format!("/api/v1/me/exports/{export}"), &user.access_token)
            .await
            .expect_as(200);
        if answer.status != ExportStatus::Pending {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the export was never built");
}

/// The files of a zip, by name, as JSON.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Value> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated, "{}", file.name());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        files.insert(file.name().to_owned(), serde_json::from_str(&text).unwrap());
    }
    files
}

async fn personal_export_holds_the_owners_data_and_nobody_elses(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    let created = server.create_board(&alice, &org, "Plans").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    server.add_board_member(&alice, &board, &bob, "editor").await;
    let mine =
        server.create_item(&alice, &board, &crate::harness::item(&group, "alice's item")).await;
    let theirs =
        server.create_item(&bob, &board, &crate::harness::item(&group, "bob's item")).await;
    for (user, item, body) in
        [(&alice, &theirs, "alice wrote this"), (&bob, &mine, "bob wrote this")]
    {
        server
            .post(
                &format!("/api/v1/boards/{board}/items/{}/updates", item.id),
                Some(&user.access_token),
                &boards::CreateUpdate { body: body.to_owned(), parent_id: None },
            )
            .await
            .expect(201);
    }

    // API keys never reach account data.
    let (_, key) = server.create_key(&alice, &org, &["boards:read", "items:read"]).await;
    server
        .send_as(Method::POST, "/api/v1/me/exports", &key, None)
        .await
        .expect_error(403, "insufficient_scope");

    let export: Export = server
        .send_as(Method::POST, "/api/v1/me/exports", &alice.access_token, None)
        .await
        .expect_as(202);
    let path = format!("/api/v1/me/exports/{}", export.id);
    // Someone else's export is not there at all, built or not.
    server.get_as(&path, &bob.access_token).await.expect_error(404, "not_found");
    let built = until_built(server, &alice, &export.id.to_string()).await;
    assert_eq!(built.status, ExportStatus::Ready);
    assert!(built.expires_at > built.created_at + chrono::Duration::days(6));
    server
        .get_as(&format!("{path}/download"), &bob.access_token)
        .await
        .expect_error(404, "not_found");

    let bytes = download(server, &path, &alice).await;
    let files = unzip(&bytes);
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "attachments.json",
            "audit.json",
            "comments.json",
            "items.json",
            "memberships.json",
            "profile.json",
            "sessions.json"
        ]
    );
    assert_eq!(files["profile.json"]["email"], json!(alice.email));
    assert!(files["profile.json"].get("password_hash").is_none());
    let sessions = files["sessions.json"].as_array().unwrap();
    assert!(sessions.iter().any(|s| s["id"] == json!(alice.session_id)));
    assert!(sessions.iter().all(|s| s.get("refresh_salt").is_none()));
    assert_eq!(
        files["memberships.json"],
        json!([{ "organization_id": org, "name": "Acme", "role": "admin" }])
    );
    let items = files["items.json"].as_array().unwrap();
    assert_eq!(items.iter().map(|i| &i["name"]).collect::<Vec<_>>(), [&json!("alice's item")]);
    let comments = files["comments.json"].as_array().unwrap();
    assert_eq!(
        comments.iter().map(|c| &c["body"]).collect::<Vec<_>>(),
        [&json!("alice wrote this")]
    );
    assert_eq!(files["attachments.json"], json!([]));
    let audit = files["audit.json"].as_array().unwrap();
    assert!(audit.iter().any(|a| a["action"] == "signup" && a["actor_id"] == json!(alice.id)));
    assert!(audit
        .iter()
        .all(|a| a["actor_id"] == json!(alice.id) || a["target"] == json!(alice.id)));
    // Nothing of bob's, but where he is named as what alice acted on (she added him).
    for (name, file) in &files {
        if name != "audit.json" {
            let text = file.to_string();
            assert!(!text.contains(&bob.id) && !text.contains(&bob.email), "{name} names bob");
        }
    }

    // The request was audited, and shows in the next export.
    server.flush_audit().await;
    let again: Export = server
        .send_as(Method::POST, "/api/v1/me/exports", &alice.access_token, None)
        .await
        .expect_as(202);
    until_built(server, &alice, &again.id.to_string()).await;
    let files = unzip(&download(server, &format!("/api/v1/me/exports/{}", again.id), &alice).await);
    // Each request is one row (the second's may already be there too).
    let exported: Vec<&Value> = files["audit.json"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["action"] == "data.exported" && a["metadata"]["export_id"] == json!(export.id)
        })
        .collect();
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0]["target"], json!(alice.id));
    assert_eq!(exported[0]["actor_id"], json!(alice.id));

    // The file is the owner's alone on disk.
    let dir = server.state().settings().data_dir.join("exports");
    let meta = std::fs::metadata(dir.join(format!("{}.zip", export.id))).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
}

async fn download(server: &TestServer, path: &str, user: &TestUser) -> Vec<u8> {
    let answer = reqwest::Client::new()
        .get(server.url(&format!("{path}/download")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["content-type"], "application/zip");
    assert!(answer.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    answer.bytes().await.unwrap().to_vec()
}

async fn an_expired_export_is_gone(server: &TestServer) {
    let alice = server.register("alice").await;
    // With a TTL of 0 an export is expired from the start: it answers 404 like no export.
    let export: Export = server
        .send_as(Method::POST, "/api/v1/me/exports", &alice.access_token, None)
        .await
        .expect_as(202);
    assert_eq!(export.status, ExportStatus::Pending);
    let path = format!("/api/v1/me/exports/{}", export.id);
    server.get_as(&path, &alice.access_token).await.expect_error(404, "not_found");
    server
        .get_as(&format!("{path}/download"), &alice.access_token)
        .await
        .expect_error(404, "not_found");

    // The sweep deletes the row and its file once the build has finished (a pending export
    // is left to its build): sweep until the row is gone.
    let exporter = server.state().exports();
    let store = server.state().store();
    let mut gone = false;
    for _ in 0..400 {
        exporter.sweep().await.unwrap();
        if store.export_row(export.id).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(gone, "the expired export was not swept");
    let dir = server.state().settings().data_dir.join("exports");
    assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 0, "its file stays");
}
