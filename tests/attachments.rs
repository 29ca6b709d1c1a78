//! Attachments over REST, on both backends: a file goes in as `multipart/form-data`, is listed,
//! comes back byte for byte with safe download headers, and is deleted with its blob; the role
//! and scope matrix; the limits (file size, files per item) refuse with nothing stored; a
//! declared type the bytes contradict is refused; `attachment.*` events reach sockets and the
//! log; the snapshot counts files; deleting an item or a board deletes its blobs; a damaged
//! blob is never served; and memory stays flat for a 25 MiB upload and download (the peak of
//! this process's resident memory, sampled: the server runs in it, and nextest runs each test
//! in its own process).

use std::path::{Path, PathBuf};
use std::time::Duration;

use boardroom_protocol::attachments::{Attachment, AttachmentList};
use boardroom_protocol::boards::Snapshot;
use boardroom_protocol::events::{EventData, EventLog};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::boards::{fixture, Fixture};
use crate::harness::memory::{rss_bytes, PeakRss};
use crate::harness::socket::{connect, msg, subscribed, JSON};
use crate::harness::{self, both_backends, both_backends_with, Reply, TestServer};

both_backends!(
    a_file_round_trips_and_is_deleted_with_its_blob,
    downloads_are_attachments_and_never_active,
    a_contradicted_type_is_refused,
    roles_and_scopes_decide_who_does_what,
    events_tell_sockets_and_the_log,
    files_attach_to_a_comment_of_the_item_only,
    a_damaged_blob_is_never_served,
    memory_stays_flat_for_a_large_file,
    hostile_file_names_are_refused_and_never_become_paths,
);

both_backends_with!(small_limits; the_limits_refuse_and_store_nothing);
both_backends_with!(no_grace; deleting_an_item_or_a_board_deletes_its_blobs);

// ----- helpers ---------------------------------------------------------------------------

const BOUNDARY: &str = "boardroom-test-boundary-7MA4YWxkTrZu0gW";

fn small_limits(settings: &mut boardroom::config::Settings) {
    settings.attachment_max_bytes = 1024;
    settings.item_max_attachments = 2;
    settings.plan_free =
        "storage=2KiB,boards=unlimited,members=unlimited,api_keys=unlimited,webhooks=unlimited"
            .parse()
            .unwrap();
}

fn no_grace(settings: &mut boardroom::config::Settings) {
    settings.attachment_sweep_grace = Duration::ZERO;
}

/// A multipart body: `update_id` (if any), then `file` named `name` of type `content_type`.
fn multipart(name: &str, content_type: &str, bytes: &[u8], update_id: Option<&str>) -> Vec<u8> {
    let (head, tail) = multipart_parts(name, content_type, update_id);
    [head.as_slice(), bytes, tail.as_slice()].concat()
}

/// What goes before and after the file's bytes in [`multipart`].
fn multipart_parts(name: &str, content_type: &str, update_id: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut head = String::new();
    if let Some(update) = update_id {
        head.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"update_id\"\r\n\r\n{update}\r\n"
        ));
    }
    // As browsers send it: a quote in the name escaped.
    let name = name.replace('"', "\\\"");
    head.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    ));
    (head.into_bytes(), format!("\r\n--{BOUNDARY}--\r\n").into_bytes())
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

async fn upload(server: &TestServer, token: &str, board: &str, item: &str, body: Vec<u8>) -> Reply {
    server
        .call(Method::POST, &format!("/api/v1/boards/{board}/items/{item}/attachments"))
        .bearer(token)
        .raw(&content_type(), body)
        .send()
        .await
}

pub(crate) async fn upload_file(
    server: &TestServer,
    token: &str,
    board: &str,
    item: &str,
    name: &str,
    bytes: &[u8],
) -> Reply {
    upload(server, token, board, item, multipart(name, "text/plain", bytes, None)).await
}

async fn item(server: &TestServer, f: &Fixture, name: &str) -> String {
    server.create_item(&f.owner, &f.board, &harness::item(&f.group, name)).await.id.to_string()
}

async fn list(server: &TestServer, token: &str, board: &str, item: &str) -> Reply {
    server.get_as(&format!("/api/v1/boards/{board}/items/{item}/attachments"), token).await
}

/// `GET` a download: status, headers and the raw bytes.
async fn download(
    server: &TestServer,
    token: &str,
    board: &str,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, Result<Vec<u8>, reqwest::Error>) {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/boards/{board}/attachments/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map(|b| b.to_vec());
    (status, headers, body)
}

async fn delete(server: &TestServer, token: &str, board: &str, id: &str) -> Reply {
    server
        .call(Method::DELETE, &format!("/api/v1/boards/{board}/attachments/{id}"))
        .bearer(token)
        .send()
        .await
}

fn blob_dir(server: &TestServer) -> PathBuf {
    server.state().settings().data_dir.join("attachments")
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

async fn row_count(server: &TestServer) -> i64 {
    let (count,): (i64,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT COUNT(*) FROM attachments").fetch_one(pool).await.unwrap()
    });
    count
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn snapshot(server: &TestServer, f: &Fixture) -> Snapshot {
    server
        .get_as(&format!("/api/v1/boards/{}", f.board), &f.owner.access_token)
        .await
        .expect_as(200)
}

fn count_of(snapshot: &Snapshot, item: &str) -> u32 {
    snapshot.items.iter().find(|i| i.item.id.to_string() == item).unwrap().attachment_count
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

// ----- tests -----------------------------------------------------------------------------

async fn a_file_round_trips_and_is_deleted_with_its_blob(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let token = &f.owner.access_token;
    let reply = upload(
        server,
        token,
        &f.board,
        &item,
        multipart("C:\\Users\\me\\report.bin", "application/octet-stream", &bytes, None),
    )
    .await;
    let added: Attachment = reply.expect_as(201);
    assert_eq!(added.name, "report.bin", "the path is stripped; the name is display text");
    assert_eq!(added.size, bytes.len() as u64);
    assert_eq!(added.sha256, sha256_hex(&bytes));
    assert_eq!(added.item_id.to_string(), item);
    assert_eq!(added.update_id, None);
    assert_eq!(added.created_by.map(|u| u.to_string()), Some(f.owner.id.clone()));
    assert_eq!(added.content_type, "application/octet-stream");

    let listed: AttachmentList = list(server, token, &f.board, &item).await.expect_as(200);
    assert_eq!(listed.attachments, vec![added.clone()]);
    assert_eq!(count_of(&snapshot(server, &f).await, &item), 1);

    let (status, headers, body) = download(server, token, &f.board, &added.id.to_string()).await;
    assert_eq!(status, 200);
    let body = body.unwrap();
    assert_eq!(sha256_hex(&body), added.sha256);
    assert_eq!(body, bytes);
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    // The blob holds neither the bytes nor the name.
    let blobs = files_under(&blob_dir(server));
    assert_eq!(blobs.len(), 1);
    let stored = std::fs::read(&blobs[0]).unwrap();
    assert!(!stored.windows(64).any(|w| w == &bytes[1000..1064]));

    delete(server, token, &f.board, &added.id.to_string()).await.expect(204);
    let listed: AttachmentList = list(server, token, &f.board, &item).await.expect_as(200);
    assert!(listed.attachments.is_empty());
    let (status, _, _) = download(server, token, &f.board, &added.id.to_string()).await;
    assert_eq!(status, 404);
    delete(server, token, &f.board, &added.id.to_string()).await.expect_error(404, "not_found");
    assert!(files_under(&blob_dir(server)).is_empty(), "the blob went with its row");
    assert_eq!(count_of(&snapshot(server, &f).await, &item), 0);
}

async fn downloads_are_attachments_and_never_active(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    let name = "Résumé \"final\"; v2.txt";
    let added: Attachment =
        upload_file(server, token, &f.board, &item, name, b"plain words").await.expect_as(201);
    assert_eq!(added.name, name);
    assert_eq!(added.content_type, "text/plain");
    let (status, headers, _) = download(server, token, &f.board, &added.id.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B%20v2.txt"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-type"], "text/plain");

    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>";
    for (name, declared, bytes) in [
        ("page.html", "text/html", &html[..]),
        (
            "logo.svg",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        ),
        ("app.js", "application/javascript", b"alert(1)"),
    ] {
        let body = multipart(name, declared, bytes, None);
        let added: Attachment = upload(server, token, &f.board, &item, body).await.expect_as(201);
        let (status, headers, body) =
            download(server, token, &f.board, &added.id.to_string()).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/octet-stream", "{name}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        assert_eq!(body.unwrap(), bytes);
    }
}

async fn a_contradicted_type_is_refused(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    let html = b"<html><body onload=alert(1)></body></html>";
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
    for (declared, bytes) in
        [("image/png", &html[..]), ("image/png", &elf[..]), ("text/plain", &html[..])]
    {
        let body = multipart("cat.png", declared, bytes, None);
        upload(server, token, &f.board, &item, body)
            .await
            .expect_error(415, "unsupported_media_type");
    }
    // Not multipart at all.
    server
        .call(Method::POST, &format!("/api/v1/boards/{}/items/{item}/attachments", f.board))
        .bearer(token)
        .raw("application/json", "{}")
        .send()
        .await
        .expect_error(415, "unsupported_media_type");
    assert_eq!(row_count(server).await, 0);
    assert!(files_under(&blob_dir(server)).is_empty(), "a refused file leaves no blob");
    // The board still takes files.
    upload_file(server, token, &f.board, &item, "ok.txt", b"fine").await.expect(201);
}

async fn roles_and_scopes_decide_who_does_what(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let (editor, viewer, outsider) = (
        server.register("editor").await,
        server.register("viewer").await,
        server.register("outsider").await,
    );
    let stranger = server.register("stranger").await;
    for user in [&editor, &viewer, &outsider] {
        server.add_member(&f.owner, &f.org, user, "member").await;
    }
    server.add_board_member(&f.owner, &f.board, &editor, "editor").await;
    server.add_board_member(&f.owner, &f.board, &viewer, "viewer").await;
    // Another organization's owner, with a board of their own.
    let other_org = server.create_org(&stranger, "Other").await;
    server.create_board(&stranger, &other_org, "Theirs").await;

    let by_owner: Attachment =
        upload_file(server, &f.owner.access_token, &f.board, &item, "o.txt", b"owner")
            .await
            .expect_as(201);
    let by_editor: Attachment =
        upload_file(server, &editor.access_token, &f.board, &item, "e.txt", b"editor")
            .await
            .expect_as(201);
    upload_file(server, &viewer.access_token, &f.board, &item, "v.txt", b"viewer")
        .await
        .expect_error(403, "forbidden");
    for user in [&outsider, &stranger] {
        upload_file(server, &user.access_token, &f.board, &item, "x.txt", b"x")
            .await
            .expect_error(404, "not_found");
        list(server, &user.access_token, &f.board, &item).await.expect_error(404, "not_found");
        let (status, _, _) =
            download(server, &user.access_token, &f.board, &by_owner.id.to_string()).await;
        assert_eq!(status, 404);
        delete(server, &user.access_token, &f.board, &by_owner.id.to_string())
            .await
            .expect_error(404, "not_found");
    }
    let listed: AttachmentList =
        list(server, &viewer.access_token, &f.board, &item).await.expect_as(200);
    assert_eq!(listed.attachments.len(), 2);
    let (status, _, body) =
        download(server, &viewer.access_token, &f.board, &by_editor.id.to_string()).await;
    assert_eq!((status, body.unwrap()), (200, b"editor".to_vec()));
    delete(server, &viewer.access_token, &f.board, &by_owner.id.to_string())
        .await
        .expect_error(403, "forbidden");
    // An attachment id of this board asked for under another board is 404.
    let other_board = server.create_board(&f.owner, &f.org, "Second").await.board.id.to_string();
    let (status, _, _) =
        download(server, &f.owner.access_token, &other_board, &by_owner.id.to_string()).await;
    assert_eq!(status, 404);

    // Keys: items:read lists and downloads; items:write uploads and deletes.
    let (_, reader) = server.create_key(&f.owner, &f.org, &["boards:read", "items:read"]).await;
    let (_, writer) = server.create_key(&f.owner, &f.org, &["boards:read", "items:write"]).await;
    list(server, &reader, &f.board, &item).await.expect(200);
    let (status, _, _) = download(server, &reader, &f.board, &by_owner.id.to_string()).await;
    assert_eq!(status, 200);
    upload_file(server, &reader, &f.board, &item, "r.txt", b"r")
        .await
        .expect_error(403, "insufficient_scope");
    delete(server, &reader, &f.board, &by_owner.id.to_string())
        .await
        .expect_error(403, "insufficient_scope");
    list(server, &writer, &f.board, &item).await.expect_error(403, "insufficient_scope");
    let (status, _, _) = download(server, &writer, &f.board, &by_owner.id.to_string()).await;
    assert_eq!(status, 403);
    upload_file(server, &writer, &f.board, &item, "w.txt", b"w").await.expect(201);
    delete(server, &writer, &f.board, &by_editor.id.to_string()).await.expect(204);
    delete(server, &editor.access_token, &f.board, &by_owner.id.to_string()).await.expect(204);
    // Two refused uploads and nothing left of them: one file stays, with its blob.
    assert_eq!(row_count(server).await, 1);
    assert_eq!(files_under(&blob_dir(server)).len(), 1);
}

async fn the_limits_refuse_and_store_nothing(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    // Past the size bound: with a Content-Length past it (refused before the body is read), and
    // streamed without one (refused by the vault as the bytes pass the bound).
    let big = vec![b'a'; 100_000];
    upload_file(server, token, &f.board, &item, "big.txt", &big)
        .await
        .expect_error(413, "payload_too_large");
    let (head, tail) = multipart_parts("big.txt", "text/plain", None);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(head)),
        Ok(Bytes::from(vec![b'a'; 1000])),
        Ok(Bytes::from(vec![b'a'; 1000])),
        Ok(Bytes::from(tail)),
    ];
    server
        .call(Method::POST, &format!("/api/v1/boards/{}/items/{item}/attachments", f.board))
        .bearer(token)
        .raw(&content_type(), reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect_error(413, "payload_too_large");
    assert_eq!(row_count(server).await, 0);
    assert!(files_under(&blob_dir(server)).is_empty(), "nothing stored past the bound");
    // Exactly the bound is fine.
    let first: Attachment = upload_file(server, token, &f.board, &item, "a.txt", &vec![b'a'; 1024])
        .await
        .expect_as(201);
    // Files per item.
    upload_file(server, token, &f.board, &item, "b.txt", b"b").await.expect(201);
    upload_file(server, token, &f.board, &item, "c.txt", b"c")
        .await
        .expect_error(422, "limit_reached");
    assert_eq!(row_count(server).await, 2);
    assert_eq!(files_under(&blob_dir(server)).len(), 2, "the refused file's blob is gone");
    // Another item has room; a deletion makes room again.
    let other = self::item(server, &f, "Other").await;
    upload_file(server, token, &f.board, &other, "d.txt", b"d").await.expect(201);
    delete(server, token, &f.board, &first.id.to_string()).await.expect(204);
    upload_file(server, token, &f.board, &item, "c.txt", b"c").await.expect(201);
    // The plan's attachment storage (2 KiB here) counts every file of the organization: 3 bytes
    // so far, then 1 KiB fits and a second does not (402, nothing kept).
    let third = self::item(server, &f, "Third").await;
    upload_file(server, token, &f.board, &third, "e.txt", &[b'e'; 1024]).await.expect(201);
    let (rows, files) = (row_count(server).await, files_under(&blob_dir(server)).len());
    upload_file(server, token, &f.board, &third, "f.txt", &[b'f'; 1024])
        .await
        .expect_error(402, "plan_limit");
    assert_eq!(row_count(server).await, rows);
    assert_eq!(files_under(&blob_dir(server)).len(), files, "the refused file's blob is gone");
}

async fn events_tell_sockets_and_the_log(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    let mut socket = connect(server, token, JSON).await;
    let reply = socket.request(msg::subscribe(&f.board)).await;
    assert!(subscribed(&reply).snapshot.is_some());

    let added: Attachment =
        upload_file(server, token, &f.board, &item, "a.txt", b"secret bytes").await.expect_as(201);
    let event = socket.next_event().await;
    assert_eq!(event.kind, "attachment.added");
    assert_eq!(event.data["id"], added.id.to_string());
    assert_eq!(event.data["sha256"], added.sha256);
    assert!(!event.data.to_string().contains("secret bytes"));
    let mut fields: Vec<&String> = event.data.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "content_type",
            "created_at",
            "created_by",
            "id",
            "item_id",
            "name",
            "sha256",
            "size",
            "update_id"
        ],
        "metadata only"
    );
    delete(server, token, &f.board, &added.id.to_string()).await.expect(204);
    let event = socket.next_event().await;
    assert_eq!(event.kind, "attachment.deleted");
    assert_eq!(event.data["id"], added.id.to_string());
    assert_eq!(event.data["item_id"], item);

    let log: EventLog =
        server.get_as(&format!("/api/v1/boards/{}/events", f.board), token).await.expect_as(200);
    let kinds: Vec<&str> = log.events.iter().map(|e| e.event.kind().as_str()).collect();
    assert!(kinds.ends_with(&["attachment.added", "attachment.deleted"]), "{kinds:?}");
    let Some(EventData::AttachmentAdded(logged)) =
        log.events.iter().map(|e| &e.event).find(|e| e.kind().as_str() == "attachment.added")
    else {
        panic!("no attachment.added in the log")
    };
    assert_eq!(logged, &added);
    // A key without items:read is shown neither.
    let (_, key) = server.create_key(&f.owner, &f.org, &["boards:read"]).await;
    let log: EventLog =
        server.get_as(&format!("/api/v1/boards/{}/events", f.board), &key).await.expect_as(200);
    assert!(log.events.iter().all(|e| !e.event.kind().as_str().starts_with("attachment.")));
}

async fn files_attach_to_a_comment_of_the_item_only(server: &TestServer) {
    let f = fixture(server).await;
    let (item, other) = (item(server, &f, "Ship").await, item(server, &f, "Other").await);
    let token = &f.owner.access_token;
    let comment = server
        .post(
            &format!("/api/v1/boards/{}/items/{item}/updates", f.board),
            Some(token),
            &serde_json::json!({"body": "see attached"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_comment: Attachment = upload(
        server,
        token,
        &f.board,
        &item,
        multipart("c.txt", "text/plain", b"comment file", Some(&comment)),
    )
    .await
    .expect_as(201);
    assert_eq!(on_comment.update_id.map(|u| u.to_string()), Some(comment.clone()));
    upload(server, token, &f.board, &other, multipart("c.txt", "text/plain", b"x", Some(&comment)))
        .await
        .expect_error(404, "not_found");
    upload(server, token, &f.board, &item, multipart("c.txt", "text/plain", b"x", Some("nope")))
        .await
        .expect_error(422, "validation_failed");
    // Deleting the comment takes its files with it, and the count follows.
    server
        .call(Method::DELETE, &format!("/api/v1/boards/{}/items/{item}/updates/{comment}", f.board))
        .bearer(token)
        .send()
        .await
        .expect(204);
    let listed: AttachmentList = list(server, token, &f.board, &item).await.expect_as(200);
    assert!(listed.attachments.is_empty());
    assert_eq!(count_of(&snapshot(server, &f).await, &item), 0);
    assert_eq!(row_count(server).await, 0);
}

async fn a_damaged_blob_is_never_served(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    let marker = b"MARKER-0123456789-the-plaintext".repeat(10);
    let added: Attachment =
        upload_file(server, token, &f.board, &item, "m.txt", &marker).await.expect_as(201);
    let blobs = files_under(&blob_dir(server));
    assert_eq!(blobs.len(), 1);
    let mut stored = std::fs::read(&blobs[0]).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 0x01;
    std::fs::write(&blobs[0], &stored).unwrap();
    let (status, _, body) = download(server, token, &f.board, &added.id.to_string()).await;
    assert_eq!(status, 500, "a damaged file fails before its answer starts");
    let body = body.unwrap_or_default();
    assert!(!body.windows(6).any(|w| w == b"MARKER"), "never a byte of the altered file");
}

async fn deleting_an_item_or_a_board_deletes_its_blobs(server: &TestServer) {
    let f = fixture(server).await;
    let (first, second) = (item(server, &f, "Ship").await, item(server, &f, "Keep").await);
    let token = &f.owner.access_token;
    upload_file(server, token, &f.board, &first, "a.txt", b"a").await.expect(201);
    upload_file(server, token, &f.board, &first, "b.txt", b"b").await.expect(201);
    upload_file(server, token, &f.board, &second, "c.txt", b"c").await.expect(201);
    assert_eq!(files_under(&blob_dir(server)).len(), 3);
    server
        .call(Method::DELETE, &format!("/api/v1/boards/{}/items/{first}", f.board))
        .bearer(token)
        .send()
        .await
        .expect(204);
    let dir = blob_dir(server);
    eventually("the deleted item's blobs are gone", || files_under(&dir).len() == 1).await;
    assert_eq!(row_count(server).await, 1);
    server
        .call(Method::DELETE, &format!("/api/v1/boards/{}", f.board))
        .bearer(token)
        .send()
        .await
        .expect(204);
    eventually("the deleted board's blobs are gone", || files_under(&dir).is_empty()).await;
    let store = server.state().store().clone();
    let mut rows = 1;
    for _ in 0..500 {
        let (count,): (i64,) = boardroom::on_pool!(&store, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM attachments").fetch_one(pool).await.unwrap()
        });
        rows = count;
        if rows == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rows, 0, "the deleted board's rows are gone");
}

async fn memory_stays_flat_for_a_large_file(server: &TestServer) {
    const SIZE: usize = 25 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    // Well under the file's size: a server holding the whole file fails this.
    const MARGIN: usize = 16 * 1024 * 1024;
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = f.owner.access_token.clone();
    let pattern = |n: usize| -> Bytes {
        Bytes::from((0..CHUNK).map(|i| ((n * CHUNK + i) % 253) as u8).collect::<Vec<u8>>())
    };
    let mut expected = Sha256::new();
    for n in 0..SIZE / CHUNK {
        expected.update(pattern(n));
    }
    let expected = hex::encode(expected.finalize());
    let (head, tail) = multipart_parts("big.bin", "application/octet-stream", None);
    let body = futures::stream::iter(
        std::iter::once(Bytes::from(head))
            .chain((0..SIZE / CHUNK).map(pattern))
            .chain(std::iter::once(Bytes::from(tail)))
            .map(Ok::<Bytes, std::io::Error>),
    );
    let client = reqwest::Client::new();
    let baseline = rss_bytes();
    let mut sampling = PeakRss::start();
    let reply = client
        .post(server.url(&format!("/api/v1/boards/{}/items/{item}/attachments", f.board)))
        .bearer_auth(&token)
        .header("content-type", content_type())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let added: Attachment = reply.json().await.unwrap();
    let upload_peak = sampling.peak().saturating_sub(baseline);
    assert_eq!((added.size, added.sha256.as_str()), (SIZE as u64, expected.as_str()));

    let baseline = rss_bytes();
    let mut sampling = PeakRss::start();
    let response = client
        .get(server.url(&format!("/api/v1/boards/{}/attachments/{}", f.board, added.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let mut got = Sha256::new();
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        size += chunk.len();
        got.update(&chunk);
    }
    let download_peak = sampling.peak().saturating_sub(baseline);
    assert_eq!((size, hex::encode(got.finalize())), (SIZE, expected));
    assert!(
        upload_peak < MARGIN,
        "the upload of 25 MiB raised resident memory by {upload_peak} bytes"
    );
    assert!(
        download_peak < MARGIN,
        "the download of 25 MiB raised resident memory by {download_peak} bytes"
    );
}

async fn hostile_file_names_are_refused_and_never_become_paths(server: &TestServer) {
    let f = fixture(server).await;
    let item = item(server, &f, "Ship").await;
    let token = &f.owner.access_token;
    // A path is cut to its last segment, kept as display text only; the blob's name is random.
    for (sent, kept) in [("../../etc/passwd", "passwd"), ("C:\\Users\\x\\report.txt", "report.txt")]
    {
        let added: Attachment =
            upload_file(server, token, &f.board, &item, sent, b"plain").await.expect_as(201);
        assert_eq!(added.name, kept);
    }
    let stored = files_under(&blob_dir(server));
    assert_eq!(stored.len(), 2);
    for path in &stored {
        let text = path.to_string_lossy();
        assert!(
            !text.contains("passwd") && !text.contains("report") && !text.contains(".."),
            "{text}"
        );
    }
    // Control bytes, a name that is only a path, and a huge name: refused, nothing kept.
    let huge = "a".repeat(10_000);
    for name in ["a\u{0}b.txt", "bell\u{7}.txt", "esc\u{1b}[31m.txt", "dir/", "../", huge.as_str()]
    {
        let reply = upload_file(server, token, &f.board, &item, name, b"plain").await;
        assert!(
            (400..=422).contains(&reply.status) && reply.status != 404,
            "{name:?} answered {}: {:?}",
            reply.status,
            reply.body
        );
        assert!(
            ["validation_failed", "malformed_body", "bad_request"].contains(&reply.error_code()),
            "{name:?}: {}",
            reply.error_code()
        );
    }
    assert_eq!(row_count(server).await, 2);
    assert_eq!(files_under(&blob_dir(server)).len(), 2, "a refused name left its blob");
    // Another organization's board and item are 404, and nothing is stored for them.
    let stranger = server.register("stranger").await;
    let other_org = server.create_org(&stranger, "Elsewhere").await;
    let other_board = server.create_board(&stranger, &other_org, "Theirs").await;
    let other_board = other_board.board.id.to_string();
    upload_file(server, token, &other_board, &item, "x.txt", b"x")
        .await
        .expect_error(404, "not_found");
    upload_file(server, &stranger.access_token, &f.board, &item, "x.txt", b"x")
        .await
        .expect_error(404, "not_found");
    assert_eq!(row_count(server).await, 2);
}
