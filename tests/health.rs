//! Health probes, request ids, the JSON shape of routing errors, and the durability settings
//! of the database connections.

use crate::harness::{both_backends, Backend, TestServer};

both_backends!(
    readyz_reports_ready_with_backend,
    readyz_is_503_when_migrations_are_missing,
    every_answer_carries_a_request_id,
    unknown_routes_answer_json_errors,
    commits_reach_the_disk_before_they_are_acknowledged
);

async fn readyz_reports_ready_with_backend(server: &TestServer) {
    server.get("/healthz").await.expect(200);
    let reply = server.get("/readyz").await;
    let body = reply.expect(200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["migrations_current"], true);
    let expected = match server.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["backend"], expected);
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
    let reply = server.get("/readyz").await;
    let body = reply.expect(503);
    assert_eq!(body["migrations_current"], false);
    assert_eq!(body["database"], true);
    assert_eq!(body["pending_migrations"].as_array().map(Vec::len), Some(1));
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
        }
    }
}
