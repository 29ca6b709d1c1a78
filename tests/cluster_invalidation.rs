//! Invalidations, tickets and per-key limits across nodes: three `boardroom` processes on one
//! Postgres database and the local NATS server. A change made on one node holds on the others
//! within a second (REST and open sockets), a ticket made on one node is redeemed on another,
//! once, and a key's limit is divided among the live nodes.
//!
//! Sockets re-check their credential only every minute here, so what closes them within the
//! second is the invalidation, not the periodic re-check; and every cache on the other nodes is
//! warmed before the change, so what refuses there is the invalidation, not a cache miss.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boardroom_protocol::{identity, orgs, ClientMessage, Encoding};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::harness::socket::{self, Socket};
use crate::harness::{Backend, TestDatabase};

/// What "at once" means across nodes.
const WITHIN: Duration = Duration::from_secs(1);
const NATS_URL: &str = "nats://127.0.0.1:4222";
const SECRET: &str = "cluster-test-secret-cluster-test-secret-01";

/// One `boardroom serve` process; killed when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Node {
    /// Starts node `id` on `database`, sharing `data_dir` (and so its generated keys) with the
    /// other nodes, and waits until it answers.
    async fn start(database: &TestDatabase, data_dir: &Path, id: &str) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(binary());
        for (name, _) in std::env::vars() {
            if name.starts_with("BOARDROOM_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("BOARDROOM_DATA_DIR", data_dir)
            .env("BOARDROOM_LISTEN", addr.to_string())
            .env("BOARDROOM_JWT_SECRET", SECRET)
            .env("BOARDROOM_NATS_URL", NATS_URL)
            .env("BOARDROOM_NODE_ID", id)
            .env("BOARDROOM_LOG", "warn")
            .env("BOARDROOM_REGISTER_LIMIT", "10000")
            .env("BOARDROOM_WS_AUTH_RECHECK_SECS", "60")
            .env("BOARDROOM_KEY_CACHE_TTL_SECS", "30")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a node");
        let http = reqwest::Client::builder().build().unwrap();
        let mut node = Node { child, addr, http };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = node.http.get(node.url("/healthz")).send().await {
                if answer.status().is_success() {
                    return node;
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node {id} exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "node {id} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `method path` with a bearer token and an optional JSON body: the status and the body.
    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.expect("the node answers");
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> u16 {
        self.call::<()>(Method::GET, path, Some(token), None).await.0
    }

    async fn post<B: Serialize>(&self, path: &str, token: Option<&str>, body: &B) -> Value {
        let (status, body) = self.call(Method::POST, path, token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    async fn delete(&self, path: &str, token: &str) {
        let (status, body) = self.call::<()>(Method::DELETE, path, Some(token), None).await;
        assert_eq!(status, 204, "DELETE {path}: {body}");
    }

    /// Opens a socket with `Authorization: Bearer`, or with `?ticket=`.
    async fn socket(&self, bearer: Option<&str>, ticket: Option<&str>) -> Result<Socket, WsError> {
        let mut url = format!("ws://{}/api/v1/ws", self.addr);
        if let Some(ticket) = ticket {
            url.push_str(&format!("?ticket={ticket}"));
        }
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = bearer {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Socket::greeted(ws, Encoding::Json).await)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary: `CARGO_BIN_EXE_boardroom`, unless `BOARDROOM_TEST_BIN` names a copy (a
/// target directory shared by several work trees holds whichever one built it last).
fn binary() -> String {
    std::env::var("BOARDROOM_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_boardroom").into())
}

/// A person signed in (on whichever node registered them).
struct Person {
    id: String,
    email: String,
    token: String,
    session: String,
}

/// Three nodes on a fresh Postgres database; `None` (the test is skipped) without Postgres or
/// NATS outside CI.
async fn three_nodes() -> Option<(TestDatabase, [Node; 3])> {
    let database = TestDatabase::create(Backend::Postgres).await?;
    if tokio::net::TcpStream::connect("127.0.0.1:4222").await.is_err() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI=true but NATS is not running");
        eprintln!("skipping: NATS is not running on 127.0.0.1:4222");
        return None;
    }
    let dir = database.dir.path().to_owned();
    // The first generates the keys in the data dir; the others start once it is there.
    let a = Node::start(&database, &dir, "node-a").await;
    let (b, c) = tokio::join!(
        Node::start(&database, &dir, "node-b"),
        Node::start(&database, &dir, "node-c")
    );
    Some((database, [a, b, c]))
}

async fn register(node: &Node, name: &str) -> Person {
    let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
    let body = identity::Register {
        email: email.clone(),
        password: format!("pw-{name}-long-enough"),
        name: name.to_owned(),
    };
    let answer: identity::SessionAnswer =
        serde_json::from_value(node.post("/api/v1/auth/register", None, &body).await).unwrap();
    Person {
        id: answer.user.id.to_string(),
        email,
        token: answer.access_token,
        session: answer.session_id.to_string(),
    }
}

async fn create_org(node: &Node, owner: &Person) -> String {
    let body = orgs::CreateOrganization { name: "Cluster".into() };
    let org = node.post("/api/v1/orgs", Some(&owner.token), &body).await;
    org["id"].as_str().unwrap().to_owned()
}

/// Waits until `GET path` as `token` answers `status` on `node`, at most [`WITHIN`] after
/// `since`.
async fn refused_within(node: &Node, path: &str, token: &str, status: u16, since: Instant) {
    loop {
        let now = node.get(path, token).await;
        if now == status {
            return;
        }
        assert!(since.elapsed() < WITHIN, "{path} on {} still answers {now}", node.addr);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for `socket` to close, at most [`WITHIN`] after `since`: its close code.
async fn closed_within(socket: &mut Socket, since: Instant) -> Option<u16> {
    let left = WITHIN.saturating_sub(since.elapsed()) + Duration::from_millis(50);
    tokio::time::timeout(left, socket.closed()).await.expect("the socket closes within a second")
}

#[tokio::test]
async fn a_session_revoked_on_one_node_is_refused_on_the_others_within_a_second() {
    let Some((_database, [a, b, c])) = three_nodes().await else { return };
    let ada = register(&a, "ada").await;
    for node in [&a, &b, &c] {
        assert_eq!(node.get("/api/v1/me", &ada.token).await, 200, "cached on every node");
    }
    let mut on_b = b.socket(Some(&ada.token), None).await.unwrap();
    let mut on_c = c.socket(Some(&ada.token), None).await.unwrap();
    socket::done(&on_b.request(ClientMessage::Ping {}).await);

    a.delete(&format!("/api/v1/auth/sessions/{}", ada.session), &ada.token).await;
    let revoked = Instant::now();
    assert_eq!(closed_within(&mut on_b, revoked).await, Some(4001));
    assert_eq!(closed_within(&mut on_c, revoked).await, Some(4001));
    refused_within(&b, "/api/v1/me", &ada.token, 401, revoked).await;
    refused_within(&c, "/api/v1/me", &ada.token, 401, revoked).await;
    assert_eq!(a.get("/api/v1/me", &ada.token).await, 401);
}

#[tokio::test]
async fn a_key_revoked_on_one_node_is_refused_on_the_others_within_a_second() {
    let Some((_database, [a, b, c])) = three_nodes().await else { return };
    let ada = register(&a, "ada").await;
    let org = create_org(&a, &ada).await;
    let body = boardroom_protocol::api_keys::CreateApiKey {
        name: "bot".into(),
        scopes: vec!["boards:read".into()],
        rate_limit_per_minute: None,
        expires_at: None,
    };
    let created: boardroom_protocol::api_keys::CreatedApiKey = serde_json::from_value(
        a.post(&format!("/api/v1/orgs/{org}/api-keys"), Some(&ada.token), &body).await,
    )
    .unwrap();
    let (key_id, key) = (created.api_key.id, created.key.as_str());
    let boards = format!("/api/v1/orgs/{org}/boards");
    for node in [&a, &b, &c] {
        assert_eq!(node.get(&boards, key).await, 200, "verified and cached on every node");
    }
    let mut on_b = b.socket(Some(key), None).await.unwrap();
    let mut on_c = c.socket(Some(key), None).await.unwrap();

    a.delete(&format!("/api/v1/orgs/{org}/api-keys/{key_id}"), &ada.token).await;
    let revoked = Instant::now();
    assert_eq!(closed_within(&mut on_b, revoked).await, Some(4001));
    assert_eq!(closed_within(&mut on_c, revoked).await, Some(4001));
    refused_within(&b, &boards, key, 401, revoked).await;
    refused_within(&c, &boards, key, 401, revoked).await;
}

#[tokio::test]
async fn a_member_removed_on_one_node_loses_the_boards_on_the_others_within_a_second() {
    let Some((database, [a, b, c])) = three_nodes().await else { return };
    let admin = register(&a, "admin").await;
    let bob = register(&b, "bob").await;
    let org = create_org(&a, &admin).await;
    // Only verified accounts are added by email.
    let store = boardroom::storage::Store::open(&database.url, 1).await.unwrap();
    store.mark_email_verified(&bob.email).await.unwrap();
    store.close().await;
    let body = orgs::AddOrgMember { email: bob.email.clone(), role: "member".into() };
    a.post(&format!("/api/v1/orgs/{org}/members"), Some(&admin.token), &body).await;
    let body =
        boardroom_protocol::boards::CreateBoard { name: "Plan".into(), description: "".into() };
    let board: boardroom_protocol::boards::CreatedBoard = serde_json::from_value(
        a.post(&format!("/api/v1/orgs/{org}/boards"), Some(&admin.token), &body).await,
    )
    .unwrap();
    let board = board.board.id.to_string();
    let role = boardroom_protocol::boards::SetMember { role: "viewer".into() };
    let (status, answer) = a
        .call(
            Method::PUT,
            &format!("/api/v1/boards/{board}/members/{}", bob.id),
            Some(&admin.token),
            Some(&role),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut sockets = Vec::new();
    for node in [&b, &c] {
        let mut socket = node.socket(Some(&bob.token), None).await.unwrap();
        socket::subscribed(&socket.request(socket::msg::subscribe(&board)).await);
        sockets.push(socket);
    }

    a.delete(&format!("/api/v1/orgs/{org}/members/{}", bob.id), &admin.token).await;
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
    refused_within(&c, &format!("/api/v1/boards/{board}"), &bob.token, 404, removed).await;
}

#[tokio::test]
async fn a_ticket_made_on_one_node_is_redeemed_on_another_once() {
    let Some((_database, [a, b, c])) = three_nodes().await else { return };
    let ada = register(&a, "ada").await;
    let ticket: identity::WsTicket = serde_json::from_value(
        a.post("/api/v1/ws/ticket", Some(&ada.token), &serde_json::json!({})).await,
    )
    .unwrap();
    let mut on_b = b.socket(None, Some(&ticket.ticket)).await.expect("redeemed on another node");
    socket::done(&on_b.request(ClientMessage::Ping {}).await);
    for node in [&a, &b, &c] {
        let again = node.socket(None, Some(&ticket.ticket)).await.map(|_| ()).unwrap_err();
        assert_eq!(socket::http_status(again), 401, "a ticket works once, anywhere");
    }
    // The socket lives on the session the ticket stood for: revoking it closes the socket.
    a.delete(&format!("/api/v1/auth/sessions/{}", ada.session), &ada.token).await;
    assert_eq!(closed_within(&mut on_b, Instant::now()).await, Some(4001));
}

#[tokio::test]
async fn a_key_limit_is_divided_among_the_live_nodes() {
    let Some((_database, [a, b, c])) = three_nodes().await else { return };
    let ada = register(&a, "ada").await;
    let org = create_org(&a, &ada).await;
    let key = |name: &str| boardroom_protocol::api_keys::CreateApiKey {
        name: name.into(),
        scopes: vec!["boards:read".into()],
        rate_limit_per_minute: Some(6),
        expires_at: None,
    };
    let path = format!("/api/v1/orgs/{org}/api-keys");
    let probe = a.post(&path, Some(&ada.token), &key("probe")).await["key"].clone();
    let probe = probe.as_str().unwrap();
    let boards = format!("/api/v1/orgs/{org}/boards");
    // Each node counts the live nodes at its next heartbeat after the others started.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [&a, &b, &c] {
        loop {
            let answer = node.http.get(node.url(&boards)).bearer_auth(probe).send().await.unwrap();
            let policy = answer.headers().get("ratelimit-policy").map(|v| v.to_str().unwrap());
            if policy.is_some_and(|p| p.contains("q=2;")) {
                break;
            }
            assert!(Instant::now() < deadline, "the limit was not divided: {policy:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A fresh key of six a minute: two on each node, six in all.
    let bot = a.post(&path, Some(&ada.token), &key("bot")).await["key"].clone();
    let bot = bot.as_str().unwrap();
    for node in [&a, &b, &c] {
        assert_eq!(node.get(&boards, bot).await, 200);
        assert_eq!(node.get(&boards, bot).await, 200);
        assert_eq!(node.get(&boards, bot).await, 429, "this node's share is used up");
    }
}
