//! Retyping a column (`PATCH /boards/{board}/columns/{column}` with `type`, socket
//! `update_column` with `column_type`): the values the new type allows stay, the others are
//! cleared (their items' versions move on), labels stay when both types take them, and a type
//! the column's settings cannot serve is refused with nothing changed.

use boardroom_protocol::boards::{self, Column, Snapshot, UpdateColumn};
use boardroom_protocol::ClientMessage;
use reqwest::Method;
use serde_json::{json, Value};

use crate::boards::fixture;
use crate::harness::socket::{self, ok, JSON};
use crate::harness::{both_backends, column, item, TestServer};

both_backends!(a_column_is_retyped_keeping_the_values_that_fit);

async fn a_column_is_retyped_keeping_the_values_that_fit(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let board = format!("/api/v1/boards/{}", f.board);
    let mut stage = column("Stage", "status");
    stage.settings = Some(json!({"labels": ["Todo", "Done"]}));
    let stage = server.create_column(&f.owner, &f.board, &stage).await;
    let notes = server.create_column(&f.owner, &f.board, &column("Notes", "text")).await;
    let mut body = item(&f.group, "Ship");
    body.values.insert(stage.id, json!("Done"));
    body.values.insert(notes.id, json!("42"));
    let ship = server.create_item(&f.owner, &f.board, &body).await;
    let snapshot = || async {
        let reply = server.get_as(&board, token).await;
        let snapshot: Snapshot = reply.expect_as(200);
        let item = snapshot.items.iter().find(|i| i.item.id == ship.id).unwrap().item.clone();
        (snapshot, item)
    };
    let patch = |column: uuid::Uuid, body: Value| {
        let path = format!("{board}/columns/{column}");
        async move { server.send_as(Method::PATCH, &path, token, Some(&body)).await }
    };

    // Text to long text: the value fits and stays; the item is untouched.
    let retyped: Column = patch(notes.id, json!({"type": "long_text"})).await.expect_as(200);
    assert_eq!(retyped.column_type, boards::ColumnType::LongText);
    let (_, after) = snapshot().await;
    assert_eq!((after.values.get(&notes.id), after.version), (Some(&json!("42")), ship.version));

    // Refused: a status needs labels, and an unknown type is no type. Nothing changes.
    patch(notes.id, json!({"type": "status"})).await.expect_error(422, "validation_failed");
    patch(notes.id, json!({"type": "table"})).await.expect_error(422, "validation_failed");
    let (unchanged, _) = snapshot().await;
    let kinds: Vec<_> = unchanged.columns.iter().map(|c| c.column_type).collect();
    assert_eq!(kinds, [boards::ColumnType::Status, boards::ColumnType::LongText]);

    // Long text to number: "42" is text, not a number, so it is cleared.
    patch(notes.id, json!({"type": "number"})).await.expect(200);
    let (_, after) = snapshot().await;
    assert_eq!(after.values.get(&notes.id), None);
    assert_eq!(after.version, ship.version + 1);

    // Over the socket: status to dropdown keeps the labels; "Done" is no list, so it goes.
    let mut ws = socket::connect(server, token, JSON).await;
    let message = ClientMessage::UpdateColumn {
        board_id: f.board.clone(),
        column_id: stage.id.to_string(),
        body: UpdateColumn { column_type: Some("dropdown".into()), ..UpdateColumn::default() },
    };
    let dropdown: Column = ok(&ws.request(message).await);
    assert_eq!(dropdown.column_type, boards::ColumnType::Dropdown);
    assert_eq!(dropdown.settings, json!({"labels": ["Todo", "Done"]}));
    let (after_socket, after) = snapshot().await;
    assert_eq!(after.values.get(&stage.id), None);
    assert_eq!(after_socket.columns[0].column_type, boards::ColumnType::Dropdown);
    // The change is in the log, as the event every subscriber gets.
    let log = server.get_as(&format!("{board}/events?after=0"), token).await;
    let kinds: Vec<String> = log.expect(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "column.updated").count(), 3, "{kinds:?}");
}
