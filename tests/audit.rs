//! The audit log: a row for every audited action, with who, where and what; the admin-only
//! listing; `boardroom audit verify` catching edited and removed rows; retention purge that
//! leaves the rest verifiable; and bcrypt at the promised cost, checked by Python's bcrypt.

use std::collections::HashSet;
use std::process::Command;

use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};
use reqwest::Method;
use serde_json::json;

use crate::harness::{both_backends, both_backends_with, TestServer};

both_backends!(
    every_audited_action_writes_a_row,
    audit_log_is_for_admins_and_pages,
    verify_catches_edited_and_removed_rows,
    purge_keeps_two_years_and_the_chain_verifiable,
);

both_backends_with!(production_cost; passwords_use_bcrypt_cost_12);

fn production_cost(settings: &mut boardroom::config::Settings) {
    settings.bcrypt_cost = boardroom::config::DEFAULT_BCRYPT_COST;
}

fn verify_cli(server: &TestServer) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .env("BOARDROOM_LOG", "error")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn actions(server: &TestServer) -> Vec<(String, Option<String>, Option<String>, bool)> {
    server.flush_audit().await;
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT action, ip, user_agent, bypass FROM audit_log ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap()
    })
}

async fn every_audited_action_writes_a_row(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    server
        .post(
            "/api/v1/auth/login",
            None,
            &json!({"email": alice.email, "password": "wrong-password-x"}),
        )
        .await
        .expect(401);
    let login = server.login(&alice).await;
    let second = login.expect(200)["session_id"].as_str().unwrap().to_owned();
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{second}"),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    server.set_org_role(&alice, &org, &bob, "admin").await.expect(200);
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/members/{}", bob.id),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    let (key_id, _) = server.create_key(&alice, &org, &["boards:read"]).await;
    server
        .send_as(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/api-keys/{key_id}"),
            &alice.access_token,
            Some(&json!({"name": "renamed"})),
        )
        .await
        .expect(200);
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/api-keys/{key_id}"),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    server
        .send_as(
            Method::POST,
            "/api/v1/auth/password",
            &alice.access_token,
            Some(
                &json!({"current_password": alice.password, "new_password": "another-password-1"}),
            ),
        )
        .await
        .expect(204);
    server.send_as(Method::POST, "/api/v1/auth/logout", &bob.access_token, None).await.expect(204);

    let rows = actions(server).await;
    let seen: HashSet<&str> = rows.iter().map(|(a, ..)| a.as_str()).collect();
    for expected in [
        "signup",
        "login.failed",
        "login.succeeded",
        "session.revoked",
        "org.created",
        "member.added",
        "member.role_changed",
        "member.removed",
        "api_key.created",
        "api_key.updated",
        "api_key.revoked",
        "password.changed",
        "logout",
    ] {
        assert!(seen.contains(expected), "no {expected} row in {seen:?}");
    }
    assert!(rows.iter().all(|(_, ip, _, bypass)| ip.as_deref() == Some("127.0.0.1") && !bypass));
    // Passwords and tokens never reach the audit log.
    let dump: Vec<(String,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT metadata FROM audit_log").fetch_all(pool).await.unwrap()
    })
    .into_iter()
    .map(|(m,): (sqlx::types::Json<serde_json::Value>,)| (m.0.to_string(),))
    .collect();
    let dump = format!("{dump:?}");
    assert!(!dump.contains(&alice.password) && !dump.contains("another-password-1"), "{dump}");
    assert!(!dump.contains(&alice.access_token));
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");
    assert!(text.contains(&format!("{} rows", rows.len())), "{text}");
}

async fn audit_log_is_for_admins_and_pages(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    for _ in 0..3 {
        server.create_key(&alice, &org, &["boards:read"]).await;
    }
    server.flush_audit().await;
    server
        .get_as(&format!("/api/v1/orgs/{org}/audit-log"), &bob.access_token)
        .await
        .expect_error(403, "forbidden");
    let page =
        server.get_as(&format!("/api/v1/orgs/{org}/audit-log?limit=2"), &alice.access_token).await;
    let page = page.expect(200).clone();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "api_key.created");
    let cursor = page["next_cursor"].as_i64().unwrap();
    let rest = server
        .get_as(
            &format!("/api/v1/orgs/{org}/audit-log?limit=50&cursor={cursor}"),
            &alice.access_token,
        )
        .await;
    let rest = rest.expect(200)["entries"].as_array().unwrap().clone();
    // 3 keys, a member added, the org created; signups are not org-scoped.
    assert_eq!(entries.len() + rest.len(), 5, "{rest:?}");
    assert!(rest.iter().all(|e| e["seq"].as_i64().unwrap() < cursor));
    let filtered = server
        .get_as(&format!("/api/v1/orgs/{org}/audit-log?action=member.added"), &alice.access_token)
        .await;
    assert_eq!(filtered.expect(200)["entries"].as_array().unwrap().len(), 1);
    server
        .get_as(&format!("/api/v1/orgs/{org}/audit-log?action=nonsense"), &alice.access_token)
        .await
        .expect_error(422, "validation_failed");
}

async fn verify_catches_edited_and_removed_rows(server: &TestServer) {
    for name in ["a", "b", "c"] {
        server.register(name).await;
    }
    actions(server).await;
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");

    let store = server.state().store();
    boardroom::on_pool!(store, pool => {
        sqlx::query("UPDATE audit_log SET target = 'someone-else' WHERE seq = 2").execute(pool).await.unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(!ok, "an edited row must fail verification: {text}");
    assert!(text.contains("row 2") && text.contains("edited"), "{text}");

    boardroom::on_pool!(store, pool => {
        sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(pool).await.unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(!ok, "a removed row must fail verification: {text}");
    assert!(text.contains("row 3"), "{text}");
}

async fn purge_keeps_two_years_and_the_chain_verifiable(server: &TestServer) {
    let store = server.state().store();
    // The audit actor purges once at start; let that pass first, or on a loaded machine it can
    // run after the appends below and take the old rows before this test's own purge does.
    server.flush_audit().await;
    let now = chrono::Utc::now();
    let event_at = |days_ago: i64| {
        let mut event = AuditEvent::new(AuditAction::LoginSucceeded);
        event.at -= chrono::Duration::days(days_ago);
        event
    };
    store.append(&[event_at(1000), event_at(800), event_at(731)]).await.unwrap();
    store.append(&[event_at(700), event_at(10)]).await.unwrap();
    let purged = store.purge_older_than(now - chrono::Duration::days(730)).await.unwrap();
    assert_eq!(purged, 3);
    let left: Vec<(i64,)> = boardroom::on_pool!(store, pool => {
        sqlx::query_as("SELECT seq FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
    });
    assert_eq!(left, vec![(4,), (5,)]);
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");
    // New rows keep chaining after a purge, and a second purge moves the anchor on.
    store.append(&[event_at(0)]).await.unwrap();
    assert_eq!(store.purge_older_than(now - chrono::Duration::days(365)).await.unwrap(), 1);
    let (ok, text) = verify_cli(server);
    assert!(ok && text.contains("2 rows"), "{text}");
}

async fn passwords_use_bcrypt_cost_12(server: &TestServer) {
    let alice = server.register("alice").await;
    let (hash,): (String,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT password_hash FROM users").fetch_one(pool).await.unwrap()
    });
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    let check = Command::new("python3")
        .args(["-c", "import bcrypt,sys; sys.exit(0 if bcrypt.checkpw(sys.argv[1].encode(), sys.argv[2].encode()) else 1)", &alice.password, &hash])
        .status()
        .expect("python3 with bcrypt");
    assert!(check.success(), "python bcrypt rejected our hash");
    // And a hash made by Python's bcrypt verifies here.
    let out = Command::new("python3")
        .args(["-c", "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(12)).decode())", "python-made-pw"])
        .output()
        .unwrap();
    let python_hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let hasher = server.state().auth().hasher();
    assert_eq!(hasher.cost(), 12);
    assert!(hasher.verify("python-made-pw".into(), Some(python_hash.clone())).await.unwrap());
    assert!(!hasher.verify("python-made-px".into(), Some(python_hash)).await.unwrap());
}

/// Audit writes are cast off the request path; a graceful shutdown still stores every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_no_audit_row_sqlite() {
    shutdown_keeps_audit_rows(crate::harness::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_loses_no_audit_row_postgres() {
    shutdown_keeps_audit_rows(crate::harness::Backend::Postgres).await;
}

async fn shutdown_keeps_audit_rows(backend: crate::harness::Backend) {
    let Some(database) = crate::harness::TestDatabase::create(backend).await else { return };
    let mut server = TestServer::start_on(database).await;
    for i in 0..20 {
        server.register(&format!("u{i}")).await;
    }
    // No flush here: the shutdown itself must drain the audit actor.
    let url = server.database.url.clone();
    let dir = server.database.dir.path().to_owned();
    assert!(server.stop_keeping_database().await);
    let settings = boardroom::config::Settings::for_tests(dir, url);
    let store = boardroom::server::open_store(&settings).await.unwrap();
    let (signups,): (i64,) = boardroom::on_pool!(&store, pool => {
        sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'signup'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(signups, 20);
    store.close().await;
    drop(server);
}
