//! Exports: a board as CSV (values rendered for people, formula cells defused) and as its JSON
//! snapshot, for whoever may read the board and nobody else, each export audited.

use boardroom_protocol::audit::AuditLog;
use boardroom_protocol::boards::{self, Snapshot};
use serde_json::{json, Value};

use crate::harness::{both_backends, column, id, TestServer, TestUser};

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
    assert_eq!(snapshot.items[0].values.get(&cols[1].id), Some(&json!([bob.id])));

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
