//! Health probes, request ids, the JSON shape of routing errors, and the durability settings
//! of the database connections.

use boardroom_protocol::health::{self, Health, Liveness, Readiness, ReadyStatus};

use crate::harness::{both_backends, Backend, TestServer};

both_backends!(
    readyz_reports_ready_with_backend,
    readyz_is_503_when_migrations_are_missing,
    every_answer_carries_a_request_id,
    unknown_routes_answer_json_errors,
    commits_reach_the_disk_before_they_are_acknowledged,
    an_answer_before_the_body_leaves_the_connection_usable,
    a_refusal_does_not_invite_a_body_the_client_held_back
);

async fn readyz_reports_ready_with_backend(server: &TestServer) {
    let live: Health = server.get("/healthz").await.expect_as(200);
    assert_eq!(live.status, Liveness::Ok);
    let ready: Readiness = server.get("/readyz").await.expect_as(200);
    let backend = match server.backend() {
        Backend::Sqlite => health::Backend::Sqlite,
        Backend::Postgres => health::Backend::Postgres,
    };
    let expected = Readiness {
        status: ReadyStatus::Ready,
        backend,
        database: true,
        migrations_current: true,
        pending_migrations: vec![],
    };
    assert_eq!(ready, expected);
}

async fn readyz_is_503_when_migrations_are_missing(server: &TestServer) {
    // Forget the newest migration behind the server's back: it must stop claiming readiness.
    let store = server.state().store();
    boardroom::on_pool!(store, pool => {
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .execute(pool)
            .await
            .unwrap();
    });
    let body: Readiness = server.get("/readyz").await.expect_as(503);
    assert_eq!(body.status, ReadyStatus::NotReady);
    assert!(!body.migrations_current);
    assert!(body.database);
    assert_eq!(body.pending_migrations.len(), 1, "{body:?}");
}

async fn every_answer_carries_a_request_id(server: &TestServer) {
    let reply = server.get("/healthz").await;
    let id = reply.header("x-request-id").expect("request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let echoed = server
        .call(reqwest::Method::GET, "/healthz")
        .header("x-request-id", "client-chosen-42")
        .send()
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("client-chosen-42"));
    let forged = server
        .call(reqwest::Method::GET, "/healthz")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await;
    assert_ne!(forged.header("x-request-id"), Some("bad id with spaces"));
}

async fn unknown_routes_answer_json_errors(server: &TestServer) {
    server.get("/api/v1/nope").await.expect_error(404, "not_found");
    server.get("/nope").await.expect_error(404, "not_found");
    server
        .call(reqwest::Method::POST, "/healthz")
        .send()
        .await
        .expect_error(405, "method_not_allowed");
}

/// An acknowledged write survives a power cut, not only a crash of the server: SQLite runs in
/// WAL mode with `synchronous = FULL` (the WAL is synced at every commit; `NORMAL` would not);
/// the server's Postgres sessions set `synchronous_commit = on` whatever the database's default
/// (`fsync` is the cluster's, a deployment requirement, not checked here).
async fn commits_reach_the_disk_before_they_are_acknowledged(server: &TestServer) {
    let store = server.state().store();
    match server.backend() {
        Backend::Sqlite => {
            let (synchronous, journal): (i64, String) = boardroom::on_pool!(store, pool => {
                let synchronous = sqlx::query_scalar("PRAGMA synchronous").fetch_one(pool).await.unwrap();
                let journal = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(pool).await.unwrap();
                (synchronous, journal)
            });
            assert_eq!(synchronous, 2, "PRAGMA synchronous must be FULL (2)");
            assert_eq!(journal, "wal");
        }
        Backend::Postgres => {
            // Even where the database's default says otherwise.
            boardroom::on_pool!(store, pool => {
                sqlx::query(
                    "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', \
                     current_database()); END $$",
                )
                .execute(pool)
                .await
                .unwrap();
            });
            let reopened = boardroom::storage::Store::open(&server.database.url, 1).await.unwrap();
            let value: String = boardroom::on_pool!(reopened, pool => {
                sqlx::query_scalar("SHOW synchronous_commit").fetch_one(pool).await.unwrap()
            });
            assert_eq!(value, "on");
            // Prepared statements keep one plan rather than being planned at each execution.
            let plans: String = boardroom::on_pool!(reopened, pool => {
                sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(pool).await.unwrap()
            });
            assert_eq!(plans, "force_generic_plan");
        }
    }
}

/// Sends `head` and `body` on `stream` and reads one answer: its status line and headers
/// (lower-cased) and body. The body is written by a task of its own, as a client streaming an
/// upload does while the answer may already be on its way.
async fn exchange(
    stream: tokio::net::TcpStream,
    head: &str,
    body: Vec<u8>,
) -> (tokio::net::TcpStream, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.expect("the connection takes a request");
    let upload = tokio::spawn(async move {
        // Before the fix the server closed mid-upload: the write fails, the read below tells.
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_len, body_len) = loop {
        let n = reader.read(&mut chunk).await.unwrap_or(0);
        assert!(
            n > 0,
            "the connection ended before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (end + 4, len);
        }
    };
    while buf.len() < head_len + body_len {
        let n = reader.read(&mut chunk).await.unwrap_or(0);
        assert!(n > 0, "the connection ended inside an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let writer = tokio::time::timeout(std::time::Duration::from_secs(30), upload)
        .await
        .expect("the upload never finished")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    let body = String::from_utf8_lossy(&buf[head_len..head_len + body_len]).into_owned();
    (reader.reunite(writer).unwrap(), head, body)
}

/// A request answered before its body was read (over the size limit: 413; refused before the
/// body is looked at: 401) leaves a keep-alive connection usable: the server reads the rest of
/// the body and drops it before answering. It used to stop reading and close the connection
/// after the answer without saying so, and a client that had finished sending reused it for
/// its next request, which failed (reqwest's `IncompleteMessage`, the flaky
/// `item_versions_guard_concurrent_edits`).
async fn an_answer_before_the_body_leaves_the_connection_usable(server: &TestServer) {
    let user = server.register("uploader").await;
    let cases = [
        (Some(user.access_token.as_str()), 413, "payload_too_large"),
        (None, 401, "unauthenticated"),
    ];
    for (token, status, code) in cases {
        let body = vec![b' '; 2 * 1024 * 1024];
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "POST /api/v1/orgs HTTP/1.1\r\nhost: boardroom\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let (stream, head, answer) = exchange(stream, &head, body).await;
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        assert!(answer.contains(code), "{answer}");
        assert!(!head.contains("connection: close"), "{head}");
        // The same connection serves the next request.
        let next = "GET /healthz HTTP/1.1\r\nhost: boardroom\r\n\r\n";
        let (_, head, _) = exchange(stream, next, Vec::new()).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
}

/// A client that sent `Expect: 100-continue` and holds its body back is refused (401) without
/// first being told to send it: the answer comes at once, says `Connection: close`, and no
/// `100 Continue` precedes it. Draining the unread body would have invited the upload.
async fn a_refusal_does_not_invite_a_body_the_client_held_back(server: &TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head =
        "POST /api/v1/orgs HTTP/1.1\r\nhost: boardroom\r\ncontent-type: application/json\r\n\
                expect: 100-continue\r\ncontent-length: 4194304\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answered = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the connection ended before an answer");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(answered.is_ok(), "no answer while the body was held back: {buf:?}");
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
}
