//! Webhooks end to end: URL checks at creation, owner-only management, signed deliveries
//! (checked with Python's hmac, also across a secret rotation), retries after 500, timeouts and
//! `Retry-After`, per-webhook order, auto-disable with its audit row, redirects not followed,
//! and an outbox that survives a restart (and is caught up from `board_events`) with every event
//! delivered exactly once.
//!
//! Deliveries go to a receiver: an axum server on 127.0.0.1:0 started by the tune fn, which
//! allowlists its port. Receivers are kept in a table keyed by port, so a test finds its own
//! from the server's settings. Each path of a receiver has a script of answers (then 200, or
//! the path's default status).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use boardroom::config::Settings;
use boardroom::ssrf::Allowlist;
use boardroom_protocol::boards::Item;
use boardroom_protocol::events::{EventData, EventKind};
use boardroom_protocol::identity::{Login, SessionAnswer};
use boardroom_protocol::webhooks::{
    CreateWebhook, CreatedWebhook, Delivery, DeliveryList, DeliveryStatus, Redelivery,
    RotatedSecret, UpdateWebhook, Webhook, WebhookList, WebhookPayload,
};
use reqwest::Method;
use serde_json::Value;

use crate::boards::{fixture, Fixture};
use crate::harness::{
    both_backends, both_backends_with, id, item, Backend, Reply, TestDatabase, TestServer,
};

both_backends!(creation_refuses_unsafe_urls_and_bad_events, only_owners_manage_webhooks);

both_backends_with!(
    with_receiver;
    deliveries_are_signed_also_across_a_rotation,
    failures_and_timeouts_are_retried,
    retry_after_is_honoured,
    order_holds_per_webhook_and_others_are_not_held_back,
    redirects_are_not_followed,
    a_failed_delivery_can_be_redelivered,
    many_boards_changing_at_once_all_deliver,
);

both_backends_with!(
    with_receiver_disabling_after_3;
    repeated_failures_disable_the_webhook,
    hostile_answers_are_stored_safely_and_still_count,
);

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

/// One scripted answer.
#[derive(Debug, Clone)]
enum Act {
    Status(u16),
    RetryAfter(u16, u64),
    /// Answer 200 only after this long (longer than the test's delivery timeout).
    Sleep(Duration),
    Redirect(String),
    /// Answer with this status and these bytes as the body.
    Body(u16, Vec<u8>),
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    path: String,
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The status answered; 0 when the answer was slower than the sender waited.
    answered: u16,
}

impl Hit {
    /// The body as the protocol's webhook payload (fails the test if it is not one).
    pub(crate) fn payload(&self) -> WebhookPayload {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not a webhook payload: {err}: {}", String::from_utf8_lossy(&self.body))
        })
    }
}

/// The name of the item an `item.*` payload carries.
pub(crate) fn item_name(payload: &WebhookPayload) -> &str {
    match &payload.event {
        EventData::ItemCreated(item) | EventData::ItemArchived(item) => &item.name,
        other => panic!("not an item event: {other:?}"),
    }
}

#[derive(Default)]
struct ReceiverState {
    hits: Vec<Hit>,
    script: HashMap<String, VecDeque<Act>>,
    default_status: HashMap<String, u16>,
}

pub(crate) struct Receiver {
    port: u16,
    state: Mutex<ReceiverState>,
}

fn receivers() -> &'static Mutex<HashMap<u16, Arc<Receiver>>> {
    static RECEIVERS: OnceLock<Mutex<HashMap<u16, Arc<Receiver>>>> = OnceLock::new();
    RECEIVERS.get_or_init(Default::default)
}

impl Receiver {
    pub(crate) fn spawn() -> Arc<Receiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Arc::new(Receiver { port, state: Mutex::default() });
        let app = Router::new().fallback(receive).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        receivers().lock().unwrap().insert(port, receiver.clone());
        receiver
    }

    fn of_settings(settings: &Settings) -> Arc<Receiver> {
        let port = settings.webhook_allow.entries()[0].1;
        receivers().lock().unwrap()[&port].clone()
    }

    pub(crate) fn of(server: &TestServer) -> Arc<Receiver> {
        Self::of_settings(server.state().settings())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn script(&self, path: &str, acts: Vec<Act>) {
        self.state.lock().unwrap().script.insert(path.to_owned(), acts.into());
    }

    fn set_default(&self, path: &str, status: u16) {
        self.state.lock().unwrap().default_status.insert(path.to_owned(), status);
    }

    pub(crate) fn hits(&self, path: &str) -> Vec<Hit> {
        self.state.lock().unwrap().hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    /// The bodies `path` answered 2xx to, in arrival order, read as the protocol's payload.
    pub(crate) fn delivered(&self, path: &str) -> Vec<WebhookPayload> {
        self.hits(path)
            .into_iter()
            .filter(|h| (200..300).contains(&h.answered))
            .map(|h| h.payload())
            .collect()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let act = {
        let mut state = receiver.state.lock().unwrap();
        let act = state.script.get_mut(&path).and_then(|q| q.pop_front()).unwrap_or_else(|| {
            Act::Status(state.default_status.get(&path).copied().unwrap_or(200))
        });
        let answered = match &act {
            Act::Status(s) | Act::RetryAfter(s, _) | Act::Body(s, _) => *s,
            Act::Sleep(_) => 0,
            Act::Redirect(_) => 302,
        };
        state.hits.push(Hit { path, at: Instant::now(), headers, body: body.to_vec(), answered });
        act
    };
    match act {
        Act::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Act::RetryAfter(s, secs) => {
            (StatusCode::from_u16(s).unwrap(), [("retry-after", secs.to_string())]).into_response()
        }
        Act::Sleep(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Act::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Act::Body(s, body) => (StatusCode::from_u16(s).unwrap(), body).into_response(),
    }
}

pub(crate) fn with_receiver(settings: &mut Settings) {
    let receiver = Receiver::spawn();
    settings.webhook_allow = Allowlist::parse(&format!("127.0.0.1:{}", receiver.port)).unwrap();
    settings.webhook_backoff_base_ms = 50;
    settings.webhook_timeout = Duration::from_millis(500);
    settings.webhook_poll = Duration::from_millis(50);
}

fn with_receiver_disabling_after_3(settings: &mut Settings) {
    with_receiver(settings);
    settings.webhook_disable_after = 3;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn hooks_path(f: &Fixture) -> String {
    format!("/api/v1/boards/{}/webhooks", f.board)
}

/// The body creating a webhook to `url` for `events`.
pub(crate) fn hook(url: &str, events: &[&str]) -> CreateWebhook {
    CreateWebhook { url: url.to_owned(), events: events.iter().map(|e| (*e).to_owned()).collect() }
}

/// Creates a webhook as the owner; returns (id, secret).
async fn create_webhook(
    server: &TestServer,
    f: &Fixture,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let created: CreatedWebhook = server
        .post(&hooks_path(f), Some(&f.owner.access_token), &hook(url, events))
        .await
        .expect_as(201);
    assert_eq!((created.webhook.url.as_str(), created.webhook.enabled), (url, true));
    (created.webhook.id.to_string(), created.secret)
}

pub(crate) async fn add_item(server: &TestServer, f: &Fixture, name: &str) -> Item {
    server.create_item(&f.owner, &f.board, &item(&f.group, name)).await
}

/// The board's webhooks, as the owner lists them.
async fn webhooks(server: &TestServer, f: &Fixture) -> Vec<Webhook> {
    let listed = server.get_as(&hooks_path(f), &f.owner.access_token).await;
    listed.expect_as::<WebhookList>(200).webhooks
}

/// `POST` to an action of webhook `hook` that takes no body (`rotate-secret`,
/// `deliveries/{id}/redeliver`), as the owner.
async fn act_on(server: &TestServer, f: &Fixture, hook: &str, action: &str) -> Reply {
    let path = format!("{}/{hook}/{action}", hooks_path(f));
    server.send_as(Method::POST, &path, &f.owner.access_token, None).await
}

async fn deliveries(server: &TestServer, f: &Fixture, hook: &str) -> Vec<Delivery> {
    let reply =
        server.get_as(&format!("{}/{hook}/deliveries", hooks_path(f)), &f.owner.access_token).await;
    reply.expect_as::<DeliveryList>(200).deliveries
}

/// Waits (up to 10 s) until the board's one webhook is disabled after 3 failures.
async fn wait_until_disabled_after_3(server: &TestServer, f: &Fixture) {
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = webhooks(server, f).await;
        if !listed[0].enabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!listed[0].enabled, "{listed:?}");
    assert_eq!(listed[0].consecutive_failures, 3);
    assert_eq!(listed[0].disabled_reason.as_deref(), Some("consecutive_failures"));
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `limit`.
pub(crate) async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `t` and `v1` values of a `Boardroom-Signature`.
fn parse_signature(header: &str) -> (String, Vec<String>) {
    let mut t = String::new();
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.to_owned(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => panic!("unexpected signature part {part:?}"),
        }
    }
    (t, v1)
}

/// Python's hmac computes the expected signature independently.
fn python_signature(secret: &str, t: &str, body: &[u8]) -> String {
    let out = crate::harness::python()
        .arg("-c")
        .arg(
            "import hmac, hashlib, sys\n\
             s, t, b = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])\n\
             print(hmac.new(s.encode(), t.encode() + b'.' + b, hashlib.sha256).hexdigest())",
        )
        .args([secret, t, &hex::encode(body)])
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

async fn creation_refuses_unsafe_urls_and_bad_events(server: &TestServer) {
    let f = fixture(server).await;
    for (url, reason) in [
        ("http://10.0.0.5/hook", "blocked_address"),
        ("http://127.0.0.1:8080/hook", "blocked_address"),
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "blocked_host_name"),
        ("http://localhost/hook", "blocked_host_name"),
        ("ftp://example.com/hook", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("https://user:pw@example.com/hook", "userinfo"),
        ("http://[::1]/hook", "blocked_address"),
        ("not a url", "control_or_whitespace"),
    ] {
        let reply =
            server.post(&hooks_path(&f), Some(&f.owner.access_token), &hook(url, &["*"])).await;
        reply.expect_error(422, "validation_failed");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(reason), "{url}: {message}");
    }
    let bad_kinds: [&[&str]; 3] = [&[], &["item.exploded"], &["ITEM.CREATED"]];
    for events in bad_kinds {
        server
            .post(
                &hooks_path(&f),
                Some(&f.owner.access_token),
                &hook("https://example.com/hook", events),
            )
            .await
            .expect_error(422, "validation_failed");
    }
    // Nothing was created by the refusals.
    assert_eq!(webhooks(server, &f).await, vec![]);
    // A public URL is fine (nothing is fetched at creation).
    let (_, secret) =
        create_webhook(server, &f, "https://example.com/hook", &["item.created", "*"]).await;
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    // A board has at most 20 webhooks, however many creations race for the last places.
    let path = hooks_path(&f);
    let creations = (1..30).map(|i| {
        let body = hook(&format!("https://example.com/hook/{i}"), &["*"]);
        let (path, token) = (&path, &f.owner.access_token);
        async move { server.post(path, Some(token), &body).await }
    });
    let replies = futures::future::join_all(creations).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 19, "one existed before");
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.expect_error(422, "validation_failed");
    }
    assert_eq!(webhooks(server, &f).await.len(), 20);
}

async fn only_owners_manage_webhooks(server: &TestServer) {
    let f = fixture(server).await;
    let (hook_id, secret) =
        create_webhook(server, &f, "https://example.com/hook", &["item.created"]).await;
    let hook_path = format!("{}/{hook_id}", hooks_path(&f));

    // The secret is shown once: never in listings or changes.
    let listed = server.get_as(&hooks_path(&f), &f.owner.access_token).await;
    let listed = listed.expect(200).to_string();
    assert!(!listed.contains(&secret) && !listed.contains("\"secret\""), "{listed}");
    let change = UpdateWebhook { events: Some(vec!["*".into()]), ..UpdateWebhook::default() };
    let patched = server.send_body(Method::PATCH, &hook_path, &f.owner.access_token, &change).await;
    assert_eq!(patched.expect_as::<Webhook>(200).events, vec!["*"]);
    assert!(!patched.body.to_string().contains(&secret));
    assert!(patched.body.get("secret").is_none());

    // A member of the org who is only an editor on the board: 403 everywhere.
    let editor = server.register("editor").await;
    server.add_member(&f.owner, &f.org, &editor, "member").await;
    server.add_board_member(&f.owner, &f.board, &editor, "editor").await;
    // Someone from another organization: 404 everywhere.
    let stranger = server.register("stranger").await;
    server.create_org(&stranger, "Other").await;
    let body = |b: &dyn erased::Body| b.value();
    let create = body(&hook("https://example.com/x", &["*"]));
    let disable = body(&UpdateWebhook { enabled: Some(false), ..UpdateWebhook::default() });
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, hooks_path(&f), None),
        (Method::POST, hooks_path(&f), Some(create)),
        (Method::PATCH, hook_path.clone(), Some(disable)),
        (Method::DELETE, hook_path.clone(), None),
        (Method::GET, format!("{hook_path}/deliveries"), None),
        (Method::POST, format!("{hook_path}/rotate-secret"), None),
        (Method::POST, format!("{hook_path}/deliveries/{}/redeliver", uuid::Uuid::now_v7()), None),
    ];
    for (method, path, body) in &calls {
        server
            .send_as(method.clone(), path, &editor.access_token, body.as_ref())
            .await
            .expect_error(403, "forbidden");
        server
            .send_as(method.clone(), path, &stranger.access_token, body.as_ref())
            .await
            .expect_error(404, "not_found");
    }
    // An org admin acts as an owner; deleting works once.
    server.send_as(Method::DELETE, &hook_path, &f.owner.access_token, None).await.expect(204);
    server
        .send_as(Method::DELETE, &hook_path, &f.owner.access_token, None)
        .await
        .expect_error(404, "not_found");
    let rows = audit_actions(server).await;
    assert!(rows.contains(&"webhook.created".to_owned()), "{rows:?}");
    assert!(rows.contains(&"webhook.deleted".to_owned()), "{rows:?}");
}

/// A protocol body as the JSON `send_as` takes, so calls with different body types share a
/// table.
mod erased {
    pub trait Body {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Body for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

async fn audit_actions(server: &TestServer) -> Vec<String> {
    server.flush_audit().await;
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
    })
}

async fn deliveries_are_signed_also_across_a_rotation(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let (hook_id, secret) = create_webhook(server, &f, &receiver.url("/signed"), &["*"]).await;
    let first = add_item(server, &f, "First").await;
    wait_until(Duration::from_secs(10), "the first delivery", || {
        receiver.delivered("/signed").len() == 1
    })
    .await;
    let hit = receiver.hits("/signed").remove(0);
    let header = |name: &str| hit.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("boardroom-event"), "item.created");
    assert_eq!(header("content-type"), "application/json");
    assert!(header("user-agent").starts_with("Boardroom-Webhooks/"));
    let body = hit.payload();
    assert_eq!(header("boardroom-delivery"), body.id.to_string());
    assert_eq!(body.board_id, id(&f.board));
    assert_eq!(body.event, EventData::ItemCreated(first), "{body:?}");
    assert!(body.seq > 1);
    let (t, v1) = parse_signature(&header("boardroom-signature"));
    assert!((chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap()).abs() < 60);
    assert_eq!(v1, vec![python_signature(&secret, &t, &hit.body)]);
    assert_ne!(v1[0], python_signature("whsec_wrong", &t, &hit.body));

    // After a rotation both secrets sign, the new one first.
    let rotated: RotatedSecret = act_on(server, &f, &hook_id, "rotate-secret").await.expect_as(200);
    let new_secret = rotated.secret;
    assert_eq!(rotated.id.to_string(), hook_id);
    assert_ne!(new_secret, secret);
    let listed = webhooks(server, &f).await;
    assert_eq!(listed[0].previous_secret_expires_at, Some(rotated.previous_secret_expires_at));
    add_item(server, &f, "Second").await;
    wait_until(Duration::from_secs(10), "the second delivery", || {
        receiver.delivered("/signed").len() == 2
    })
    .await;
    let hit = receiver.hits("/signed").remove(1);
    let signature = hit.headers["boardroom-signature"].to_str().unwrap().to_owned();
    let (t, v1) = parse_signature(&signature);
    assert_eq!(
        v1,
        vec![
            python_signature(&new_secret, &t, &hit.body),
            python_signature(&secret, &t, &hit.body)
        ]
    );
    let rows = audit_actions(server).await;
    assert!(rows.contains(&"webhook.secret_rotated".to_owned()), "{rows:?}");
    // The rotation's answer and the audit rows never carry the old secret.
    let listed = server.get_as(&hooks_path(&f), &f.owner.access_token).await;
    assert!(!listed.body.to_string().contains(&new_secret));
}

async fn failures_and_timeouts_are_retried(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    receiver.script(
        "/flaky",
        vec![Act::Status(500), Act::Sleep(Duration::from_secs(3)), Act::Status(503)],
    );
    let (hook_id, _) = create_webhook(server, &f, &receiver.url("/flaky"), &["item.created"]).await;
    add_item(server, &f, "Retried").await;
    wait_until(Duration::from_secs(15), "a delivery after retries", || {
        receiver.delivered("/flaky").len() == 1
    })
    .await;
    let hits = receiver.hits("/flaky");
    assert_eq!(hits.iter().map(|h| h.answered).collect::<Vec<_>>(), vec![500, 0, 503, 200]);
    // The same delivery each time.
    let ids: Vec<_> = hits.iter().map(|h| h.headers["boardroom-delivery"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let mut listed = deliveries(server, &f, &hook_id).await;
    for _ in 0..50 {
        if listed[0].status == DeliveryStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listed = deliveries(server, &f, &hook_id).await;
    }
    assert_eq!(listed.len(), 1);
    let delivery = &listed[0];
    assert_eq!(delivery.status, DeliveryStatus::Succeeded, "{listed:?}");
    assert_eq!((delivery.attempts, delivery.last_status_code), (4, Some(200)));
    assert_eq!((delivery.kind, delivery.next_attempt_at), (EventKind::ItemCreated, None));
    assert_eq!(delivery.id.to_string(), hits[0].headers["boardroom-delivery"].to_str().unwrap());
}

async fn retry_after_is_honoured(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    receiver.script("/busy", vec![Act::RetryAfter(429, 2)]);
    let (hook_id, _) = create_webhook(server, &f, &receiver.url("/busy"), &["item.created"]).await;
    add_item(server, &f, "Later").await;
    wait_until(Duration::from_secs(5), "the first attempt", || !receiver.hits("/busy").is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = deliveries(server, &f, &hook_id).await;
    assert_eq!(listed[0].status, DeliveryStatus::Pending);
    assert!(listed[0].next_attempt_at.is_some(), "a pending delivery says when it is next tried");
    assert_eq!(listed[0].last_status_code, Some(429));
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 429"));
    wait_until(Duration::from_secs(10), "the retry", || receiver.delivered("/busy").len() == 1)
        .await;
    let hits = receiver.hits("/busy");
    assert_eq!(hits.len(), 2);
    // The backoff alone would be ~50 ms; the receiver asked for 2 s.
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
}

async fn order_holds_per_webhook_and_others_are_not_held_back(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    // Six failures take at least 1.5 s of backoff (half of 50+100+…+1600 ms).
    receiver.script("/slow", vec![Act::Status(500); 6]);
    create_webhook(server, &f, &receiver.url("/slow"), &["item.created"]).await;
    create_webhook(server, &f, &receiver.url("/fast"), &["item.created"]).await;
    for i in 0..5 {
        add_item(server, &f, &format!("Item {i}")).await;
    }
    wait_until(Duration::from_secs(10), "the healthy webhook", || {
        receiver.delivered("/fast").len() == 5
    })
    .await;
    assert!(receiver.delivered("/slow").is_empty(), "the failing webhook was not held back");
    wait_until(Duration::from_secs(20), "the recovered webhook", || {
        receiver.delivered("/slow").len() == 5
    })
    .await;
    for path in ["/fast", "/slow"] {
        let seqs: Vec<i64> = receiver.delivered(path).iter().map(|b| b.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{path}: {seqs:?}");
        // Every attempt, failed or not, went out in seq order too.
        let attempted: Vec<i64> = receiver.hits(path).iter().map(|h| h.payload().seq).collect();
        assert!(attempted.windows(2).all(|w| w[0] <= w[1]), "{path}: {attempted:?}");
    }
    let delivered = receiver.delivered("/slow");
    let slow_names: Vec<&str> = delivered.iter().map(item_name).collect();
    let expected: Vec<String> = (0..5).map(|i| format!("Item {i}")).collect();
    assert_eq!(slow_names, expected);
}

/// Many boards changing at the same moment (the webhook actor then looks with one catch-up
/// query rather than board by board): every board's webhook gets its event.
async fn many_boards_changing_at_once_all_deliver(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let token = f.owner.access_token.as_str();
    let mut boards = Vec::new();
    for n in 0..16 {
        let board = server.create_board(&f.owner, &f.org, &format!("b{n}")).await;
        let (id, group) = (board.board.id.to_string(), board.groups[0].id.to_string());
        let body = hook(&receiver.url(&format!("/b{n}")), &["item.created"]);
        server.post(&format!("/api/v1/boards/{id}/webhooks"), Some(token), &body).await.expect(201);
        boards.push((id, group));
    }
    let owner = &f.owner;
    let writes = boards.iter().map(|(id, group)| async move {
        server.create_item(owner, id, &item(group, &format!("on {id}"))).await;
    });
    futures::future::join_all(writes).await;
    wait_until(Duration::from_secs(20), "every board's delivery", || {
        (0..16).all(|n| receiver.delivered(&format!("/b{n}")).len() == 1)
    })
    .await;
    for (n, (board, _)) in boards.iter().enumerate() {
        let delivered = receiver.delivered(&format!("/b{n}"));
        assert_eq!(delivered[0].board_id, id(board), "board {n}");
        assert_eq!(item_name(&delivered[0]), format!("on {board}"));
    }
}

async fn repeated_failures_disable_the_webhook(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    receiver.set_default("/down", 500);
    let (hook_id, _) = create_webhook(server, &f, &receiver.url("/down"), &["item.created"]).await;
    add_item(server, &f, "Lost").await;
    let hook_path = format!("{}/{hook_id}", hooks_path(&f));
    wait_until_disabled_after_3(server, &f).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits("/down").len(), 3, "a disabled webhook is not called");
    let rows: Vec<(String, Option<String>)> = {
        server.flush_audit().await;
        boardroom::on_pool!(server.state().store(), pool => {
            sqlx::query_as("SELECT action, target FROM audit_log ORDER BY seq").fetch_all(pool).await.unwrap()
        })
    };
    assert!(rows.contains(&("webhook.disabled".to_owned(), Some(hook_id.clone()))), "{rows:?}");
    // Re-enabling resets the count; the receiver is back and the queued delivery goes out.
    receiver.set_default("/down", 200);
    let enable = UpdateWebhook { enabled: Some(true), ..UpdateWebhook::default() };
    let enabled: Webhook = server
        .send_body(Method::PATCH, &hook_path, &f.owner.access_token, &enable)
        .await
        .expect_as(200);
    assert_eq!((enabled.enabled, enabled.consecutive_failures), (true, 0));
    assert_eq!(enabled.disabled_reason, None);
    wait_until(Duration::from_secs(10), "the delivery after re-enabling", || {
        receiver.delivered("/down").len() == 1
    })
    .await;
}

/// A receiver answering NUL bytes, an escape sequence and invalid UTF-8: each attempt is still
/// recorded with a storable excerpt (the bytes replaced), failures count, and the webhook is
/// disabled at the threshold as usual.
async fn hostile_answers_are_stored_safely_and_still_count(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    let answer = b"\x00\x00oops\x1b[31m\xff\xfe\xc3(\x00 end".to_vec();
    receiver.script("/hostile", vec![Act::Body(500, answer); 3]);
    let (hook_id, _) =
        create_webhook(server, &f, &receiver.url("/hostile"), &["item.created"]).await;
    add_item(server, &f, "Poison").await;
    wait_until_disabled_after_3(server, &f).await;
    assert_eq!(receiver.hits("/hostile").len(), 3);
    let delivery = deliveries(server, &f, &hook_id).await.remove(0);
    assert_eq!(delivery.attempts, 3, "{delivery:?}");
    assert_eq!(delivery.last_status_code, Some(500));
    assert_eq!(delivery.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        delivery.response_excerpt.as_deref(),
        Some("\u{fffd}\u{fffd}oops\u{fffd}[31m\u{fffd}\u{fffd}\u{fffd}(\u{fffd} end")
    );
}

async fn redirects_are_not_followed(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    // Even an allowlisted target is not followed: a 3xx is the delivery's answer.
    receiver.script(
        "/moved",
        vec![
            Act::Redirect("http://169.254.169.254/latest/meta-data/".into()),
            Act::Redirect(receiver.url("/target")),
        ],
    );
    let (hook_id, _) = create_webhook(server, &f, &receiver.url("/moved"), &["item.created"]).await;
    add_item(server, &f, "One").await;
    add_item(server, &f, "Two").await;
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = deliveries(server, &f, &hook_id).await;
        if listed.len() == 2 && listed.iter().all(|d| d.status == DeliveryStatus::Failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    for delivery in &listed {
        assert_eq!(delivery.status, DeliveryStatus::Failed, "{listed:?}");
        assert_eq!(delivery.attempts, 1, "a redirect is final, not retried");
        assert_eq!(delivery.last_status_code, Some(302));
    }
    assert_eq!(receiver.hits("/moved").len(), 2);
    assert!(receiver.hits("/target").is_empty(), "the redirect was followed");
}

async fn a_failed_delivery_can_be_redelivered(server: &TestServer) {
    let f = fixture(server).await;
    let receiver = Receiver::of(server);
    receiver.script("/again", vec![Act::Status(410)]);
    let (hook_id, _) = create_webhook(server, &f, &receiver.url("/again"), &["item.created"]).await;
    add_item(server, &f, "Again").await;
    let mut listed = Vec::new();
    for _ in 0..200 {
        listed = deliveries(server, &f, &hook_id).await;
        if listed.first().is_some_and(|d| d.status == DeliveryStatus::Failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed[0].status, DeliveryStatus::Failed, "a 4xx is final");
    assert_eq!(listed[0].last_status_code, Some(410));
    let delivery = listed[0].id;
    let redeliver = format!("deliveries/{delivery}/redeliver");
    let queued: Redelivery = act_on(server, &f, &hook_id, &redeliver).await.expect_as(202);
    assert_eq!(queued, Redelivery { id: delivery, status: DeliveryStatus::Pending });
    wait_until(Duration::from_secs(10), "the redelivery", || {
        receiver.delivered("/again").len() == 1
    })
    .await;
    let hits = receiver.hits("/again");
    assert_eq!(hits[0].headers["boardroom-delivery"], hits[1].headers["boardroom-delivery"]);
    // Retention removes finished deliveries only.
    receiver.set_default("/again", 500);
    add_item(server, &f, "Pending").await;
    let store = server.state().store();
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    wait_until(Duration::from_secs(10), "an attempt at the second event", || {
        receiver.hits("/again").len() >= 3
    })
    .await;
    assert_eq!(store.prune_webhook_deliveries(later).await.unwrap(), 1);
    let left = deliveries(server, &f, &hook_id).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status, DeliveryStatus::Pending);
}

// ---------------------------------------------------------------------------------------------
// Restart: the outbox is durable
// ---------------------------------------------------------------------------------------------

mod the_outbox_survives_a_restart {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::outbox_survives_a_restart(crate::harness::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::outbox_survives_a_restart(crate::harness::Backend::Postgres).await;
    }
}

async fn outbox_survives_a_restart(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else { return };
    let mut server = TestServer::start_with(database, with_receiver).await;
    let settings = server.state().settings().clone();
    let receiver = Receiver::of(&server);
    let f = fixture(&server).await;
    // One receiver is down across the restart, the other is up.
    receiver.set_default("/down", 503);
    let (down, _) = create_webhook(&server, &f, &receiver.url("/down"), &["item.created"]).await;
    create_webhook(&server, &f, &receiver.url("/up"), &["item.created"]).await;
    for i in 0..5 {
        add_item(&server, &f, &format!("Before {i}")).await;
    }
    wait_until(Duration::from_secs(10), "deliveries before the restart", || {
        receiver.delivered("/up").len() == 5 && !receiver.hits("/down").is_empty()
    })
    .await;
    assert!(server.stop_keeping_database().await, "the first server did not stop cleanly");
    receiver.set_default("/down", 200);

    // While no server runs, pretend the last two events never reached /down's outbox and that
    // no webhook enqueued anything: the next start must catch up from board_events, adding
    // what is missing and nothing twice.
    let store =
        boardroom::storage::Store::open(&settings.effective_database_url(), 2).await.unwrap();
    let down_id: uuid::Uuid = down.parse().unwrap();
    boardroom::on_pool!(store, pool => {
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND seq > \
             (SELECT MIN(seq) + 2 FROM webhook_deliveries WHERE webhook_id = $1)",
        )
        .bind(down_id)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("UPDATE webhooks SET last_enqueued_seq = 0").execute(pool).await.unwrap();
    });
    let left: i64 = boardroom::on_pool!(store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(down_id)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(left, 3);
    store.close().await;

    let restarted = boardroom::server::App::build(settings).await.unwrap().spawn().await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/v1", restarted.addr());
    let login = Login { email: f.owner.email.clone(), password: f.owner.password.clone() };
    let login: SessionAnswer = http
        .post(format!("{base}/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for i in 0..5 {
        let reply = http
            .post(format!("{base}/boards/{}/items", f.board))
            .bearer_auth(&login.access_token)
            .json(&item(&f.group, &format!("After {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 201);
    }
    wait_until(Duration::from_secs(20), "every event at both receivers", || {
        receiver.delivered("/up").len() >= 10 && receiver.delivered("/down").len() >= 10
    })
    .await;
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected: Vec<String> =
        (0..5).map(|i| format!("Before {i}")).chain((0..5).map(|i| format!("After {i}"))).collect();
    for path in ["/up", "/down"] {
        let delivered = receiver.delivered(path);
        let names: Vec<&str> = delivered.iter().map(item_name).collect();
        assert_eq!(names, expected, "{path}: each event exactly once, in order");
        let seqs: Vec<i64> = delivered.iter().map(|b| b.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{path}: {seqs:?}");
    }
    assert!(restarted.shutdown().await);
    server.stop().await;
}
