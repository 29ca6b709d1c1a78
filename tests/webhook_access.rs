//! Webhooks see no more than their creator may: a key that could not read every subscribed kind
//! cannot create or repoint a webhook (403 `insufficient_scope`); a webhook whose creator loses
//! access to its board (removed from the organization or the board, role lowered below owner,
//! key revoked, narrowed or expired) is disabled with a `webhook.disabled` audit row, and its
//! receiver gets nothing more; URL changes are audited by host.
//!
//! Deliveries go to the receiver of `tests/webhooks.rs`. After each loss the board changes
//! again and a control webhook (the org admin's, in a session) must get that change, while the
//! lost one's receiver gets nothing past the loss and its outbox stays empty.

use std::time::Duration;

use boardroom_protocol::api_keys::{ApiKey, CreateApiKey, CreatedApiKey, UpdateApiKey};
use boardroom_protocol::events::EventData;
use boardroom_protocol::identity::SessionAnswer;
use boardroom_protocol::webhooks::{
    CreatedWebhook, UpdateWebhook, Webhook, WebhookList, WebhookPayload,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::boards::{fixture, Fixture};
use crate::harness::{both_backends_with, id, Backend, TestDatabase, TestServer, TestUser};
use crate::webhooks::{add_item, hook, hooks_path, wait_until, with_receiver, Receiver};

both_backends_with!(
    with_receiver;
    narrow_keys_cannot_make_webhooks_that_see_more,
    the_superadmin_bypass_cannot_make_webhooks,
    a_url_change_is_audited_by_host,
    removal_from_the_organization_disables_the_webhook,
    removal_from_the_board_disables_the_webhook,
    a_board_role_below_owner_disables_the_webhook,
    losing_org_admin_disables_the_webhook,
    a_revoked_key_disables_the_webhook,
    a_narrowed_key_disables_the_webhook,
    an_expired_key_is_caught_before_sending,
);

mod webhooks_from_before_0008_are_disabled {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::webhooks_from_before_0008_are_disabled(crate::harness::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::webhooks_from_before_0008_are_disabled(crate::harness::Backend::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Every scope a key can have.
const ALL_SCOPES: &[&str] =
    &["boards:read", "boards:write", "items:read", "items:write", "updates:read", "updates:write"];

async fn create_hook_as(
    server: &TestServer,
    f: &Fixture,
    token: &str,
    url: &str,
    events: &[&str],
) -> crate::harness::Reply {
    server.post(&hooks_path(f), Some(token), &hook(url, events)).await
}

/// Creates a webhook with `token`; answers it (with its secret).
async fn created_as(
    server: &TestServer,
    f: &Fixture,
    token: &str,
    url: &str,
    events: &[&str],
) -> CreatedWebhook {
    create_hook_as(server, f, token, url, events).await.expect_as(201)
}

/// `PATCH` of the webhook at `path` with `token`.
async fn change(
    server: &TestServer,
    path: &str,
    token: &str,
    body: &UpdateWebhook,
) -> crate::harness::Reply {
    server.send_body(Method::PATCH, path, token, body).await
}

/// Only `enabled` changed.
fn enabled(on: bool) -> UpdateWebhook {
    UpdateWebhook { enabled: Some(on), ..UpdateWebhook::default() }
}

/// The board's webhook `hook` as its owner lists it.
async fn listed(server: &TestServer, f: &Fixture, hook: &str) -> Webhook {
    let all = server.get_as(&hooks_path(f), &f.owner.access_token).await;
    let all = all.expect_as::<WebhookList>(200).webhooks;
    all.into_iter().find(|w| w.id == id(hook)).unwrap()
}

/// Waits (up to 10 s) until `hook` is disabled; answers its listing.
async fn wait_disabled(server: &TestServer, f: &Fixture, hook: &str) -> Webhook {
    for _ in 0..200 {
        let row = listed(server, f, hook).await;
        if !row.enabled {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook {hook} was not disabled: {:?}", listed(server, f, hook).await);
}

/// Whether `payload` is the creation of an item named `name`.
fn creates_item(payload: &WebhookPayload, name: &str) -> bool {
    matches!(&payload.event, EventData::ItemCreated(item) if item.name == name)
}

/// The metadata of the `webhook.disabled` rows naming `hook`.
async fn disabled_rows(server: &TestServer, hook: &str) -> Vec<Value> {
    audit_metadata(server, "webhook.disabled", hook).await
}

async fn audit_metadata(server: &TestServer, action: &str, target: &str) -> Vec<Value> {
    server.flush_audit().await;
    let rows: Vec<(sqlx::types::Json<Value>,)> = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT metadata FROM audit_log WHERE action = $1 AND target = $2 ORDER BY seq")
            .bind(action)
            .bind(target)
            .fetch_all(pool)
            .await
            .unwrap()
    });
    rows.into_iter().map(|(m,)| m.0).collect()
}

/// Outbox rows of `hook`.
async fn outbox(server: &TestServer, hook: &str) -> i64 {
    let hook: uuid::Uuid = hook.parse().unwrap();
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(hook)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Carol: an org member who owns the fixture's board (not an org admin).
async fn board_owner(server: &TestServer, f: &Fixture) -> TestUser {
    let carol = server.register("carol").await;
    server.add_member(&f.owner, &f.org, &carol, "member").await;
    server.add_board_member(&f.owner, &f.board, &carol, "owner").await;
    carol
}

/// A webhook for every kind made with `token` to `/lost`, plus the admin's control webhook to
/// `/control`; one item is delivered to both. Answers the first webhook's id.
async fn watched(server: &TestServer, f: &Fixture, token: &str) -> String {
    let receiver = Receiver::of(server);
    let made = created_as(server, f, token, &receiver.url("/lost"), &["*"]).await;
    created_as(server, f, &f.owner.access_token, &receiver.url("/control"), &["item.created"])
        .await;
    add_item(server, f, "Before").await;
    wait_until(Duration::from_secs(10), "the item before the loss", || {
        receiver.delivered("/lost").iter().any(|b| creates_item(b, "Before"))
            && receiver.delivered("/control").len() == 1
    })
    .await;
    made.webhook.id.to_string()
}

/// After the loss: the webhook is disabled with `reason`, one audit row says so, and a later
/// item reaches the control webhook but not the lost one.
async fn assert_lost(server: &TestServer, f: &Fixture, hook: &str, reason: &str) {
    let receiver = Receiver::of(server);
    let row = wait_disabled(server, f, hook).await;
    assert_eq!(row.disabled_reason.as_deref(), Some(reason), "{row:?}");
    let rows = disabled_rows(server, hook).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["reason"], reason, "{rows:?}");
    assert_eq!(rows[0]["board_id"], json!(f.board));
    let before = outbox(server, hook).await;
    let seen = receiver.hits("/lost").len();
    add_item(server, f, "After").await;
    wait_until(Duration::from_secs(10), "the item after the loss at the control", || {
        receiver.delivered("/control").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits("/lost").len(), seen, "the lost webhook was called after the loss");
    assert!(
        !receiver.delivered("/lost").iter().any(|b| creates_item(b, "After")),
        "the item after the loss leaked"
    );
    assert_eq!(outbox(server, hook).await, before, "a disabled webhook enqueued");
}

// ---------------------------------------------------------------------------------------------
// Creating and changing
// ---------------------------------------------------------------------------------------------

async fn narrow_keys_cannot_make_webhooks_that_see_more(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let url = receiver.url("/hook");
    // boards:write alone may manage the board but reads neither items nor updates.
    let (_, narrow) = server.create_key(&f.owner, &f.org, &["boards:read", "boards:write"]).await;
    let (_, items_only) =
        server.create_key(&f.owner, &f.org, &["boards:write", "items:read"]).await;
    let (broad_id, broad) = server.create_key(&f.owner, &f.org, ALL_SCOPES).await;
    let too_wide: [(&str, &[&str]); 5] = [
        (&narrow, &["*"]),
        (&narrow, &["item.created"]),
        (&narrow, &["board.updated", "update.created"]),
        (&items_only, &["*"]),
        (&items_only, &["item.created", "update.edited"]),
    ];
    for (token, events) in too_wide {
        create_hook_as(server, &f, token, &url, events)
            .await
            .expect_error(403, "insufficient_scope");
    }
    let none = server.get_as(&hooks_path(&f), &f.owner.access_token).await;
    assert_eq!(none.expect_as::<WebhookList>(200).webhooks, vec![], "a refusal created something");

    // What the key can read itself is fine; so is everything with a broad key or a session.
    let own = created_as(server, &f, &narrow, &url, &["board.updated", "column.created"]).await;
    created_as(server, &f, &items_only, &url, &["item.created"]).await;
    let by_key = created_as(server, &f, &broad, &url, &["*"]).await;
    assert_eq!(by_key.webhook.created_by_key, Some(id(&broad_id)));
    let by_session = created_as(server, &f, &f.owner.access_token, &url, &["*"]).await.webhook;
    assert_eq!((by_session.created_by, by_session.created_by_key), (Some(id(&f.owner.id)), None));

    // Changing: the narrow key can neither widen its own webhook nor repoint the session's.
    let own_path = format!("{}/{}", hooks_path(&f), own.webhook.id);
    let session_path = format!("{}/{}", hooks_path(&f), by_session.id);
    let kinds = |kinds: &[&str]| UpdateWebhook {
        events: Some(kinds.iter().map(|k| (*k).to_owned()).collect()),
        ..UpdateWebhook::default()
    };
    let repoint = UpdateWebhook { url: Some(receiver.url("/stolen")), ..UpdateWebhook::default() };
    let refused: Vec<(&str, UpdateWebhook)> = vec![
        (&own_path, kinds(&["*"])),
        (&own_path, kinds(&["item.updated"])),
        (&session_path, repoint),
        (&session_path, enabled(true)),
    ];
    for (path, body) in &refused {
        change(server, path, &narrow, body).await.expect_error(403, "insufficient_scope");
    }
    let still = listed(server, &f, &by_session.id.to_string()).await;
    assert_eq!(still.url, url, "a refused change changed the URL");
    // Turning a webhook off needs no more than owning the board.
    let off: Webhook = change(server, &session_path, &narrow, &enabled(false)).await.expect_as(200);
    assert_eq!((off.enabled, off.disabled_reason.as_deref()), (false, Some("owner")));
    // The broad key may turn it back on, and is then the one it rides on.
    let on: Webhook = change(server, &session_path, &broad, &enabled(true)).await.expect_as(200);
    assert_eq!(
        (on.enabled, on.created_by_key, on.disabled_reason),
        (true, Some(id(&broad_id)), None)
    );
}

/// A superadmin reaches any board through the audited bypass, but is no member whose access a
/// webhook could go on riding: refused, rather than disabled at the first delivery.
async fn the_superadmin_bypass_cannot_make_webhooks(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let root = server.register("root").await;
    let grant = std::process::Command::new(env!("CARGO_BIN_EXE_boardroom"))
        .args(["admin", "grant-superadmin", &root.email])
        .env("DATABASE_URL", &server.database.url)
        .env("BOARDROOM_DATA_DIR", server.database.dir.path())
        .env("BOARDROOM_LOG", "error")
        .output()
        .unwrap();
    assert!(grant.status.success(), "{}", String::from_utf8_lossy(&grant.stderr));
    // The flag is read at sign-in.
    let token = server.login(&root).await.expect_as::<SessionAnswer>(200).access_token;
    server.get_as(&hooks_path(&f), &token).await.expect_as::<WebhookList>(200);
    create_hook_as(server, &f, &token, &receiver.url("/root"), &["*"])
        .await
        .expect_error(403, "forbidden");
    let made =
        created_as(server, &f, &f.owner.access_token, &receiver.url("/owner"), &["item.created"])
            .await;
    let hook = made.webhook.id.to_string();
    let path = format!("{}/{hook}", hooks_path(&f));
    let repoint = UpdateWebhook { url: Some(receiver.url("/root")), ..UpdateWebhook::default() };
    change(server, &path, &token, &repoint).await.expect_error(403, "forbidden");
    assert_eq!(listed(server, &f, &hook).await.url, receiver.url("/owner"));
    // Turning it off stays open to them, as to any owner.
    let off: Webhook = change(server, &path, &token, &enabled(false)).await.expect_as(200);
    assert!(!off.enabled);
}

async fn a_url_change_is_audited_by_host(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let made = created_as(
        server,
        &f,
        &f.owner.access_token,
        &receiver.url("/first?token=s3cr3t-one"),
        &["item.created"],
    )
    .await;
    let hook = made.webhook.id.to_string();
    let path = format!("{}/{hook}", hooks_path(&f));
    let to = "https://hooks.example.org/in/s3cr3t-two";
    let repoint = UpdateWebhook { url: Some(to.into()), ..UpdateWebhook::default() };
    let changed: Webhook =
        change(server, &path, &f.owner.access_token, &repoint).await.expect_as(200);
    assert_eq!(changed.url, to);
    let rows = audit_metadata(server, "webhook.updated", &hook).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["url"], json!({"from_host": "127.0.0.1", "to_host": "hooks.example.org"}));
    assert_eq!(rows[0]["board_id"], json!(f.board));
    let dump = format!("{rows:?}");
    assert!(!dump.contains("s3cr3t"), "a URL's path or query reached the audit log: {dump}");
    // Changing only the kinds is audited too, without a url entry.
    let every = UpdateWebhook { events: Some(vec!["*".into()]), ..UpdateWebhook::default() };
    change(server, &path, &f.owner.access_token, &every).await.expect_as::<Webhook>(200);
    let rows = audit_metadata(server, "webhook.updated", &hook).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1]["events"], json!({"from": ["item.created"], "to": ["*"]}));
    assert!(rows[1].get("url").is_none(), "{rows:?}");
    // Enabling an enabled webhook with a key changes nothing but whose access it rides on:
    // that is audited too.
    let (key_id, key) = server.create_key(&f.owner, &f.org, ALL_SCOPES).await;
    change(server, &path, &key, &enabled(true)).await.expect_as::<Webhook>(200);
    let rows = audit_metadata(server, "webhook.updated", &hook).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[2]["creator"],
        json!({
            "from": {"user_id": f.owner.id, "key_id": null},
            "to": {"user_id": f.owner.id, "key_id": key_id},
        })
    );
    assert!(rows[2].get("enabled").is_none() && rows[2].get("url").is_none(), "{rows:?}");
}

// ---------------------------------------------------------------------------------------------
// Losing access
// ---------------------------------------------------------------------------------------------

async fn removal_from_the_organization_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let carol = board_owner(server, &f).await;
    let hook = watched(server, &f, &carol.access_token).await;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{}/members/{}", f.org, carol.id),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    assert_lost(server, &f, &hook, "creator_left_organization").await;
}

async fn removal_from_the_board_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let carol = board_owner(server, &f).await;
    let hook = watched(server, &f, &carol.access_token).await;
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/boards/{}/members/{}", f.board, carol.id),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    assert_lost(server, &f, &hook, "creator_lost_board").await;
}

async fn a_board_role_below_owner_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let carol = board_owner(server, &f).await;
    let hook = watched(server, &f, &carol.access_token).await;
    server.add_board_member(&f.owner, &f.board, &carol, "editor").await;
    assert_lost(server, &f, &hook, "creator_not_owner").await;
}

/// An org admin acts as owner on every board; an admin who is no board member and becomes a
/// plain member no longer sees the board.
async fn losing_org_admin_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let dave = server.register("dave").await;
    server.add_member(&f.owner, &f.org, &dave, "admin").await;
    let hook = watched(server, &f, &dave.access_token).await;
    server.set_org_role(&f.owner, &f.org, &dave, "member").await.expect(200);
    assert_lost(server, &f, &hook, "creator_lost_board").await;
}

async fn a_revoked_key_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let (key_id, key) = server.create_key(&f.owner, &f.org, ALL_SCOPES).await;
    let hook = watched(server, &f, &key).await;
    assert_eq!(listed(server, &f, &hook).await.created_by_key, Some(id(&key_id)));
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{}/api-keys/{key_id}", f.org),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    assert_lost(server, &f, &hook, "key_revoked_or_expired").await;
}

async fn a_narrowed_key_disables_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let (key_id, key) = server.create_key(&f.owner, &f.org, ALL_SCOPES).await;
    let hook = watched(server, &f, &key).await;
    let narrower = UpdateApiKey {
        scopes: Some(vec!["boards:read".into(), "boards:write".into(), "items:read".into()]),
        ..UpdateApiKey::default()
    };
    server
        .send_body(
            Method::PATCH,
            &format!("/api/v1/orgs/{}/api-keys/{key_id}", f.org),
            &f.owner.access_token,
            &narrower,
        )
        .await
        .expect_as::<ApiKey>(200);
    assert_lost(server, &f, &hook, "key_lacks_scope").await;
}

/// Nothing tells the server when a key expires: the check before each attempt catches it.
async fn an_expired_key_is_caught_before_sending(server: &TestServer) {
    let f = fixture(server).await;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let short_lived = CreateApiKey {
        name: "short-lived".into(),
        scopes: ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: None,
        expires_at: Some(expires_at),
    };
    let made = server
        .post(
            &format!("/api/v1/orgs/{}/api-keys", f.org),
            Some(&f.owner.access_token),
            &short_lived,
        )
        .await;
    let key = made.expect_as::<CreatedApiKey>(201).key;
    let receiver = Receiver::of(server);
    let made = created_as(server, &f, &key, &receiver.url("/lost"), &["item.created"]).await;
    let hook = made.webhook.id.to_string();
    created_as(server, &f, &f.owner.access_token, &receiver.url("/control"), &["item.created"])
        .await;
    let wait = (expires_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    add_item(server, &f, "After").await;
    let row = wait_disabled(server, &f, &hook).await;
    assert_eq!(row.disabled_reason.as_deref(), Some("key_revoked_or_expired"), "{row:?}");
    assert_eq!(disabled_rows(server, &hook).await.len(), 1);
    wait_until(Duration::from_secs(10), "the control delivery", || {
        receiver.delivered("/control").len() == 1
    })
    .await;
    assert!(receiver.hits("/lost").is_empty(), "a delivery went out on an expired key");
}

// ---------------------------------------------------------------------------------------------
// Upgrading
// ---------------------------------------------------------------------------------------------

/// A database migrated up to 0007 holds an enabled webhook whose credential was never recorded
/// (it may have been made with a narrow key); starting the server (0008) disables it as
/// `creator_unknown`, and nothing is delivered for it.
async fn webhooks_from_before_0008_are_disabled(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else { return };
    let store = boardroom::storage::Store::open(&database.settings().effective_database_url(), 2)
        .await
        .unwrap();
    let (user, org, board, hook) =
        (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let at = chrono::Utc::now();
    boardroom::on_pool!(store, pool => {
        let mut migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let before: Vec<_> = migrator.migrations.iter().filter(|m| m.version < 8).cloned().collect();
        migrator.migrations = before.into();
        migrator.run(pool).await.unwrap();
        sqlx::query("INSERT INTO users (id, email, name, created_at) VALUES ($1, 'old@example.com', 'Old', $2)")
            .bind(user).bind(at).execute(pool).await.unwrap();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'Old', $2)")
            .bind(org).bind(at).execute(pool).await.unwrap();
        sqlx::query("INSERT INTO boards (id, organization_id, name, created_by, created_at, updated_at) VALUES ($1, $2, 'Old', $3, $4, $4)")
            .bind(board).bind(org).bind(user).bind(at).execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO webhooks (id, organization_id, board_id, url, events, secret, enabled, \
             consecutive_failures, last_enqueued_seq, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, 'https://example.com/old', $4, 'whsec_old', true, 0, 0, $5, $6, $6)",
        )
        .bind(hook).bind(org).bind(board).bind(sqlx::types::Json(vec!["*"])).bind(user).bind(at)
        .execute(pool).await.unwrap();
    });
    store.close().await;

    let server = TestServer::start_with(database, with_receiver).await;
    let (enabled, reason, key): (bool, Option<String>, Option<uuid::Uuid>) = boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_as("SELECT enabled, disabled_reason, created_by_key FROM webhooks WHERE id = $1")
            .bind(hook).fetch_one(pool).await.unwrap()
    });
    assert!(!enabled, "a webhook of unknown credential stayed enabled");
    assert_eq!(reason.as_deref(), Some("creator_unknown"));
    assert_eq!(key, None);
    server.stop().await;
}
