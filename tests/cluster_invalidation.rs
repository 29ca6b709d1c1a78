//! Invalidations, tickets and per-key limits across nodes: three `boardroom` processes on one
//! Postgres database and a NATS server (`harness::cluster`). A change made on one node holds on
//! the others within a second (REST and open sockets), a ticket made on one node is redeemed on
//! another, once, a key's limit is divided among the live nodes, and the CLI's superadmin grant
//! reaches the nodes' caches.
//!
//! Sockets re-check their credential only every minute here, so what closes them within the
//! second is the invalidation, not the periodic re-check; and every cache on the other nodes is
//! warmed before the change, so what refuses there is the invalidation, not a cache miss.

use std::time::{Duration, Instant};

use boardroom_protocol::api_keys::{CreateApiKey, CreatedApiKey};
use boardroom_protocol::boards::SetMember;
use boardroom_protocol::{orgs, ClientMessage};
use reqwest::Method;

use crate::harness::cluster::{Cluster, Node, NodeSettings};
use crate::harness::socket::{self, msg, Auth, Socket, JSON};
use crate::harness::TestUser;

/// What "at once" means across nodes.
const WITHIN: Duration = Duration::from_secs(1);

/// Three nodes whose sockets re-check their credential only once a minute; `None` (the test is
/// skipped) without Postgres outside CI.
async fn three_nodes() -> Option<Cluster> {
    let env = [("BOARDROOM_WS_AUTH_RECHECK_SECS", "60"), ("BOARDROOM_KEY_CACHE_TTL_SECS", "30")];
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Cluster::start_with(3, NodeSettings { env, ..NodeSettings::default() }).await
}

async fn bearer_socket(node: &Node, token: &str) -> Socket {
    socket::try_connect(node, Auth::Bearer(token), Some(JSON), None).await.unwrap()
}

/// Waits until `GET path` as `token` answers `status` on `node`, at most [`WITHIN`] after
/// `since`.
async fn answers_within(node: &Node, path: &str, token: &str, status: u16, since: Instant) {
    loop {
        let now = node.get_as(path, token).await.status;
        if now == status {
            return;
        }
        assert!(since.elapsed() < WITHIN, "{path} on {} still answers {now}", node.id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for `socket` to close, at most [`WITHIN`] after `since`: its close code.
async fn closed_within(socket: &mut Socket, since: Instant) -> Option<u16> {
    let left = WITHIN.saturating_sub(since.elapsed()) + Duration::from_millis(50);
    tokio::time::timeout(left, socket.closed()).await.expect("the socket closes within a second")
}

async fn revoke_session(node: &Node, user: &TestUser) {
    let path = format!("/api/v1/auth/sessions/{}", user.session_id);
    node.send_as(Method::DELETE, &path, &user.access_token, None).await.expect(204);
}

#[tokio::test]
async fn a_session_revoked_on_one_node_is_refused_on_the_others_within_a_second() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ada = a.register("Ada").await;
    for node in [a, b, c] {
        node.get_as("/api/v1/me", &ada.access_token).await.expect(200);
    }
    let mut on_b = bearer_socket(b, &ada.access_token).await;
    let mut on_c = bearer_socket(c, &ada.access_token).await;
    socket::done(&on_b.request(ClientMessage::Ping {}).await);

    revoke_session(a, &ada).await;
    let revoked = Instant::now();
    assert_eq!(closed_within(&mut on_b, revoked).await, Some(4001));
    assert_eq!(closed_within(&mut on_c, revoked).await, Some(4001));
    answers_within(b, "/api/v1/me", &ada.access_token, 401, revoked).await;
    answers_within(c, "/api/v1/me", &ada.access_token, 401, revoked).await;
    a.get_as("/api/v1/me", &ada.access_token).await.expect(401);
}

#[tokio::test]
async fn a_password_changed_on_one_node_ends_the_other_sessions_everywhere() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let ada = a.register("Ada").await;
    let elsewhere = b.sign_in(&ada.email, &ada.password).await;
    for node in [a, b] {
        node.get_as("/api/v1/me", &elsewhere.access_token).await.expect(200);
    }
    let mut on_b = bearer_socket(b, &elsewhere.access_token).await;
    let body = serde_json::json!({
        "current_password": ada.password,
        "new_password": "a-new-password-long-enough",
    });
    a.send_as(Method::POST, "/api/v1/auth/password", &ada.access_token, Some(&body))
        .await
        .expect(200);
    let changed = Instant::now();
    assert_eq!(closed_within(&mut on_b, changed).await, Some(4001));
    answers_within(b, "/api/v1/me", &elsewhere.access_token, 401, changed).await;
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_on_the_others_within_a_second() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ada = a.register("Ada").await;
    let org = a.create_org(&ada, "Cluster").await;
    let (key_id, key) = a.create_key(&ada, &org, &["boards:read"]).await;
    let boards = format!("/api/v1/orgs/{org}/boards");
    for node in [a, b, c] {
        node.get_as(&boards, &key).await.expect(200);
    }
    let mut on_b = bearer_socket(b, &key).await;
    let mut on_c = bearer_socket(c, &key).await;

    let path = format!("/api/v1/orgs/{org}/api-keys/{key_id}");
    a.send_as(Method::DELETE, &path, &ada.access_token, None).await.expect(204);
    let revoked = Instant::now();
    assert_eq!(closed_within(&mut on_b, revoked).await, Some(4001));
    assert_eq!(closed_within(&mut on_c, revoked).await, Some(4001));
    answers_within(b, &boards, &key, 401, revoked).await;
    answers_within(c, &boards, &key, 401, revoked).await;
}

#[tokio::test]
async fn a_member_removed_on_one_node_loses_the_boards_on_the_others_within_a_second() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let admin = a.register("Admin").await;
    let bob = b.register("Bob").await;
    let org = a.create_org(&admin, "Cluster").await;
    // Only verified accounts are added by email.
    let store = boardroom::storage::Store::open(cluster.database_url(), 1).await.unwrap();
    store.mark_email_verified(&bob.email).await.unwrap();
    store.close().await;
    let body = orgs::AddOrgMember { email: bob.email.clone(), role: "member".into() };
    a.post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.access_token), &body)
        .await
        .expect(201);
    let board = a.create_board(&admin, &org, "Plan").await.board.id.to_string();
    let path = format!("/api/v1/boards/{board}/members/{}", bob.id);
    let viewer = SetMember { role: "viewer".into() };
    a.send_body(Method::PUT, &path, &admin.access_token, &viewer).await.expect(200);
    let mut sockets = Vec::new();
    for node in [b, c] {
        let mut socket = bearer_socket(node, &bob.access_token).await;
        socket::subscribed(&socket.request(msg::subscribe(&board)).await);
        sockets.push(socket);
    }

    let path = format!("/api/v1/orgs/{org}/members/{}", bob.id);
    a.send_as(Method::DELETE, &path, &admin.access_token, None).await.expect(204);
    let removed = Instant::now();
    for socket in &mut sockets {
        let left = WITHIN.saturating_sub(removed.elapsed()) + Duration::from_millis(50);
        let ended = tokio::time::timeout(left, socket.next_unsubscribed())
            .await
            .expect("the subscription ends within a second");
        assert_eq!(ended.board_id, board);
        // The connection itself stays: only the board is gone.
        socket::done(&socket.request(ClientMessage::Ping {}).await);
    }
    answers_within(c, &format!("/api/v1/boards/{board}"), &bob.access_token, 404, removed).await;
}

#[tokio::test]
async fn a_ticket_made_on_one_node_is_redeemed_on_another_once() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ada = a.register("Ada").await;
    let ticket = a.ws_ticket(&ada.access_token).await.ticket;
    let mut on_b = socket::try_connect(b, Auth::Ticket(&ticket), Some(JSON), None)
        .await
        .expect("redeemed on another node");
    socket::done(&on_b.request(ClientMessage::Ping {}).await);
    for node in [a, b, c] {
        let again = socket::try_connect(node, Auth::Ticket(&ticket), Some(JSON), None).await;
        assert_eq!(socket::http_status(again.map(|_| ()).unwrap_err()), 401, "once, anywhere");
    }
    // The socket lives on the session the ticket stood for: ending it there closes the socket.
    revoke_session(a, &ada).await;
    assert_eq!(closed_within(&mut on_b, Instant::now()).await, Some(4001));
}

#[tokio::test]
async fn a_key_limit_is_divided_among_the_live_nodes() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ada = a.register("Ada").await;
    let org = a.create_org(&ada, "Cluster").await;
    let path = format!("/api/v1/orgs/{org}/api-keys");
    let create = |name: &str| CreateApiKey {
        name: name.into(),
        scopes: vec!["boards:read".into()],
        rate_limit_per_minute: Some(6),
        expires_at: None,
    };
    let probe: CreatedApiKey =
        a.post(&path, Some(&ada.access_token), &create("probe")).await.expect_as(201);
    let boards = format!("/api/v1/orgs/{org}/boards");
    // Each node counts the live nodes at its next heartbeat after the others started.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [a, b, c] {
        loop {
            let answer = node.get_as(&boards, &probe.key).await;
            if answer.header("ratelimit-policy").is_some_and(|p| p.contains("q=2;")) {
                break;
            }
            let policy = answer.header("ratelimit-policy").map(str::to_owned);
            assert!(Instant::now() < deadline, "the limit was not divided: {policy:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A fresh key of six a minute: two on each node, six in all.
    let bot: CreatedApiKey =
        a.post(&path, Some(&ada.access_token), &create("bot")).await.expect_as(201);
    for node in [a, b, c] {
        node.get_as(&boards, &bot.key).await.expect(200);
        node.get_as(&boards, &bot.key).await.expect(200);
        node.get_as(&boards, &bot.key).await.expect_error(429, "rate_limited");
    }
}

#[tokio::test]
async fn the_clis_superadmin_grant_reaches_the_nodes_at_once() {
    let Some(cluster) = three_nodes().await else { return };
    let (a, b) = (cluster.node(0), cluster.node(1));
    let owner = a.register("Owner").await;
    let org = a.create_org(&owner, "Elsewhere").await;
    let root = b.register("Root").await;
    let path = format!("/api/v1/orgs/{org}");
    // Not a member: another organization's resource is 404 (and now cached so on b).
    b.get_as(&path, &root.access_token).await.expect(404);
    let mut grant = cluster.command("cli", "127.0.0.1:0".parse().unwrap());
    grant.args(["admin", "grant-superadmin", &root.email]);
    let (ok, out) = Cluster::run_to_exit(without_serve(grant));
    assert!(ok, "{out}");
    let granted = Instant::now();
    answers_within(b, &path, &root.access_token, 200, granted).await;
}

/// `command` (a node's) running a subcommand instead of `serve`.
fn without_serve(command: std::process::Command) -> std::process::Command {
    let mut plain = std::process::Command::new(command.get_program());
    plain.env_clear();
    for (name, value) in command.get_envs() {
        if let Some(value) = value {
            plain.env(name, value);
        }
    }
    plain.args(command.get_args().skip_while(|arg| *arg == "serve"));
    plain
}
