//! The audit log: a row for every audited action, with who, where and what; the admin-only
//! listing; `boardroom audit verify` catching edited and removed rows; retention purge that
//! leaves the rest verifiable; and bcrypt at the promised cost, checked by Python's bcrypt.

use std::collections::HashSet;
use std::process::Command;

use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};
use boardroom_protocol::api_keys::{ApiKey, UpdateApiKey};
use boardroom_protocol::identity::{ChangePassword, Login, SessionAnswer};
use reqwest::Method;
use serde_json::json;

use crate::harness::{both_backends, both_backends_with, python, TestServer};

both_backends!(
    every_audited_action_writes_a_row,
    audit_log_is_for_admins_and_pages,
    verify_catches_edited_and_removed_rows,
    purge_keeps_two_years_and_the_chain_verifiable,
    a_nul_in_login_metadata_does_not_silence_the_log,
    a_refused_entry_is_set_aside_and_the_rest_are_stored,
    verify_catches_a_rewritten_and_rehashed_chain,
    verify_catches_a_truncated_tail,
    refused_data_is_told_from_an_unavailable_store,
    deleted_checkpoints_are_put_back_by_the_running_server,
);

both_backends_with!(production_cost; passwords_use_bcrypt_cost_12);

fn production_cost(settings: &mut boardroom::config::Settings) {
    settings.bcrypt_cost = boardroom::config::DEFAULT_BCRYPT_COST;
}

pub(crate) fn verify_cli(server: &TestServer) -> (bool, String) {
    let out = server.cli(&["audit", "verify"]);
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
    let wrong = Login { email: alice.email.clone(), password: "wrong-password-x".into() };
    server.post("/api/v1/auth/login", None, &wrong).await.expect(401);
    let login = server.login(&alice).await;
    let second = login.expect_as::<SessionAnswer>(200).session_id;
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
    let renamed: ApiKey = server
        .send_body(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/api-keys/{key_id}"),
            &alice.access_token,
            &UpdateApiKey { name: Some("renamed".into()), ..Default::default() },
        )
        .await
        .expect_as(200);
    assert_eq!(renamed.name, "renamed");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/api-keys/{key_id}"),
            &alice.access_token,
            None,
        )
        .await
        .expect(204);
    let change = ChangePassword {
        current_password: alice.password.clone(),
        new_password: "another-password-1".into(),
    };
    server
        .send_body(Method::POST, "/api/v1/auth/password", &alice.access_token, &change)
        .await
        .expect_as::<SessionAnswer>(200);
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
    let audit = server.state().runtime().audit();
    let key = server.audit_key();
    // The audit actor purges once at start; let that pass first, or on a loaded machine it can
    // run after the appends below and take the old rows before this test's own purge does.
    server.flush_audit().await;
    let now = chrono::Utc::now();
    let event_at = |days_ago: i64| {
        let mut event = AuditEvent::new(AuditAction::LoginSucceeded);
        event.at -= chrono::Duration::days(days_ago);
        event
    };
    // Checkpoints before, at and after where the purge will cut.
    store.append(&[event_at(1000), event_at(800)]).await.unwrap();
    assert!(audit.checkpoint().await);
    store.append(&[event_at(731)]).await.unwrap();
    assert!(audit.checkpoint().await);
    store.append(&[event_at(700), event_at(10)]).await.unwrap();
    assert!(audit.checkpoint().await);
    let purged = store.purge_older_than(now - chrono::Duration::days(730), &key).await.unwrap();
    assert_eq!(purged, 3);
    let left: Vec<(i64,)> = boardroom::on_pool!(store, pool => {
        sqlx::query_as("SELECT seq FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
    });
    assert_eq!(left, vec![(4,), (5,)]);
    let checkpoints: Vec<(i64,)> = boardroom::on_pool!(store, pool => {
        sqlx::query_as("SELECT seq FROM audit_checkpoints ORDER BY seq").fetch_all(pool).await.unwrap()
    });
    assert_eq!(checkpoints, vec![(3,), (5,)], "checkpoints over purged rows go with them");
    let (ok, text) = verify_cli(server);
    assert!(ok && text.contains("2 rows verified; signed through row 5"), "{text}");
    // New rows keep chaining after a purge, and a second purge moves the anchor on.
    store.append(&[event_at(0)]).await.unwrap();
    assert_eq!(store.purge_older_than(now - chrono::Duration::days(365), &key).await.unwrap(), 1);
    let (ok, text) = verify_cli(server);
    assert!(ok && text.contains("2 rows"), "{text}");

    // Dropping the oldest rows that are left needs an anchor only the audit key can seal.
    boardroom::on_pool!(store, pool => {
        sqlx::query("UPDATE audit_anchor SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(pool).await.unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(!ok && text.contains("purge anchor at row 5"), "{text}");
}

async fn passwords_use_bcrypt_cost_12(server: &TestServer) {
    let alice = server.register("alice").await;
    let (hash,): (String,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT password_hash FROM users").fetch_one(pool).await.unwrap()
    });
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    let check = python()
        .args(["-c", "import bcrypt,sys; sys.exit(0 if bcrypt.checkpw(sys.argv[1].encode(), sys.argv[2].encode()) else 1)", &alice.password, &hash])
        .status()
        .expect("python");
    assert!(check.success(), "python bcrypt rejected our hash");
    // And a hash made by Python's bcrypt verifies here.
    let out = python()
        .args(["-c", "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(12)).decode())", "python-made-pw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
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
    refuse_marked_rows(&server).await;
    for i in 0..20 {
        server.register(&format!("u{i}")).await;
        if i == 10 {
            let mut refused = AuditEvent::new(AuditAction::LoginFailed);
            refused.target = Some("refuse-me".into());
            server.state().runtime().audit().record(refused);
        }
    }
    // No flush here: the shutdown itself must drain the audit actor, setting aside what the
    // store refuses rather than losing what queued behind it, and seal a last checkpoint.
    let url = server.database.url.clone();
    let dir = server.database.dir.path().to_owned();
    assert!(server.stop_keeping_database().await);
    let settings = boardroom::config::Settings::for_tests(dir, url);
    let store = boardroom::server::open_store(&settings).await.unwrap();
    let counts: (i64, i64, i64, Option<i64>) = boardroom::on_pool!(&store, pool => {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM audit_log WHERE action = 'signup'), \
             (SELECT COUNT(*) FROM audit_dead_letters), \
             (SELECT MAX(seq) FROM audit_log), (SELECT MAX(seq) FROM audit_checkpoints)",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(counts, (20, 1, 20, Some(20)), "signups, set aside, last row, last checkpoint");
    store.close().await;
    let (ok, text) = verify_cli(&server);
    assert!(ok && text.contains("signed through row 20"), "{text}");
    drop(server);
}

/// The incident: a NUL in a failed login's email made Postgres refuse that row, and the audit
/// actor retried the batch forever, storing nothing after it.
async fn a_nul_in_login_metadata_does_not_silence_the_log(server: &TestServer) {
    let alice = server.register("alice").await;
    // Whatever the edge answers, the attempt must not stop the log.
    let nul_email = format!("  Alice\u{0}{}", alice.email);
    let attempt = Login { email: nul_email.clone(), password: "wrong-password-x".into() };
    server.post("/api/v1/auth/login", None, &attempt).await;
    // The same raw input, straight into the log.
    let mut event = AuditEvent::new(AuditAction::LoginFailed);
    event.target = Some("raw-input".into());
    event.user_agent = Some(format!("agent\u{0}{}", "x".repeat(5000)));
    event.metadata = json!({ "email": nul_email, "reason": "x\u{0}".repeat(1000) });
    server.state().runtime().audit().record(event);
    server.create_org(&alice, "Acme").await;
    let rows = actions(server).await;
    let seen: Vec<&str> = rows.iter().map(|(a, ..)| a.as_str()).collect();
    assert!(seen.contains(&"org.created"), "the log went silent: {seen:?}");
    let raw: (Option<String>, sqlx::types::Json<serde_json::Value>) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT user_agent, metadata FROM audit_log WHERE target = 'raw-input'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let user_agent = raw.0.unwrap();
    assert!(user_agent.starts_with("agentxxx") && user_agent.chars().count() == 256);
    assert_eq!(raw.1 .0["email"], format!("alice{}", alice.email), "stored normalized");
    assert_eq!(raw.1 .0["reason"], format!("{}…", "x".repeat(255)));
    let all: Vec<(sqlx::types::Json<serde_json::Value>,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT metadata FROM audit_log").fetch_all(pool).await.unwrap()
    });
    assert!(all.iter().all(|(m,)| !m.0.to_string().contains("\\u0000")), "{all:?}");
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");
}

/// Makes the real database refuse audit rows whose target is `refuse-me`, as a constraint
/// would: a data error for that row alone.
async fn refuse_marked_rows(server: &TestServer) {
    let statements: &[&str] = match server.backend() {
        crate::harness::Backend::Postgres => &[
            "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.target = 'refuse-me' THEN \
             RAISE EXCEPTION 'marked rows are refused' USING ERRCODE = 'check_violation'; \
             END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_marked()",
        ],
        crate::harness::Backend::Sqlite => {
            &["CREATE TRIGGER refuse_marked BEFORE INSERT ON audit_log \
             WHEN NEW.target = 'refuse-me' \
             BEGIN SELECT RAISE(ABORT, 'marked rows are refused'); END"]
        }
    };
    for statement in statements {
        boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query(statement).execute(pool).await.unwrap();
        });
    }
}

async fn a_refused_entry_is_set_aside_and_the_rest_are_stored(server: &TestServer) {
    refuse_marked_rows(server).await;
    let audit = server.state().runtime().audit();
    let entry = |target: &str| {
        let mut event = AuditEvent::new(AuditAction::LoginFailed);
        event.target = Some(target.to_owned());
        event
    };
    for target in ["first", "second", "refuse-me", "third", "fourth"] {
        audit.record(entry(target));
    }
    let alice = server.register("alice").await;
    server.create_org(&alice, "Acme").await;
    server.flush_audit().await;

    let stored: Vec<(String, Option<String>)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT action, target FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
    });
    let targets: Vec<&str> = stored.iter().filter_map(|(_, t)| t.as_deref()).collect();
    assert_eq!(&targets[..4], ["first", "second", "third", "fourth"], "{stored:?}");
    let actions: Vec<&str> = stored.iter().map(|(a, _)| a.as_str()).collect();
    assert!(actions.contains(&"signup") && actions.contains(&"org.created"), "{actions:?}");

    let dead: Vec<(String, String, String)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT action, entry, reason FROM audit_dead_letters ORDER BY set_aside_at")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (action, kept, reason) = &dead[0];
    assert_eq!(action, "login.failed");
    let kept: AuditEvent = serde_json::from_str(kept).unwrap();
    assert_eq!(kept.target.as_deref(), Some("refuse-me"));
    assert!(reason.contains("marked rows are refused"), "{reason}");
    assert_eq!(audit.set_aside_total(), 1);
    assert_eq!((audit.queued(), audit.dropped_total()), (0, 0));
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");
}

/// Rewrites row 2's target and recomputes every later hash, as someone with write access to
/// the database (but not the audit key) can: as version-1 rows, the only hash they can compute
/// without the key.
async fn rewrite_and_rehash(server: &TestServer) {
    use boardroom_actors::audit_chain::row_hash;
    let store = server.state().store();
    let rows: Vec<boardroom::storage::AuditRow> = boardroom::on_pool!(store, pool => {
        sqlx::query_as(
            "SELECT seq, id, organization_id, actor_id, action, target, ip, user_agent, bypass, \
             metadata, created_at, prev_hash, hash, hash_version, erased FROM audit_log \
             ORDER BY seq",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    let mut prev = rows[0].prev_hash.clone();
    for row in rows {
        let event = AuditEvent {
            action: AuditAction::parse(&row.action).unwrap(),
            organization_id: row.organization_id,
            actor_id: row.actor_id,
            target: if row.seq == 2 { Some("someone-else".into()) } else { row.target },
            ip: row.ip,
            user_agent: row.user_agent,
            bypass: row.bypass,
            metadata: row.metadata.0,
            at: row.created_at,
        };
        let hash = row_hash(&prev, row.seq, row.id, &event).to_vec();
        boardroom::on_pool!(store, pool => {
            sqlx::query(
                "UPDATE audit_log SET target = $2, prev_hash = $3, hash = $4, hash_version = 1 \
                 WHERE seq = $1",
            )
                .bind(row.seq)
                .bind(&event.target)
                .bind(&prev)
                .bind(&hash)
                .execute(pool)
                .await
                .unwrap();
        });
        prev = hash;
    }
}

async fn verify_catches_a_rewritten_and_rehashed_chain(server: &TestServer) {
    for name in ["a", "b", "c"] {
        server.register(name).await;
    }
    assert!(server.state().runtime().audit().checkpoint().await);
    let (ok, text) = verify_cli(server);
    assert!(ok && text.contains("3 rows verified; signed through row 3"), "{text}");
    rewrite_and_rehash(server).await;
    let (ok, text) = verify_cli(server);
    assert!(!ok, "a rewritten chain must fail verification: {text}");
    assert!(text.contains("row 3: differs from the signed checkpoint"), "{text}");
    // Nor can the checkpoint be re-signed without the key.
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_log WHERE seq = 3)")
            .execute(pool)
            .await
            .unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(!ok && text.contains("checkpoint at row 3: its signature does not match"), "{text}");
}

async fn verify_catches_a_truncated_tail(server: &TestServer) {
    for name in ["a", "b", "c", "d"] {
        server.register(name).await;
    }
    assert!(server.state().runtime().audit().checkpoint().await);
    let (ok, text) = verify_cli(server);
    assert!(ok, "{text}");
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("DELETE FROM audit_log WHERE seq >= 3").execute(pool).await.unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(!ok, "a truncated tail must fail verification: {text}");
    assert!(text.contains("the chain ends at row 2, but a signed checkpoint vouches for row 4"));
    // Without the key, verification cannot vouch for anything.
    let out = Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", tempfile::tempdir().unwrap().path())
        .env("BOARDROOM_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("BOARDROOM_AUDIT_KEY"), "{text}");
}

/// The actor bisects on refusals and retries on outages; the store tells them apart by the
/// database's own error codes.
async fn refused_data_is_told_from_an_unavailable_store(server: &TestServer) {
    let store = server.state().store();
    let run = |sql: &'static str| async move {
        let result: Result<(), sqlx::Error> = boardroom::on_pool!(store, pool => {
            sqlx::query(sql).execute(pool).await.map(|_| ())
        });
        result.err().map(boardroom::storage::StorageError::from)
    };
    assert!(run("CREATE TABLE probe (x INTEGER PRIMARY KEY CHECK (x > 0))").await.is_none());
    assert!(run("INSERT INTO probe (x) VALUES (1)").await.is_none());
    let check = run("INSERT INTO probe (x) VALUES (-1)").await.unwrap();
    assert!(check.data_refusal().is_some(), "a check constraint refuses the row: {check:?}");
    let unique = run("INSERT INTO probe (x) VALUES (1)").await.unwrap();
    assert_eq!(unique.data_refusal(), None, "a unique clash may pass once the tail is re-read");
    let missing = run("INSERT INTO no_such_table (x) VALUES (1)").await.unwrap();
    assert_eq!(missing.data_refusal(), None, "a broken schema is no fault of the row");
    if server.backend() == crate::harness::Backend::Postgres {
        // The incident's own refusal: jsonb cannot hold a NUL.
        let nul = run(r#"SELECT '{"email": "a\u0000b"}'::jsonb"#).await.unwrap();
        let reason = nul.data_refusal().unwrap_or_default();
        assert!(reason.starts_with("22P05"), "{reason}");
    }
    let closed = boardroom::server::open_store(server.state().settings()).await.unwrap();
    closed.close().await;
    let outage: Result<(), sqlx::Error> = boardroom::on_pool!(&closed, pool => {
        sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
    });
    let outage = boardroom::storage::StorageError::from(outage.unwrap_err());
    assert_eq!(outage.data_refusal(), None);
}

async fn deleted_checkpoints_are_put_back_by_the_running_server(server: &TestServer) {
    let audit = server.state().runtime().audit();
    for name in ["a", "b", "c"] {
        server.register(name).await;
    }
    assert!(audit.checkpoint().await);
    // Rewriting needs the checkpoints gone; with none left, only the links are checked.
    rewrite_and_rehash(server).await;
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("DELETE FROM audit_checkpoints").execute(pool).await.unwrap();
    });
    let (ok, text) = verify_cli(server);
    assert!(ok && text.contains("no signed checkpoint yet"), "{text}");
    // The server's next checkpoint puts back the one it sealed, and the rewrite shows.
    server.register("d").await;
    assert!(audit.checkpoint().await);
    let (ok, text) = verify_cli(server);
    assert!(!ok && text.contains("row 3: differs from the signed checkpoint"), "{text}");
}
