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
    until_built_at(server, user, &format!("/api/v1/me/exports/{export}")).await
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

    // At rest the zip is sealed in the vault: its blob holds none of the zip's plain bytes.
    let blob = std::fs::read(blob_path(server, export.id).await).unwrap();
    assert_ciphertext(&blob, &[b"profile.json", alice.email.as_bytes()]);
    assert!(!server.state().settings().data_dir.join("exports").exists(), "no plain files");
}

/// The blob file of the export `id` (built).
async fn blob_path(server: &TestServer, id: uuid::Uuid) -> std::path::PathBuf {
    let row = server.state().store().export_row(id).await.unwrap().expect("the export's row");
    let blob_key = row.blob_key.expect("a built export names its blob");
    server.state().settings().data_dir.join("attachments").join(blob_key)
}

/// `blob` is a sealed blob, with none of `plain` in it, nor a zip's signature.
fn assert_ciphertext(blob: &[u8], plain: &[&[u8]]) {
    assert!(blob.starts_with(b"BRAB"), "the vault's sealed format");
    for marker in plain.iter().chain([&b"PK\x03\x04"[..]].iter()) {
        assert!(
            !blob.windows(marker.len()).any(|w| w == *marker),
            "{:?} is on disk in clear",
            String::from_utf8_lossy(marker)
        );
    }
}

pub(crate) async fn download(server: &TestServer, path: &str, user: &TestUser) -> Vec<u8> {
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

    // The sweep deletes the blob and the row once the build has finished (a pending export
    // is left to its build).
    let exporter = server.state().exports();
    let store = server.state().store();
    let built = until_finished(server, export.id).await;
    assert_eq!(built.status, "ready");
    let blob = blob_path(server, export.id).await;
    assert!(blob.exists());
    exporter.sweep().await.unwrap();
    assert!(store.export_row(export.id).await.unwrap().is_none(), "the row stays");
    assert!(!blob.exists(), "the blob stays");
}

/// The export row `id` once its build finished (it expired at once, so it is not polled
/// through the API).
async fn until_finished(server: &TestServer, id: uuid::Uuid) -> boardroom::storage::ExportRow {
    for _ in 0..400 {
        let row = server.state().store().export_row(id).await.unwrap().expect("the row");
        if row.status != "pending" {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the export was never built");
}

// ----- organization exports, and exports in the vault ---------------------------------------

both_backends_with!(allow_a_webhook; org_export_holds_the_whole_organization);
both_backends!(
    org_export_is_refused_to_all_but_the_admin_who_asked,
    rotation_rewraps_exports_which_still_download,
    the_sweep_keeps_live_export_blobs_and_removes_expired_ones,
);

/// Webhooks to a port nobody listens on may be created (no event here fires them).
fn allow_a_webhook(settings: &mut boardroom::config::Settings) {
    settings.webhook_allow = boardroom::ssrf::Allowlist::parse("127.0.0.1:9").unwrap();
}

fn org_exports(org: &str) -> String {
    format!("/api/v1/orgs/{org}/exports")
}

/// Asks for `org`'s export as `admin`; answers its path.
async fn request_org_export(server: &TestServer, admin: &TestUser, org: &str) -> (Export, String) {
    let export: Export = server
        .send_as(Method::POST, &org_exports(org), &admin.access_token, None)
        .await
        .expect_as(202);
    assert_eq!(export.status, ExportStatus::Pending);
    let path = format!("{}/{}", org_exports(org), export.id);
    (export, path)
}

/// Polls an export at `path` until it is no longer pending.
pub(crate) async fn until_built_at(server: &TestServer, user: &TestUser, path: &str) -> Export {
    for _ in 0..400 {
        let answer: Export = server.get_as(path, &user.access_token).await.expect_as(200);
        if answer.status != ExportStatus::Pending {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the export was never built");
}

async fn org_export_holds_the_whole_organization(server: &TestServer) {
    let admin = server.register("admin").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&admin, "Acme").await;
    server.add_member(&admin, &org, &bob, "member").await;
    let created = server.create_board(&admin, &org, "Launch").await;
    let board = created.board.id.to_string();
    let group = created.groups[0].id.to_string();
    let status =
        server.create_column(&admin, &board, &labelled("Status", "status", &["Done"])).await;
    let mut first = crate::harness::item(&group, "Ship it");
    first.values = [(status.id, json!("Done"))].into_iter().collect();
    let item = server.create_item(&admin, &board, &first).await;
    let archived = server.create_item(&admin, &board, &crate::harness::item(&group, "Old")).await;
    server
        .post(
            &format!("/api/v1/boards/{board}/items/{}/archive", archived.id),
            Some(&admin.access_token),
            &boards::ArchiveItem::default(),
        )
        .await
        .expect(200);
    let comments = format!("/api/v1/boards/{board}/items/{}/updates", item.id);
    let comment: boards::Update = server
        .post(
            &comments,
            Some(&admin.access_token),
            &boards::CreateUpdate { body: "a comment".into(), parent_id: None },
        )
        .await
        .expect_as(201);
    server
        .post(
            &comments,
            Some(&admin.access_token),
            &boards::CreateUpdate { body: "a reply".into(), parent_id: Some(comment.id) },
        )
        .await
        .expect(201);
    let file_text = b"the attachment's own content, never exported";
    crate::attachments::upload_file(
        server,
        &admin.access_token,
        &board,
        &item.id.to_string(),
        "notes.txt",
        file_text,
    )
    .await
    .expect(201);
    let hook: boardroom_protocol::webhooks::CreatedWebhook = server
        .post(
            &format!("/api/v1/boards/{board}/webhooks"),
            Some(&admin.access_token),
            &boardroom_protocol::webhooks::CreateWebhook {
                url: "http://127.0.0.1:9/hook".into(),
                events: vec!["item.deleted".into()],
            },
        )
        .await
        .expect_as(201);
    // Another organization's board is not in this one's export.
    let other = server.create_org(&bob, "Elsewhere").await;
    server.create_board(&bob, &other, "Not Acme's").await;

    let (export, path) = request_org_export(server, &admin, &org).await;
    let built = until_built_at(server, &admin, &path).await;
    assert_eq!(built.status, ExportStatus::Ready);
    let bytes = download(server, &path, &admin).await;
    let files = unzip(&bytes);
    let dir = format!("boards/{board}");
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "audit/0001.json".to_owned(),
            format!("{dir}/attachments.json"),
            format!("{dir}/board.json"),
            format!("{dir}/comments.json"),
            format!("{dir}/webhooks.json"),
            "members.json".to_owned(),
            "organization.json".to_owned(),
        ]
    );
    let organization: boardroom_protocol::orgs::Organization =
        serde_json::from_value(files["organization.json"].clone()).unwrap();
    assert_eq!((organization.id, organization.name.as_str()), (id(&org), "Acme"));
    let members: boardroom_protocol::orgs::OrgMemberList =
        serde_json::from_value(files["members.json"].clone()).unwrap();
    let roles: BTreeMap<String, String> = members
        .members
        .iter()
        .map(|m| (m.user_id.to_string(), serde_json::to_value(m.role).unwrap().to_string()))
        .collect();
    assert_eq!(roles.len(), 2);
    assert_eq!(roles[&admin.id], "\"admin\"");
    assert_eq!(roles[&bob.id], "\"member\"");

    let snapshot: Snapshot =
        serde_json::from_value(files[&format!("{dir}/board.json")].clone()).unwrap();
    assert_eq!(snapshot.board.id, id(&board));
    assert_eq!(snapshot.columns.iter().map(|c| &c.title).collect::<Vec<_>>(), ["Status"]);
    assert_eq!(snapshot.groups.len(), 1);
    let items: Vec<&str> = snapshot.items.iter().map(|i| i.item.name.as_str()).collect();
    assert_eq!(items.len(), 2, "archived items too: {items:?}");
    assert!(items.contains(&"Ship it") && items.contains(&"Old"));
    let shipped = snapshot.items.iter().find(|i| i.item.id == item.id).unwrap();
    assert_eq!(shipped.item.values.get(&status.id), Some(&json!("Done")));

    let comments: boards::UpdateList =
        serde_json::from_value(files[&format!("{dir}/comments.json")].clone()).unwrap();
    let bodies: Vec<(&str, Option<uuid::Uuid>)> =
        comments.updates.iter().map(|u| (u.body.as_str(), u.parent_id)).collect();
    assert_eq!(bodies, [("a comment", None), ("a reply", Some(comment.id))]);
    let attachments: boardroom_protocol::attachments::AttachmentList =
        serde_json::from_value(files[&format!("{dir}/attachments.json")].clone()).unwrap();
    assert_eq!(attachments.attachments.len(), 1);
    assert_eq!(attachments.attachments[0].name, "notes.txt");
    assert_eq!(attachments.attachments[0].size, file_text.len() as u64);
    let webhooks: boardroom_protocol::webhooks::WebhookList =
        serde_json::from_value(files[&format!("{dir}/webhooks.json")].clone()).unwrap();
    assert_eq!(webhooks.webhooks.len(), 1);
    assert_eq!(webhooks.webhooks[0].id, hook.webhook.id);
    let audit: AuditLog = serde_json::from_value(files["audit/0001.json"].clone()).unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"member.added"), "{actions:?}");
    assert!(actions.iter().all(|a| *a != "signup"), "rows outside the organization: {actions:?}");
    assert!(audit.entries.iter().all(|e| e.target.as_deref() != Some(other.as_str())));

    // Nothing secret, nothing of the other organization, no file content.
    let text: String = files.values().map(Value::to_string).collect();
    for absent in [hook.secret.as_str(), "Not Acme's", "Elsewhere", bob.password.as_str()] {
        assert!(!text.contains(absent), "the export holds {absent:?}");
    }
    assert!(!text.contains("never exported"));

    // Sealed at rest.
    let blob = std::fs::read(blob_path(server, export.id).await).unwrap();
    assert_ciphertext(&blob, &[b"organization.json", b"members.json"]);

    let exported = audit_targets(server, &admin, &org, "org.exported").await;
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0]["target"], json!(org));
    assert_eq!(exported[0]["actor"], json!(admin.id));
    assert_eq!(exported[0]["metadata"]["export_id"], json!(export.id));
    assert_eq!(exported[0]["metadata"]["scope"], json!("organization"));
}

async fn org_export_is_refused_to_all_but_the_admin_who_asked(server: &TestServer) {
    let admin = server.register("admin").await;
    let other_admin = server.register("other-admin").await;
    let member = server.register("member").await;
    let stranger = server.register("stranger").await;
    let org = server.create_org(&admin, "Acme").await;
    server.add_member(&admin, &org, &other_admin, "admin").await;
    server.add_member(&admin, &org, &member, "member").await;
    server.create_org(&stranger, "Elsewhere").await;

    // A member may not ask; another organization's admin does not see the organization; an
    // API key, even an admin's, never exports.
    server
        .send_as(Method::POST, &org_exports(&org), &member.access_token, None)
        .await
        .expect_error(403, "forbidden");
    server
        .send_as(Method::POST, &org_exports(&org), &stranger.access_token, None)
        .await
        .expect_error(404, "not_found");
    let (_, key) = server.create_key(&admin, &org, &["boards:read", "items:read"]).await;
    server
        .send_as(Method::POST, &org_exports(&org), &key, None)
        .await
        .expect_error(403, "insufficient_scope");

    let (export, path) = request_org_export(server, &admin, &org).await;
    until_built_at(server, &admin, &path).await;
    let download_path = format!("{path}/download");
    // Another admin of the same organization: not theirs, so 404, built or not.
    server.get_as(&path, &other_admin.access_token).await.expect_error(404, "not_found");
    server.get_as(&download_path, &other_admin.access_token).await.expect_error(404, "not_found");
    // A member: the organization's exports are an admin's business.
    server.get_as(&download_path, &member.access_token).await.expect_error(403, "forbidden");
    // Another organization: 404, also through their own organization's path.
    server.get_as(&download_path, &stranger.access_token).await.expect_error(404, "not_found");
    let theirs = server.create_org(&stranger, "Theirs").await;
    let wrong_org = format!("{}/{}/download", org_exports(&theirs), export.id);
    server.get_as(&wrong_org, &stranger.access_token).await.expect_error(404, "not_found");
    // Nor is an organization export one of the admin's personal exports.
    server
        .get_as(&format!("/api/v1/me/exports/{}/download", export.id), &admin.access_token)
        .await
        .expect_error(404, "not_found");
    download(server, &path, &admin).await;

    // Demoted, the admin who asked can no longer read it.
    server.set_org_role(&other_admin, &org, &admin, "member").await.expect(200);
    server.get_as(&download_path, &admin.access_token).await.expect_error(403, "forbidden");

    let exported = audit_targets(server, &other_admin, &org, "org.exported").await;
    assert_eq!(exported.len(), 1, "only the export that happened is audited: {exported:?}");
}

async fn rotation_rewraps_exports_which_still_download(server: &TestServer) {
    let alice = server.register("alice").await;
    let export: Export = server
        .send_as(Method::POST, "/api/v1/me/exports", &alice.access_token, None)
        .await
        .expect_as(202);
    let path = format!("/api/v1/me/exports/{}", export.id);
    until_built(server, &alice, &export.id.to_string()).await;
    let before = download(server, &path, &alice).await;
    let store = server.state().store();
    let row = store.export_row(export.id).await.unwrap().unwrap();
    let old = row.key_id.clone().unwrap();
    let settings = server.state().settings();
    let blob_before = std::fs::read(blob_path(server, export.id).await).unwrap();

    // The export's key counts: its master key cannot be retired.
    let refused = boardroom::attachments::rotation::retire(settings, store, &old).await;
    let refused = refused.unwrap_err();
    assert!(refused.contains("1 export(s) still use"), "{refused}");

    let rotated = boardroom::attachments::rotation::rotate(settings, store).await.unwrap();
    assert_eq!((rotated.rewrapped, rotated.unreadable), (1, 0), "{rotated:?}");
    let after = store.export_row(export.id).await.unwrap().unwrap();
    assert_eq!(after.key_id.as_deref(), Some(rotated.active.as_str()));
    assert_ne!(after.key_id, row.key_id);
    assert_ne!(after.wrapped_key, row.wrapped_key);
    // The blob was not rewritten, and the running server opens it under the new key.
    assert_eq!(std::fs::read(blob_path(server, export.id).await).unwrap(), blob_before);
    assert_eq!(download(server, &path, &alice).await, before);

    // Now nothing uses the old key, and it can go.
    boardroom::attachments::rotation::retire(settings, store, &old).await.unwrap();
    assert_eq!(download(server, &path, &alice).await, before);
}

async fn the_sweep_keeps_live_export_blobs_and_removes_expired_ones(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut built = Vec::new();
    for user in [&alice, &bob] {
        let export: Export = server
            .send_as(Method::POST, "/api/v1/me/exports", &user.access_token, None)
            .await
            .expect_as(202);
        until_built(server, user, &export.id.to_string()).await;
        built.push(export.id);
    }
    let [alices, bobs] = [built[0], built[1]];
    let (live, expired) = (blob_path(server, alices).await, blob_path(server, bobs).await);
    // Both blobs are older than the grace period.
    for path in [&live, &expired] {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
        file.set_modified(past).unwrap();
    }
    let store = server.state().store();
    let sweeper = server.state().sweeper();
    sweeper.run_once().await.unwrap();
    assert!(live.exists() && expired.exists(), "a live export's blob is kept");

    // Bob's export expires: the orphan sweep no longer counts its blob as live.
    boardroom::on_pool!(store, pool => {
        sqlx::query("UPDATE exports SET expires_at = created_at WHERE id = $1")
            .bind(bobs)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .unwrap();
    let report = sweeper.run_once().await.unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    assert!(live.exists() && !expired.exists());
    // The exporter's sweep takes the row (its blob already gone is fine).
    server.state().exports().sweep().await.unwrap();
    assert!(store.export_row(bobs).await.unwrap().is_none());
    assert!(store.export_row(alices).await.unwrap().is_some());

    // Erasing alice's exports (what account deletion calls) takes the blob and the row.
    assert_eq!(server.state().exports().delete_all_of(id(&alice.id)).await.unwrap(), 1);
    assert!(store.export_row(alices).await.unwrap().is_none());
    assert!(!live.exists());

    // An export from before the vault (a plain zip under <data dir>/exports, which the upgrade
    // marked failed and expired) goes with its file.
    let legacy = uuid::Uuid::now_v7();
    let dir = server.state().settings().data_dir.join("exports");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{legacy}.zip"));
    std::fs::write(&file, b"PK plain").unwrap();
    let past = boardroom::storage::now() - chrono::Duration::days(1);
    boardroom::on_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO exports (id, user_id, status, file_name, size, created_at, expires_at) \
             VALUES ($1, $2, 'failed', $3, 8, $4, $4)",
        )
        .bind(legacy)
        .bind(id(&bob.id))
        .bind(format!("{legacy}.zip"))
        .bind(past)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .unwrap();
    server.state().exports().sweep().await.unwrap();
    assert!(store.export_row(legacy).await.unwrap().is_none());
    assert!(!file.exists(), "the plain file stays");
}
