//! Editing a board in the web client (web/src/board.ts, cells.ts, board_settings.ts), in real
//! browsers (tests/browser/board_*.py): two people edit one board and see each other's changes
//! within a second; a viewer has no edit controls and sees a forced write refused, and loses
//! the board when removed; the page works at phone width; and a page that loses its server
//! catches up when it returns, keeping what was typed meanwhile (a conflict shown, not lost).

use boardroom::config::Settings;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::browser::BrowserScript;
use crate::harness::{
    both_backends_with, column, group, item, Backend, TestDatabase, TestServer, TestUser,
};
use crate::web::on_a_known_port;

both_backends_with!(on_a_known_port;
    two_people_edit_one_board_live,
    a_viewer_cannot_edit_and_sees_refusals
);

/// A board of Alice's in a fresh organization, with the default group renamed "Todo".
struct Fixture {
    alice: TestUser,
    org: String,
    board: String,
    todo: String,
    path: String,
}

async fn fixture(server: &TestServer, name: &str) -> Fixture {
    let alice = server.register("Alice").await;
    let org = server.create_org(&alice, "Acme").await;
    let created = server.create_board(&alice, &org, name).await;
    let board = created.board.id.to_string();
    let todo = created.groups[0].id.to_string();
    server
        .send_as(
            Method::PATCH,
            &format!("/api/v1/boards/{board}/groups/{todo}"),
            &alice.access_token,
            Some(&json!({"title": "Todo"})),
        )
        .await
        .expect(200);
    let path = format!("/orgs/{org}/boards/{board}");
    Fixture { alice, org, board, todo, path }
}

/// A status column "Stage" (Working, Done) and a text column "Notes"; returns their ids.
async fn stage_and_notes(server: &TestServer, f: &Fixture) -> (String, String) {
    let mut stage = column("Stage", "status");
    stage.settings = Some(json!({ "labels": ["Working", "Done"] }));
    let stage = server.create_column(&f.alice, &f.board, &stage).await;
    let notes = server.create_column(&f.alice, &f.board, &column("Notes", "text")).await;
    (stage.id.to_string(), notes.id.to_string())
}

/// A member of `f`'s organization with `role` on its board.
async fn on_the_board(server: &TestServer, f: &Fixture, name: &str, role: &str) -> TestUser {
    let user = server.register(name).await;
    server.add_member(&f.alice, &f.org, &user, "member").await;
    server.add_board_member(&f.alice, &f.board, &user, role).await;
    user
}

async fn two_people_edit_one_board_live(server: &TestServer) {
    let f = fixture(server, "Launch").await;
    stage_and_notes(server, &f).await;
    server.create_group(&f.alice, &f.board, &group("Doing")).await;
    let bob = on_the_board(server, &f, "Bob", "editor").await;
    let dave = server.register("Dave").await;
    server.add_member(&f.alice, &f.org, &dave, "member").await;

    let base = server.url("");
    let mut browser = BrowserScript::start(
        "board_live",
        &[&base, &f.path, &f.alice.email, &f.alice.password, &bob.email, &bob.password],
    );
    assert_eq!(browser.next().await["done"], true);
    browser.finish().await;

    // What the pages did is what the server holds.
    let snapshot = server.get_as(&format!("/api/v1/boards/{}", f.board), &bob.access_token).await;
    let snapshot = snapshot.expect(200);
    let titles: Vec<&str> = snapshot["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert_eq!(titles, ["Stage", "Due", "Notes"]);
    let notes = snapshot["columns"].as_array().unwrap().iter().find(|c| c["title"] == "Notes");
    assert_eq!(notes.unwrap()["type"], "long_text");
    let items = snapshot["items"].as_array().unwrap();
    let launch = items.iter().find(|i| i["name"] == "Launch plan").expect("the item");
    assert_eq!(launch["group_id"].as_str(), Some(f.todo.as_str()));
    let values: Vec<&Value> = launch["values"].as_object().unwrap().values().collect();
    for value in ["Working", "2026-12-24", "Ship on Thursday"] {
        assert!(values.contains(&&json!(value)), "{value} in {values:?}");
    }
    let members =
        server.get_as(&format!("/api/v1/boards/{}/members", f.board), &f.alice.access_token).await;
    let members = members.expect(200)["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 2, "Dave was added and removed again: {members:?}");
}

async fn a_viewer_cannot_edit_and_sees_refusals(server: &TestServer) {
    let f = fixture(server, "Plan").await;
    let (_, notes) = stage_and_notes(server, &f).await;
    server.create_item(&f.alice, &f.board, &item(&f.todo, "Brief")).await;
    let carol = on_the_board(server, &f, "Carol", "viewer").await;

    let base = server.url("");
    let mut browser = BrowserScript::start(
        "board_viewer",
        &[&base, &f.path, "Plan", &carol.email, &carol.password, &f.alice.email, &f.alice.password],
    );
    assert_eq!(browser.next().await["need"], "notes_column");
    browser.send(&json!({ "notes_column": notes })).await;
    assert_eq!(browser.next().await["remove"], "carol");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/boards/{}/members/{}", f.board, carol.id),
            &f.alice.access_token,
            None,
        )
        .await
        .expect(204);
    browser.send(&json!({ "removed": true })).await;
    assert_eq!(browser.next().await["done"], true);
    browser.finish().await;
}

mod offline_and_back {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::offline_and_back(crate::harness::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::offline_and_back(crate::harness::Backend::Postgres).await;
    }
}

/// Two distinct free ports on 127.0.0.1 (both probes are held until both are known).
fn two_free_ports() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let one = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let two = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (one.local_addr().unwrap(), two.local_addr().unwrap())
}

/// The server goes away under two pages and comes back on the same port and database; while it
/// is away, Bob writes through a second server on the same database (on a port Alice's page
/// does not know), so Alice's page must catch up from the log when it reconnects.
async fn offline_and_back(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else { return };
    let (main, other) = two_free_ports();
    let origins = vec![format!("http://{main}"), format!("http://{other}")];
    let tune = |settings: &mut Settings| {
        settings.listen = main;
        settings.ws_origins = origins.clone();
    };
    let mut server = TestServer::start_with(database, tune).await;
    let settings = server.state().settings().clone();
    let f = fixture(&server, "Field").await;
    stage_and_notes(&server, &f).await;
    for name in ["Alpha", "Beta"] {
        server.create_item(&f.alice, &f.board, &item(&f.todo, name)).await;
    }
    let bob = on_the_board(&server, &f, "Bob", "editor").await;

    let base = server.url("");
    let mut browser = BrowserScript::start(
        "board_offline",
        &[&base, &f.path, &f.alice.email, &f.alice.password, &bob.email, &bob.password],
    );
    assert_eq!(browser.next().await["stop"], true);
    assert!(server.stop_keeping_database().await, "the server did not stop cleanly");
    browser.send(&json!({ "stopped": true })).await;

    assert_eq!(browser.next().await["other_server"], true);
    let mut elsewhere = settings.clone();
    elsewhere.listen = other;
    let second = boardroom::server::App::build(elsewhere).await.unwrap().spawn().await.unwrap();
    browser.send(&json!({ "base": format!("http://{other}") })).await;
    assert_eq!(browser.next().await["bob_done"], true);
    assert!(second.shutdown().await, "the second server did not stop cleanly");

    let back = boardroom::server::App::build(settings).await.unwrap().spawn().await.unwrap();
    assert_eq!(back.addr(), main);
    browser.send(&json!({ "back": true })).await;
    assert_eq!(browser.next().await["done"], true);
    browser.finish().await;
    assert!(back.shutdown().await, "the restarted server did not stop cleanly");
    drop(server);
}
