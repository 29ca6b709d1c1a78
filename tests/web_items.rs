//! The web client's item panel and presence in a real browser, on both backends: two people on
//! one board see each other in the presence list, comment, reply, edit and delete live
//! (`tests/browser/item_comments.py`); a file is attached, downloaded byte for byte, refused
//! with the server's message when too large or of a contradicted type, and deleted, while a
//! viewer sees it but no control to write with (`tests/browser/item_files.py`). Each page's
//! console is checked clean (no SEVERE entries, which include CSP violations).

use boardroom::config::Settings;

use crate::harness::browser::BrowserScript;
use crate::harness::{both_backends_with, item, TestServer, TestUser};
use crate::web::on_a_known_port;

/// The file size limit of [`a_file_is_attached_downloaded_and_deleted`]'s server.
const MAX_FILE_BYTES: u64 = 2048;

both_backends_with!(on_a_known_port; two_people_comment_live);
both_backends_with!(small_files_on_a_known_port; a_file_is_attached_downloaded_and_deleted);

fn small_files_on_a_known_port(settings: &mut Settings) {
    on_a_known_port(settings);
    settings.attachment_max_bytes = MAX_FILE_BYTES;
}

/// A board of `owner`'s new organization with the item "Launch plan"; `others` join the
/// organization and the board with the given board role. Answers the board's page path.
async fn board_with_an_item(
    server: &TestServer,
    owner: &TestUser,
    others: &[(&TestUser, &str)],
) -> String {
    let org = server.create_org(owner, "Acme").await;
    let created = server.create_board(owner, &org, "Launch").await;
    let board = created.board.id.to_string();
    for (user, role) in others {
        server.add_member(owner, &org, user, "member").await;
        server.add_board_member(owner, &board, user, role).await;
    }
    let group = created.groups[0].id.to_string();
    server.create_item(owner, &board, &item(&group, "Launch plan")).await;
    format!("/orgs/{org}/boards/{board}")
}

/// Alice (owner) and Bob (editor) on one board, each in a browser: presence, a live comment,
/// a reply, edits and deletions of one's own, no controls on the other's comment.
async fn two_people_comment_live(server: &TestServer) {
    let alice = server.register("Alice Martin").await;
    let bob = server.register("Bob Okafor").await;
    let path = board_with_an_item(server, &alice, &[(&bob, "editor")]).await;
    let base = server.url("");
    let browser = BrowserScript::start(
        "item_comments",
        &[
            &base,
            &path,
            &alice.email,
            &alice.password,
            "Alice Martin",
            &bob.email,
            &bob.password,
            "Bob Okafor",
        ],
    );
    finish_when_done(browser).await;
}

/// Alice (owner) attaches, downloads and deletes a file; Carol (viewer) watches.
async fn a_file_is_attached_downloaded_and_deleted(server: &TestServer) {
    let alice = server.register("Alice Martin").await;
    let carol = server.register("Carol Diaz").await;
    let path = board_with_an_item(server, &alice, &[(&carol, "viewer")]).await;
    let base = server.url("");
    let limit = MAX_FILE_BYTES.to_string();
    let browser = BrowserScript::start(
        "item_files",
        &[&base, &path, &alice.email, &alice.password, &carol.email, &carol.password, &limit],
    );
    finish_when_done(browser).await;
}

/// Waits for the script's `{"done": true}` and its successful exit.
async fn finish_when_done(mut browser: BrowserScript) {
    let said = browser.next().await;
    assert_eq!(said["done"], true, "{said}");
    browser.finish().await;
}
