//! Account deletion (issue #14, GDPR erasure): asking for it with the password, cancelling it,
//! asking again; the last-admin rule, at the request and again when the erasure runs; the
//! erasure itself, which leaves the person in no table, what they wrote attributed to "Deleted
//! user", their webhooks disabled and the audit chain verifiable; and
//! `boardroom admin run-deletions`.

use boardroom::ssrf::Allowlist;
use boardroom::storage::ChainReport;
use boardroom_protocol::boards::DELETED_USER_NAME;
use boardroom_protocol::{boards, identity, webhooks};
use chrono::Utc;
use reqwest::Method;
use serde_json::json;

use crate::harness::socket::{connect, msg, subscribed, JSON};
use crate::harness::{both_backends, both_backends_with, column, id, item, TestServer, TestUser};

both_backends!(request_cancel_and_request_again, a_wrong_password_changes_nothing);

both_backends_with!(
    no_grace;
    the_last_admin_is_held_back_at_the_request_and_at_the_run,
    erasure_leaves_the_person_in_no_table,
    run_deletions_command_erases_due_accounts,
    rows_from_before_erasable_ones_are_resealed_then_erased,
);

fn no_grace(settings: &mut boardroom::config::Settings) {
    settings.deletion_grace_days = 0;
    settings.webhook_allow = Allowlist::parse("127.0.0.1:9").unwrap();
}

async fn ask(
    server: &TestServer,
    user: &TestUser,
    password: Option<&str>,
) -> crate::harness::Reply {
    let body = identity::RequestDeletion { password: password.map(str::to_owned) };
    server.send_body(Method::POST, "/api/v1/me/deletion", &user.access_token, &body).await
}

async fn cancel(server: &TestServer, user: &TestUser) -> crate::harness::Reply {
    server.call(Method::DELETE, "/api/v1/me/deletion").bearer(&user.access_token).send().await
}

async fn me(server: &TestServer, user: &TestUser) -> identity::Me {
    server.get_as("/api/v1/me", &user.access_token).await.expect_as(200)
}

async fn audit_actions(server: &TestServer) -> Vec<String> {
    server.flush_audit().await;
    let rows: Vec<(String,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT action FROM audit_log WHERE action LIKE 'account.%' ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    rows.into_iter().map(|(action,)| action).collect()
}

async fn run_due(server: &TestServer) -> boardroom::deletion::Ran {
    boardroom::deletion::run_due(server.state()).await.unwrap()
}

async fn request_cancel_and_request_again(server: &TestServer) {
    let alice = server.register("alice").await;
    let before = Utc::now();
    let scheduled: identity::DeletionScheduled =
        ask(server, &alice, Some(&alice.password)).await.expect_as(202);
    // The default grace period: 30 days.
    let grace = scheduled.scheduled_for - before;
    assert!(grace >= chrono::Duration::days(30), "{grace}");
    assert!(grace < chrono::Duration::days(30) + chrono::Duration::minutes(1), "{grace}");
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, Some(scheduled.scheduled_for));
    // Asking again while pending keeps the time.
    let again: identity::DeletionScheduled =
        ask(server, &alice, Some(&alice.password)).await.expect_as(202);
    assert_eq!(again.scheduled_for, scheduled.scheduled_for);
    // During the grace period the account signs in as before.
    server.login(&alice).await.expect(200);

    cancel(server, &alice).await.expect(204);
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, None);
    cancel(server, &alice).await.expect_error(404, "not_found");
    // Nothing is due: a run erases nobody.
    assert_eq!(run_due(server).await, boardroom::deletion::Ran::default());

    let renewed: identity::DeletionScheduled =
        ask(server, &alice, Some(&alice.password)).await.expect_as(202);
    assert!(renewed.scheduled_for > scheduled.scheduled_for);
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, Some(renewed.scheduled_for));
    // Not due for 30 days.
    assert_eq!(run_due(server).await.erased, 0);
    me(server, &alice).await;
    assert_eq!(
        audit_actions(server).await,
        [
            "account.deletion_requested",
            "account.deletion_requested",
            "account.deletion_cancelled",
            "account.deletion_requested",
        ]
    );
}

async fn a_wrong_password_changes_nothing(server: &TestServer) {
    let alice = server.register("alice").await;
    // The same code as a wrong current password on a password change.
    ask(server, &alice, Some("not-the-password")).await.expect_error(401, "invalid_credentials");
    let change = identity::ChangePassword {
        current_password: "not-the-password".into(),
        new_password: "a-new-password-long-enough".into(),
    };
    server
        .send_body(Method::POST, "/api/v1/auth/password", &alice.access_token, &change)
        .await
        .expect_error(401, "invalid_credentials");
    ask(server, &alice, None).await.expect_error(422, "validation_failed");
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, None);
    assert_eq!(audit_actions(server).await, ["account.deletion_refused"]);
    // An API key cannot ask.
    let org = server.create_org(&alice, "Acme").await;
    let (_, key) = server.create_key(&alice, &org, &["boards:read"]).await;
    let body = identity::RequestDeletion { password: Some(alice.password.clone()) };
    let by_key = server.send_body(Method::POST, "/api/v1/me/deletion", &key, &body).await;
    assert_eq!(by_key.status, 403, "{:?}", by_key.body);
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, None);
}

async fn the_last_admin_is_held_back_at_the_request_and_at_the_run(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let acme = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &acme, &bob, "member").await;
    // An organization of hers alone does not hold her back.
    let solo = server.create_org(&alice, "Solo").await;

    let refused = ask(server, &alice, Some(&alice.password)).await;
    refused.expect_error(409, "last_admin");
    let message = refused.body["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("Acme") && message.contains(&acme), "{message}");
    assert!(!message.contains(&solo), "{message}");
    assert_eq!(me(server, &alice).await.deletion_scheduled_for, None);

    server.set_org_role(&alice, &acme, &bob, "admin").await.expect(200);
    ask(server, &alice, Some(&alice.password)).await.expect(202);
    // Before the run, Bob is made a member again: Alice would leave Acme without an admin.
    server.set_org_role(&alice, &acme, &bob, "member").await.expect(200);
    let ran = run_due(server).await;
    assert_eq!((ran.erased, ran.held_back), (0, 1));
    assert!(me(server, &alice).await.deletion_scheduled_for.is_some());

    server.set_org_role(&alice, &acme, &bob, "admin").await.expect(200);
    let ran = run_due(server).await;
    assert_eq!((ran.erased, ran.held_back), (1, 0));
    server.get_as("/api/v1/me", &alice.access_token).await.expect(401);
    // Bob runs Acme on his own now.
    let members: serde_json::Value = server
        .get_as(&format!("/api/v1/orgs/{acme}/members"), &bob.access_token)
        .await
        .expect(200)
        .clone();
    assert!(!members.to_string().contains(&alice.id), "{members}");
}

/// Where `needle` (a user id or an email) still stands in the database, as `table` names: every
/// table of the schema, every column (ids as text and as the bytes SQLite stores).
async fn tables_holding(server: &TestServer, user: &TestUser) -> Vec<String> {
    let uuid = id(&user.id);
    let needles = [user.id.clone(), uuid.simple().to_string(), user.email.clone()];
    let store = server.state().store();
    let postgres = matches!(store.pool(), boardroom::storage::Pool::Postgres(_));
    let listing = if postgres {
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    };
    let tables: Vec<(String,)> = boardroom::on_pool!(store, pool => {
        sqlx::query_as(listing).fetch_all(pool).await.unwrap()
    });
    assert!(tables.len() > 20, "{tables:?}");
    let mut found = Vec::new();
    for (table,) in tables {
        let sql = match store.pool() {
            boardroom::storage::Pool::Postgres(_) => {
                format!("SELECT count(*) FROM {table} t WHERE t::text ILIKE $1")
            }
            boardroom::storage::Pool::Sqlite(pool) => {
                let columns: Vec<(String,)> =
                    sqlx::query_as("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                // quote() shows a BLOB as X'…' hex, so an id stored as bytes is found too.
                let row: Vec<String> =
                    columns.iter().map(|(c,)| format!("quote(\"{c}\")")).collect();
                format!("SELECT count(*) FROM \"{table}\" WHERE ({}) LIKE $1", row.join(" || "))
            }
        };
        for needle in &needles {
            let (n,): (i64,) = boardroom::on_pool!(store, pool => {
                sqlx::query_as(&sql).bind(format!("%{needle}%")).fetch_one(pool).await.unwrap()
            });
            if n > 0 {
                found.push(table.clone());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

async fn erasure_leaves_the_person_in_no_table(server: &TestServer) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let org = server.create_org(&alice, "Acme").await;
    server.add_member(&alice, &org, &bob, "member").await;
    let board = server.create_board(&alice, &org, "Launch").await;
    let b = board.board.id.to_string();
    let group = board.groups[0].id.to_string();
    server.add_board_member(&alice, &b, &bob, "owner").await;
    let people: boards::Column = server
        .post(
            &format!("/api/v1/boards/{b}/columns"),
            Some(&alice.access_token),
            &column("Owner", "person"),
        )
        .await
        .expect_as(201);
    // What Bob leaves behind: an item naming him, a comment, a webhook, a key, a failed login.
    let created = server.create_item(&bob, &b, &item(&group, "Bob's task")).await;
    let mut values = std::collections::BTreeMap::new();
    values.insert(people.id, json!([bob.id, alice.id]));
    let update = boards::UpdateItem { values, ..Default::default() };
    server
        .send_body(
            Method::PATCH,
            &format!("/api/v1/boards/{b}/items/{}", created.id),
            &bob.access_token,
            &update,
        )
        .await
        .expect(200);
    let comment = boards::CreateUpdate { body: "Done by me".into(), parent_id: None };
    server
        .post(
            &format!("/api/v1/boards/{b}/items/{}/updates", created.id),
            Some(&bob.access_token),
            &comment,
        )
        .await
        .expect(201);
    let hook =
        webhooks::CreateWebhook { url: "http://127.0.0.1:9/hook".into(), events: vec!["*".into()] };
    let hook: webhooks::CreatedWebhook = server
        .post(&format!("/api/v1/boards/{b}/webhooks"), Some(&bob.access_token), &hook)
        .await
        .expect_as(201);
    server.create_key(&bob, &org, &["boards:read"]).await;
    let wrong =
        identity::Login { email: bob.email.clone(), password: "wrong-password-here".into() };
    server.post("/api/v1/auth/login", None, &wrong).await.expect(401);
    server.flush_audit().await;
    let before = tables_holding(server, &bob).await;
    for table in [
        "users",
        "sessions",
        "memberships",
        "board_members",
        "items",
        "updates",
        "webhooks",
        "api_keys",
        "audit_log",
        "board_events",
    ] {
        assert!(before.iter().any(|t| t == table), "{table} not found before: {before:?}");
    }

    ask(server, &bob, Some(&bob.password)).await.expect(202);
    // A socket of his, subscribed to the board, is open when the erasure runs.
    let mut socket = connect(server, &bob.access_token, JSON).await;
    subscribed(&socket.request(msg::subscribe(&b)).await);
    let ran = run_due(server).await;
    assert_eq!((ran.erased, ran.held_back, ran.failed), (1, 0, 0));
    assert_eq!(socket.closed().await, Some(4001));
    server.flush_audit().await;
    assert_eq!(tables_holding(server, &bob).await, Vec::<String>::new());
    // Alice is still everywhere she was.
    assert!(tables_holding(server, &alice).await.contains(&"users".to_owned()));

    // Bob is gone: his token and his password open nothing.
    server.get_as("/api/v1/me", &bob.access_token).await.expect(401);
    server.login(&bob).await.expect(401);

    // What he wrote stays, as "Deleted user".
    let snapshot: boards::Snapshot =
        server.get_as(&format!("/api/v1/boards/{b}"), &alice.access_token).await.expect_as(200);
    let kept = snapshot.items.iter().find(|i| i.item.id == created.id).unwrap();
    assert_eq!(kept.item.created_by, None);
    assert_eq!(kept.item.created_by_name.as_deref(), Some(DELETED_USER_NAME));
    let cell = kept.item.values.get(&people.id).unwrap();
    assert_eq!(cell, &json!([uuid::Uuid::nil(), alice.id]));
    let comments: boards::UpdateList = server
        .get_as(&format!("/api/v1/boards/{b}/items/{}/updates", created.id), &alice.access_token)
        .await
        .expect_as(200);
    assert_eq!(comments.updates.len(), 1);
    assert_eq!(comments.updates[0].author_id, None);
    assert_eq!(comments.updates[0].author_name.as_deref(), Some(DELETED_USER_NAME));
    assert_eq!(comments.updates[0].body, "Done by me");

    // His webhook is disabled; his board role and membership ended.
    let hooks: webhooks::WebhookList = server
        .get_as(&format!("/api/v1/boards/{b}/webhooks"), &alice.access_token)
        .await
        .expect_as(200);
    let kept = hooks.webhooks.iter().find(|w| w.id == hook.webhook.id).unwrap();
    assert!(!kept.enabled);
    assert_eq!(kept.disabled_reason.as_deref(), Some("creator_deleted"));
    assert_eq!(kept.created_by, None);

    // The audit chain still verifies, in process and through the binary, and records the
    // erasure under Bob's keyed pseudonym.
    assert!(matches!(server.verify_audit().await, ChainReport::Intact(_)));
    let (ok, text) = crate::audit::verify_cli(server);
    assert!(ok, "{text}");
    let pseudonym = boardroom_actors::audit_chain::pseudonym(&server.audit_key(), id(&bob.id));
    let (target,): (Option<String>,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT target FROM audit_log WHERE action = 'account.deleted'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(target.as_deref(), Some(pseudonym.as_str()));
    let (erased,): (i64,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE erased IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert!(erased >= 5, "{erased}");
}

async fn run_deletions_command_erases_due_accounts(server: &TestServer) {
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    ask(server, &carol, Some(&carol.password)).await.expect(202);
    server.flush_audit().await;
    let run = || {
        let out = server.cli(&["admin", "run-deletions"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run().starts_with("erased 1 account(s); 0 held back"));
    server.get_as("/api/v1/me", &carol.access_token).await.expect(401);
    me(server, &dave).await;
    assert!(run().starts_with("erased 0 account(s)"));
    assert_eq!(tables_holding(server, &carol).await, Vec::<String>::new());
    assert!(matches!(server.verify_audit().await, ChainReport::Intact(_)));
}

async fn rows_from_before_erasable_ones_are_resealed_then_erased(server: &TestServer) {
    use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};

    let bob = server.register("bob").await;
    server.flush_audit().await;
    // A row as builds before migration 0014 wrote it: hashed over its raw fields (a store
    // without the audit key still writes those), then sealed by a checkpoint.
    let legacy = boardroom::storage::Store::open(&server.database.url, 2).await.unwrap();
    let mut event = AuditEvent::new(AuditAction::LoginSucceeded);
    event.actor_id = Some(id(&bob.id));
    event.ip = Some("203.0.113.7".into());
    event.metadata = json!({ "email": bob.email, "method": "password" });
    legacy.append(&[event]).await.unwrap();
    legacy.close().await;
    assert!(server.state().runtime().audit().checkpoint().await);
    let versions = || async {
        let rows: Vec<(i32, i64)> = boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query_as("SELECT hash_version, count(*) FROM audit_log GROUP BY hash_version ORDER BY hash_version")
                .fetch_all(pool)
                .await
                .unwrap()
        });
        rows
    };
    assert_eq!(versions().await.first().map(|v| v.0), Some(1));
    assert!(matches!(server.verify_audit().await, ChainReport::Intact(_)));

    // What the server does at start: re-hash them as version 2, re-seal the checkpoints.
    let key = server.audit_key();
    let resealed = server.state().store().reseal_legacy_audit_rows(&key).await.unwrap();
    assert!(matches!(resealed, boardroom::storage::Resealed::Rows(n) if n >= 1), "{resealed:?}");
    assert!(versions().await.iter().all(|(version, _)| *version == 2));
    let verified = match server.verify_audit().await {
        ChainReport::Intact(verified) => verified,
        broken => panic!("{broken:?}"),
    };
    assert!(verified.signed_through.is_some());
    assert_eq!(
        server.state().store().reseal_legacy_audit_rows(&key).await.unwrap(),
        boardroom::storage::Resealed::Nothing
    );

    // Now the old row can be erased like the others.
    ask(server, &bob, Some(&bob.password)).await.expect(202);
    assert_eq!(run_due(server).await.erased, 1);
    server.flush_audit().await;
    assert_eq!(tables_holding(server, &bob).await, Vec::<String>::new());
    let (ips,): (i64,) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT count(*) FROM audit_log WHERE ip = '203.0.113.7'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(ips, 0);
    assert!(matches!(server.verify_audit().await, ChainReport::Intact(_)));
}
