//! The WebSocket gateway end to end: both encodings see the same events, resuming loses and
//! repeats nothing, a slow consumer is cut off alone, live authorization (membership, token
//! expiry and in-band refresh, key revocation), presence, malformed frames, and the refusals before any
//! upgrade (credentials, origin, subprotocol, single-use tickets).

use std::time::Duration;

use boardroom_protocol::api_keys::{ApiKey, UpdateApiKey};
use boardroom_protocol::boards::{Item, UpdateItem};
use boardroom_protocol::events::{EventData, EventLog};
use boardroom_protocol::frames::{EventFrame, ServerFrame};
use boardroom_protocol::orgs::{OrgMember, OrgRole};
use boardroom_protocol::{Encoding, ErrorCode, ErrorEnvelope, RequestId, Scope};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::MaybeTlsStream;

use crate::boards::fixture;
use crate::harness::socket::{
    connect, done, error_code, event_data, http_status, msg, ok, ok_empty, subscribed, try_connect,
    Auth, Socket, JSON, MSGPACK,
};
use crate::harness::{self, both_backends, both_backends_with, TestServer};

both_backends!(
    json_and_msgpack_clients_see_the_same_events,
    pipelined_writes_apply_in_the_order_sent,
    a_log_with_a_hole_is_answered_with_a_snapshot,
    a_failed_commit_under_pipelined_writes_loses_nothing_acknowledged,
    resume_after_a_drop_has_no_gap_and_no_duplicate,
    losing_board_membership_ends_the_subscription,
    deleting_the_board_ends_its_subscriptions,
    an_expired_token_ends_the_socket_unless_refreshed,
    a_revoked_api_key_ends_the_socket,
    a_rescoped_key_ends_its_subscriptions,
    malformed_frames_are_refused_for_that_connection_only,
    presence_follows_who_is_viewing,
    msgpack_frames_agree_with_python,
    shutdown_closes_sockets_with_going_away,
);

both_backends_with!(short_heartbeat; a_silent_client_is_closed_and_leaves);

both_backends_with!(two_sockets_per_user; a_user_holds_at_most_the_allowed_sockets);

both_backends_with!(no_periodic_rechecks; org_membership_changes_reach_sockets_at_once);

/// Periodic re-checks so rare that a test sees only the ones something triggered.
fn no_periodic_rechecks(settings: &mut boardroom::config::Settings) {
    settings.ws_auth_recheck_secs = 300;
}

fn two_sockets_per_user(settings: &mut boardroom::config::Settings) {
    settings.ws_max_sockets_per_user = 2;
}

fn short_heartbeat(settings: &mut boardroom::config::Settings) {
    settings.ws_heartbeat_secs = 3;
}

both_backends_with!(app_origin; refusals_happen_before_the_upgrade);

fn app_origin(settings: &mut boardroom::config::Settings) {
    settings.ws_origins = vec!["https://app.example".into()];
}

both_backends_with!(small_outbound_buffer; a_slow_consumer_is_closed_and_others_are_unaffected);

fn small_outbound_buffer(settings: &mut boardroom::config::Settings) {
    settings.ws_outbound_buffer_bytes = 64 * 1024;
}

/// The item an item event carries.
fn item_of(event: &EventFrame) -> Item {
    match event_data(event) {
        EventData::ItemCreated(item) | EventData::ItemArchived(item) => item,
        EventData::ItemUpdated(updated) => updated.item,
        EventData::ItemMoved(moved) => moved.item,
        other => panic!("{} carries no item: {other:?}", event.kind),
    }
}

async fn create_item_rest(
    server: &TestServer,
    token: &str,
    board: &str,
    group: &str,
    name: &str,
) -> Item {
    let path = format!("/api/v1/boards/{board}/items");
    server.post(&path, Some(token), &harness::item(group, name)).await.expect_as(201)
}

async fn json_and_msgpack_clients_see_the_same_events(server: &TestServer) {
    let f = fixture(server).await;
    let mut a = connect(server, &f.owner.access_token, JSON).await;
    let mut b = connect(server, &f.owner.access_token, MSGPACK).await;
    for client in [&mut a, &mut b] {
        let reply = client.request(msg::subscribe(&f.board)).await;
        let data = subscribed(&reply);
        assert!(!data.recovered);
        assert_eq!(data.snapshot.expect("a snapshot").board.id, harness::id(&f.board));
    }
    // A write over the socket is answered after its commit, with its seq.
    let reply = a.request(msg::create_item(&f.board, harness::item(&f.group, "Ship it"))).await;
    let item: Item = ok(&reply);
    assert_eq!(item.name, "Ship it");
    let seq = reply.seq.unwrap();
    // One over REST too.
    create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "From REST").await;
    let mut seen = Vec::new();
    for client in [&mut a, &mut b] {
        let first = client.next_event().await;
        let second = client.next_event().await;
        assert_eq!(first.seq, seq);
        assert_eq!(first.kind, "item.created");
        assert_eq!(item_of(&first), item);
        assert_eq!(second.seq, seq + 1);
        assert_eq!(item_of(&second).name, "From REST");
        seen.push((first, second));
    }
    assert_eq!(seen[0], seen[1], "JSON and MessagePack clients saw different events");
    // Refusals use the shared error codes.
    let rename =
        UpdateItem { name: Some("x".into()), expected_version: Some(99), ..Default::default() };
    let reply = b.request(msg::update_item(&f.board, &item.id.to_string(), rename)).await;
    assert_eq!(error_code(&reply), "version_conflict");
    done(&b.request(msg::ping()).await);
}

/// A client may send writes without waiting for their replies: they apply in the order sent
/// (each `expected_version` below holds only if every earlier update applied first), each keeps
/// its own result, and every reply carries the seq of its commit.
async fn pipelined_writes_apply_in_the_order_sent(server: &TestServer) {
    let f = fixture(server).await;
    let item = create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "v1").await;
    let item_id = item.id.to_string();
    let mut client = connect(server, &f.owner.access_token, JSON).await;
    let mut sent = Vec::new();
    for version in 1..=30 {
        let rename = UpdateItem {
            name: Some(format!("v{}", version + 1)),
            expected_version: Some(version),
            ..Default::default()
        };
        sent.push(client.send(msg::update_item(&f.board, &item_id, rename)).await);
        if version == 10 {
            // A refused write in the middle fails alone.
            let bad = client.send(msg::create_item(&f.board, harness::item(&f.board, "x"))).await;
            sent.push(bad);
        }
    }
    let replies = replies_to(&mut client, sent.len()).await;
    let mut seqs = Vec::new();
    for id in &sent {
        let reply = &replies[id];
        if !reply.ok {
            assert_eq!(*id, sent[10], "only the bad write fails: {reply:?}");
            continue;
        }
        seqs.push(reply.seq.unwrap());
    }
    assert_eq!(seqs.len(), 30, "every update applied");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seqs follow the order sent: {seqs:?}");
    let path = format!("/api/v1/boards/{}/items/{item_id}", f.board);
    let stored: Item = server.get_as(&path, &f.owner.access_token).await.expect_as(200);
    assert_eq!(stored.name, "v31");
    assert_eq!(stored.version, 31);
}

/// Reads `count` replies, by the request id they answer.
async fn replies_to(
    client: &mut Socket,
    count: usize,
) -> std::collections::HashMap<u64, boardroom_protocol::frames::Reply> {
    let mut replies = std::collections::HashMap::new();
    while replies.len() < count {
        let reply = client.next_reply().await;
        let Some(boardroom_protocol::RequestId::Number(id)) = reply.id else {
            panic!("a reply to no request of ours: {reply:?}")
        };
        replies.insert(id, reply);
    }
    replies
}

/// Pipelined writes while a commit fails (here: the stored `seq` was moved underneath, as
/// another node would): the failed batch is refused, the board reloads, and later writes
/// succeed. Whatever was acknowledged is exactly what the log and the item hold.
async fn a_failed_commit_under_pipelined_writes_loses_nothing_acknowledged(server: &TestServer) {
    let f = fixture(server).await;
    let item = create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "n0").await;
    let item_id = item.id.to_string();
    server.move_board_seq(&f.board, 7).await;
    let mut client = connect(server, &f.owner.access_token, JSON).await;
    let rename = |name: &str| UpdateItem { name: Some(name.to_owned()), ..Default::default() };
    let mut sent = Vec::new();
    for n in 1..=40 {
        let name = format!("n{n}");
        sent.push((client.send(msg::update_item(&f.board, &item_id, rename(&name))).await, name));
    }
    let replies = replies_to(&mut client, sent.len()).await;
    let mut acknowledged = Vec::new();
    for (id, name) in &sent {
        let reply = &replies[id];
        if reply.ok {
            acknowledged.push((reply.seq.unwrap(), name.clone()));
        } else {
            assert_eq!(error_code(reply), "unavailable", "{reply:?}");
        }
    }
    assert!(!replies[&sent[0].0].ok, "the first write's commit had to fail");
    // After the reload the board takes writes again.
    let reply = client.request(msg::update_item(&f.board, &item_id, rename("last"))).await;
    acknowledged.push((reply.seq.expect("the write after the reload succeeds"), "last".into()));
    let path = format!("/api/v1/boards/{}/events?after=0&limit=1000", f.board);
    let events: EventLog = server.get_as(&path, &f.owner.access_token).await.expect_as(200);
    let logged: Vec<(i64, String)> = events
        .events
        .iter()
        .filter_map(|e| match &e.event {
            boardroom_protocol::events::EventData::ItemUpdated(updated) => {
                Some((e.seq, updated.item.name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(logged, acknowledged, "the log holds exactly the acknowledged writes");
    let item_path = format!("/api/v1/boards/{}/items/{item_id}", f.board);
    let stored: Item = server.get_as(&item_path, &f.owner.access_token).await.expect_as(200);
    assert_eq!(stored.name, acknowledged.last().unwrap().1);
}

/// One user's sockets (browsers and keys together) are capped: one more is refused 429 before
/// the upgrade, another user is unaffected, and closing one frees its place.
async fn a_user_holds_at_most_the_allowed_sockets(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let first = connect(server, token, JSON).await;
    let _second = connect(server, token, MSGPACK).await;
    let refused = try_connect(server, Auth::Bearer(token), Some(JSON), None).await;
    let Err(refused) = refused else { panic!("a third socket is refused") };
    assert_eq!(http_status(refused), 429);
    let other = server.register("other").await;
    let _theirs = connect(server, &other.access_token, JSON).await;
    drop(first);
    let user: uuid::Uuid = f.owner.id.parse().unwrap();
    for _ in 0..100 {
        if server.state().ws().open_sockets(user) < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = connect(server, token, JSON).await;
    done(&again.request(msg::ping()).await);
}

/// A resume the log cannot serve in full (here rows went missing, as a retention purge would
/// leave it) gets a snapshot, never a replay with a silent gap.
async fn a_log_with_a_hole_is_answered_with_a_snapshot(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    for i in 0..4 {
        create_item_rest(server, token, &f.board, &f.group, &format!("item {i}")).await;
    }
    let board: uuid::Uuid = f.board.parse().unwrap();
    boardroom::on_pool!(server.state().store(), pool => {
        sqlx::query("DELETE FROM board_events WHERE board_id = $1 AND seq > 2")
            .bind(board).execute(pool).await.unwrap();
    });
    let mut client = connect(server, token, JSON).await;
    let data = subscribed(&client.request(msg::resume(&f.board, 1)).await);
    assert!(!data.recovered, "{data:?}");
    assert_eq!(data.snapshot.expect("a snapshot").items.len(), 4);
}

async fn resume_after_a_drop_has_no_gap_and_no_duplicate(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let mut client = connect(server, token, JSON).await;
    let mut last = subscribed(&client.request(msg::subscribe(&f.board)).await).seq;
    for i in 0..3 {
        create_item_rest(server, token, &f.board, &f.group, &format!("before {i}")).await;
        let event = client.next_event().await;
        assert_eq!(event.seq, last + 1);
        last += 1;
    }
    drop(client);
    for i in 0..4 {
        create_item_rest(server, token, &f.board, &f.group, &format!("while away {i}")).await;
    }
    let mut client = connect(server, token, MSGPACK).await;
    let data = subscribed(&client.request(msg::resume(&f.board, last)).await);
    assert!(data.recovered);
    assert!(data.snapshot.is_none(), "a recovered subscription carries no snapshot");
    assert_eq!(data.seq, last + 4);
    // Writes racing the resubscription must not appear twice either.
    create_item_rest(server, token, &f.board, &f.group, "after").await;
    for expected in last + 1..=last + 5 {
        let event = client.next_event().await;
        assert_eq!(event.seq, expected, "gap or duplicate: {event:?}");
    }
    done(&client.request(msg::ping()).await);
    assert!(
        client.pending.iter().all(|f| !matches!(f, ServerFrame::Event(_))),
        "extra events: {:?}",
        client.pending
    );
    // A position the log cannot replay gets a snapshot instead.
    let mut other = connect(server, token, JSON).await;
    let data = subscribed(&other.request(msg::resume(&f.board, 1_000_000)).await);
    assert!(!data.recovered);
    assert_eq!(data.seq, last + 5);
    assert_eq!(data.snapshot.expect("a snapshot").items.len(), 8);
}

async fn a_slow_consumer_is_closed_and_others_are_unaffected(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let column =
        server.create_column(&f.owner, &f.board, &harness::column("Notes", "long_text")).await;
    // The slow client reads nothing, through a tiny receive window.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr()).await.unwrap();
    let mut request = format!("ws://{}/api/v1/ws", server.addr()).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (slow_ws, _) =
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.unwrap();
    let mut slow = Socket::greeted(slow_ws, Encoding::Json).await;
    subscribed(&slow.request(msg::subscribe(&f.board)).await);

    let mut fast = connect(server, token, MSGPACK).await;
    let mut last = subscribed(&fast.request(msg::subscribe(&f.board)).await).seq;
    let fanout = || server.state().ws().fanout().len();
    assert_eq!(fanout(), 2);
    let notes = "n".repeat(19_000);
    let mut rounds = 0;
    while fanout() == 2 {
        rounds += 1;
        assert!(rounds <= 600, "the slow consumer was never cut off");
        let mut item = harness::item(&f.group, &format!("item {rounds}"));
        item.values.insert(column.id, json!(notes));
        server.create_item(&f.owner, &f.board, &item).await;
        let event = fast.next_event().await;
        assert_eq!(event.seq, last + 1);
        last += 1;
    }
    // The fast client carries on, in order.
    create_item_rest(server, token, &f.board, &f.group, "after the cut").await;
    let event = fast.next_event().await;
    assert_eq!(event.seq, last + 1);
    assert_eq!(item_of(&event).name, "after the cut");
    // The slow one finds its connection ended (4008 when the close frame got through).
    let code = slow.closed().await;
    assert!(matches!(code, None | Some(4008)), "unexpected close code {code:?}");
}

async fn losing_board_membership_ends_the_subscription(server: &TestServer) {
    let f = fixture(server).await;
    let member = server.register("member").await;
    server.add_member(&f.owner, &f.org, &member, "member").await;
    server.add_board_member(&f.owner, &f.board, &member, "editor").await;
    let mut client = connect(server, &member.access_token, JSON).await;
    subscribed(&client.request(msg::subscribe(&f.board)).await);
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/boards/{}/members/{}", f.board, member.id),
            &f.owner.access_token,
            None,
        )
        .await
        .expect(204);
    // Written at once, before the gateway re-checked: it still must not reach them.
    create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "secret").await;
    let ended = client.next_unsubscribed().await;
    assert_eq!(ended.board_id, f.board);
    assert_eq!(ended.error.code, ErrorCode::NotFound);
    done(&client.request(msg::ping()).await);
    assert!(
        client
            .history
            .iter()
            .all(|e| !matches!(e, ServerFrame::Event(e) if e.data["name"] == "secret")),
        "a removed member saw a later event: {:?}",
        client.history
    );
    let reply = client.request(msg::subscribe(&f.board)).await;
    assert_eq!(error_code(&reply), "not_found");
}

fn mint(user: &str, session: &str, exp_from_now: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": "boardroom", "aud": "boardroom-api", "sub": user, "sid": session, "tv": 0,
        "iat": now - 60, "nbf": now - 60, "exp": now + exp_from_now,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret-test-secret-test-secret-0123"),
    )
    .unwrap()
}

async fn an_expired_token_ends_the_socket_unless_refreshed(server: &TestServer) {
    let f = fixture(server).await;
    let owner = &f.owner;
    // Verification allows 5 s of leeway: this token has about 3 s left.
    let short = mint(&owner.id, &owner.session_id, -2);
    let mut doomed = connect(server, &short, JSON).await;
    subscribed(&doomed.request(msg::subscribe(&f.board)).await);
    let mut refreshed = connect(server, &mint(&owner.id, &owner.session_id, -2), MSGPACK).await;
    done(&refreshed.request(msg::auth(&owner.access_token)).await);
    // A token of someone else is refused.
    let other = server.register("other").await;
    let reply = refreshed.request(msg::auth(&other.access_token)).await;
    assert_eq!(error_code(&reply), "forbidden");
    let code = doomed.closed().await;
    assert_eq!(code, Some(4001));
    tokio::time::sleep(Duration::from_secs(1)).await;
    done(&refreshed.request(msg::ping()).await);
    // A revoked session ends its sockets too.
    server.post("/api/v1/auth/logout", Some(&owner.access_token), &json!({})).await;
    assert_eq!(refreshed.closed().await, Some(4001));
}

async fn a_revoked_api_key_ends_the_socket(server: &TestServer) {
    let f = fixture(server).await;
    let (key_id, key) = server.create_key(&f.owner, &f.org, &["boards:read"]).await;
    let (_, blind) = server.create_key(&f.owner, &f.org, &["items:read"]).await;
    let mut client = connect(server, &key, JSON).await;
    let data = subscribed(&client.request(msg::subscribe(&f.board)).await);
    assert_eq!(data.snapshot.expect("a snapshot").items, [], "items without items:read");
    // The key's scopes hold on the socket too.
    let reply = client.request(msg::create_item(&f.board, harness::item(&f.group, "x"))).await;
    assert_eq!(error_code(&reply), "insufficient_scope");
    let mut no_read = connect(server, &blind, JSON).await;
    let reply = no_read.request(msg::subscribe(&f.board)).await;
    assert_eq!(error_code(&reply), "insufficient_scope");
    // The holder gets their own IP blocked with bad keys: the socket's re-check is no guess at
    // a key, so that block must not keep the revoked key's socket alive.
    for _ in 0..boardroom::auth::api_keys::MAX_FAILURES_PER_IP {
        let bad = format!("brk_{}", "x".repeat(40));
        server.get_as("/api/v1/me", &bad).await.expect_error(401, "unauthenticated");
    }
    let bad = format!("brk_{}", "y".repeat(40));
    server.get_as("/api/v1/me", &bad).await.expect_error(429, "rate_limited");
    server
        .send_as(
            Method::DELETE,
            &format!("/api/v1/orgs/{}/api-keys/{key_id}", f.org),
            &f.owner.access_token,
            None,
        )
        .await;
    assert_eq!(client.closed().await, Some(4001));
}

/// A key re-scoped by its owner ends its subscriptions, which deliver by the scopes they were
/// made under; the socket stays, and subscribing again applies the new scopes.
async fn a_rescoped_key_ends_its_subscriptions(server: &TestServer) {
    let f = fixture(server).await;
    let (key_id, key) = server.create_key(&f.owner, &f.org, &["boards:read", "items:read"]).await;
    create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "seen before").await;
    let mut client = connect(server, &key, JSON).await;
    let first = subscribed(&client.request(msg::subscribe(&f.board)).await);
    assert_eq!(first.snapshot.expect("a snapshot").items.len(), 1);
    let rescope = UpdateApiKey { scopes: Some(vec!["boards:read".into()]), ..Default::default() };
    let path = format!("/api/v1/orgs/{}/api-keys/{key_id}", f.org);
    let key: ApiKey = server
        .send_body(Method::PATCH, &path, &f.owner.access_token, &rescope)
        .await
        .expect_as(200);
    assert_eq!(key.scopes, [Scope::BoardsRead]);
    let ended = client.next_unsubscribed().await;
    assert_eq!(ended.board_id, f.board);
    assert_eq!(ended.error.code, ErrorCode::InsufficientScope);
    let again = subscribed(&client.request(msg::subscribe(&f.board)).await);
    assert_eq!(again.snapshot.expect("a snapshot").items, [], "no items without items:read");
}

async fn malformed_frames_are_refused_for_that_connection_only(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let mut bystander = connect(server, token, JSON).await;
    subscribed(&bystander.request(msg::subscribe(&f.board)).await);

    let mut client = connect(server, token, JSON).await;
    client.send_raw(Message::Text("{not json".into())).await;
    let reply = client.next_reply().await;
    assert_eq!(reply.id, None);
    assert_eq!(error_code(&reply), "malformed_body");
    client.send_raw(Message::Text(r#"{"type":"launch_rockets","id":7}"#.into())).await;
    let reply = client.next_reply().await;
    assert_eq!(reply.id, Some(RequestId::Number(7)));
    assert_eq!(error_code(&reply), "malformed_body");
    let reply = client.request(msg::subscribe("not-a-uuid")).await;
    assert_eq!(error_code(&reply), "validation_failed");

    let mut packed = connect(server, token, MSGPACK).await;
    packed.send_raw(Message::Binary(vec![0xc1, 0xff, 0x00].into())).await;
    let reply = packed.next_reply().await;
    assert_eq!(error_code(&reply), "malformed_body");
    done(&packed.request(msg::ping()).await);

    // A frame near the size limit is read whole, though far larger than the socket's 1 KiB read
    // buffer (valid JSON: a ping with 60 KiB of trailing spaces).
    let large = format!(r#"{{"type":"ping","id":8}}{}"#, " ".repeat(60 * 1024));
    client.send_raw(Message::Text(large.into())).await;
    let reply = client.next_reply().await;
    assert_eq!(reply.id, Some(RequestId::Number(8)));
    done(&reply);

    // Oversized: the connection is closed; nobody else notices.
    client.send_raw(Message::Text("x".repeat(100 * 1024).into())).await;
    let code = client.closed().await;
    assert!(matches!(code, None | Some(1009)), "unexpected close code {code:?}");
    create_item_rest(server, token, &f.board, &f.group, "still here").await;
    let event = bystander.next_event().await;
    assert_eq!(item_of(&event).name, "still here");
    done(&packed.request(msg::ping()).await);
    server.get("/health/live").await;
}

async fn refusals_happen_before_the_upgrade(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let url = format!("ws://{}/api/v1/ws", server.addr());
    // No credentials.
    let err = tokio_tungstenite::connect_async(url.as_str()).await.unwrap_err();
    assert_eq!(http_status(err), 401);
    let err = try_connect(server, Auth::Bearer("nonsense"), Some(JSON), None).await.unwrap_err();
    assert_eq!(http_status(err), 401);
    // A foreign origin.
    let err = try_connect(server, Auth::Bearer(token), Some(JSON), Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(http_status(err), 403);
    let mut browser =
        try_connect(server, Auth::Bearer(token), Some(JSON), Some("https://app.example"))
            .await
            .unwrap();
    done(&browser.request(msg::ping()).await);
    // Boardroom subprotocols of another protocol version only: 426, naming the supported ones
    // in `Sec-WebSocket-Protocol` and the message, with the stable code.
    for offered in ["boardroom.v9.xml", "boardroom.v2.json, boardroom.v2.msgpack"] {
        let err = try_connect(server, Auth::Bearer(token), Some(offered), None).await.unwrap_err();
        match err {
            WsError::Http(response) => {
                assert_eq!(response.status().as_u16(), 426, "{offered}");
                let headers = response.headers();
                assert_eq!(
                    headers["sec-websocket-protocol"],
                    "boardroom.v1.json, boardroom.v1.msgpack"
                );
                assert_eq!(headers["upgrade"], "websocket");
                let body: ErrorEnvelope =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body.error.code, ErrorCode::UnsupportedProtocolVersion, "{body:?}");
                let message = &body.error.message;
                assert!(message.contains("boardroom.v1.json"), "{message}");
                assert!(message.contains("boardroom.v1.msgpack"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // Only names that are not Boardroom subprotocols, or this version with an unknown encoding:
    // 400, with the JSON error body.
    for offered in ["graphql-ws", "boardroom.v1.xml"] {
        let err = try_connect(server, Auth::Bearer(token), Some(offered), None).await.unwrap_err();
        match err {
            WsError::Http(response) => {
                assert_eq!(response.status().as_u16(), 400, "{offered}");
                assert!(response.headers().get("upgrade").is_none());
                let body: ErrorEnvelope =
                    serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
                assert_eq!(body.error.code, ErrorCode::BadRequest);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // A supported name among others of another version wins; no subprotocol at all is JSON.
    let mut mixed = try_connect(
        server,
        Auth::Bearer(token),
        Some("boardroom.v2.json, boardroom.v1.json"),
        None,
    )
    .await
    .unwrap();
    done(&mixed.request(msg::ping()).await);
    let mut plain = try_connect(server, Auth::Bearer(token), None, None).await.unwrap();
    done(&plain.request(msg::ping()).await);
    // Tickets are single-use.
    let ticket = server.ws_ticket(token).await.ticket;
    let mut client = try_connect(server, Auth::Ticket(&ticket), Some(JSON), None).await.unwrap();
    subscribed(&client.request(msg::subscribe(&f.board)).await);
    let err = try_connect(server, Auth::Ticket(&ticket), Some(JSON), None).await.unwrap_err();
    assert_eq!(http_status(err), 401);
    // Tickets need an authenticated caller.
    server.post("/api/v1/ws/ticket", None, &json!({})).await.expect_error(401, "unauthenticated");
    // The ticket decides who connects, whatever cookie rides along: with the owner's own cookie
    // (the usual browser case) and with someone else's.
    let stranger = server.register("stranger").await;
    let ticket_of = |token: &str| {
        let token = token.to_owned();
        async move { server.ws_ticket(&token).await.ticket }
    };
    for cookie in [token.as_str(), stranger.access_token.as_str()] {
        let ticket = ticket_of(token).await;
        let mut owner =
            try_connect(server, Auth::TicketWithCookie(&ticket, cookie), Some(JSON), None)
                .await
                .unwrap();
        subscribed(&owner.request(msg::subscribe(&f.board)).await);
    }
    let ticket = ticket_of(&stranger.access_token).await;
    let mut not_owner =
        try_connect(server, Auth::TicketWithCookie(&ticket, token), Some(JSON), None)
            .await
            .unwrap();
    let reply = not_owner.request(msg::subscribe(&f.board)).await;
    assert_eq!(error_code(&reply), "not_found");
}

async fn presence_follows_who_is_viewing(server: &TestServer) {
    let f = fixture(server).await;
    let member = server.register("member").await;
    server.add_member(&f.owner, &f.org, &member, "member").await;
    server.add_board_member(&f.owner, &f.board, &member, "viewer").await;
    let subscribe = msg::subscribe(&f.board);
    let mut owner = connect(server, &f.owner.access_token, JSON).await;
    subscribed(&owner.request(subscribe.clone()).await);
    let joined = owner.next_presence().await;
    assert_eq!(joined.joined.as_ref(), Some(&f.owner.id));
    assert_eq!(joined.users, std::slice::from_ref(&f.owner.id));

    let mut tab_a = connect(server, &member.access_token, MSGPACK).await;
    subscribed(&tab_a.request(subscribe.clone()).await);
    let mut both = vec![f.owner.id.clone(), member.id.clone()];
    both.sort();
    let seen = owner.next_presence().await;
    assert_eq!(seen.joined.as_ref(), Some(&member.id));
    assert_eq!(seen.users, both);
    assert_eq!(tab_a.next_presence().await.users, both);

    // A second tab of the same user learns the list without announcing anything.
    let mut tab_b = connect(server, &member.access_token, JSON).await;
    subscribed(&tab_b.request(subscribe.clone()).await);
    let list = tab_b.next_presence().await;
    assert_eq!(list.users, both);
    assert_eq!(list.joined, None);
    drop(tab_a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    done(&owner.request(msg::ping()).await);
    assert!(
        owner.pending.iter().all(|f| !matches!(f, ServerFrame::Presence(_))),
        "one tab closing announced something: {:?}",
        owner.pending
    );
    // The last tab going ends the user's presence.
    done(&tab_b.request(msg::unsubscribe(&f.board)).await);
    let left = owner.next_presence().await;
    assert_eq!(left.left.as_ref(), Some(&member.id));
    assert_eq!(left.users, std::slice::from_ref(&f.owner.id));
}

async fn msgpack_frames_agree_with_python(server: &TestServer) {
    let f = fixture(server).await;
    let mut client = connect(server, &f.owner.access_token, MSGPACK).await;
    // Python packs a request; we answer it.
    let script = r#"
import msgpack, sys, json
if sys.argv[1] == "pack":
    print(msgpack.packb({"type": "subscribe", "id": 41, "board_id": sys.argv[2]}).hex())
else:
    print(json.dumps(msgpack.unpackb(bytes.fromhex(sys.argv[2]))))
"#;
    let python = |args: &[&str]| {
        let out =
            crate::harness::python().args(["-c", script]).args(args).output().expect("python");
        assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let packed = hex_decode(&python(&["pack", &f.board]));
    client.send_raw(Message::Binary(packed.into())).await;
    let reply = client.next_reply().await;
    assert_eq!(reply.id, Some(RequestId::Number(41)));
    ok_empty(&reply);
    // Python unpacks an event exactly as we do.
    create_item_rest(server, &f.owner.access_token, &f.board, &f.group, "packed").await;
    let (raw, ours) = loop {
        let raw = client.next_binary().await;
        let frame: ServerFrame = Encoding::MessagePack.decode(&raw).unwrap();
        if let ServerFrame::Event(event) = frame {
            break (raw, event);
        }
    };
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let theirs: Value = serde_json::from_str(&python(&["unpack", &hex])).unwrap();
    assert_eq!(theirs, Encoding::MessagePack.decode::<Value>(&raw).unwrap());
    assert_eq!(
        serde_json::from_value::<ServerFrame>(theirs).unwrap(),
        ServerFrame::Event(ours.clone())
    );
    assert_eq!(item_of(&ours).name, "packed");
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

async fn shutdown_closes_sockets_with_going_away(server: &TestServer) {
    let f = fixture(server).await;
    let mut client = connect(server, &f.owner.access_token, JSON).await;
    subscribed(&client.request(msg::subscribe(&f.board)).await);
    // What RunningServer::shutdown does first; the harness then stops the rest.
    server.state().ws().shutdown();
    assert_eq!(client.closed().await, Some(1001));
}

async fn a_silent_client_is_closed_and_leaves(server: &TestServer) {
    let f = fixture(server).await;
    let subscribe = msg::subscribe(&f.board);
    let mut watcher = connect(server, &f.owner.access_token, JSON).await;
    subscribed(&watcher.request(subscribe.clone()).await);
    let other = server.register("other").await;
    server.add_member(&f.owner, &f.org, &other, "admin").await;
    let mut silent = connect(server, &other.access_token, JSON).await;
    subscribed(&silent.request(subscribe).await);
    // The watcher keeps talking; the silent client reads nothing, so it never answers pings.
    let started = std::time::Instant::now();
    loop {
        done(&watcher.request(msg::ping()).await);
        let left = |p: &ServerFrame| matches!(p, ServerFrame::Presence(p) if p.left == Some(other.id.clone()));
        if watcher.pending.iter().any(left) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the silent client was never closed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "closed too early");
    // The close frame (4000) may be lost: reading the queued pings makes this client answer
    // pongs into a socket the server already shut, which resets it.
    let code = silent.closed().await;
    assert!(matches!(code, None | Some(4000)), "unexpected close code {code:?}");
}

async fn deleting_the_board_ends_its_subscriptions(server: &TestServer) {
    let f = fixture(server).await;
    let mut watcher = connect(server, &f.owner.access_token, MSGPACK).await;
    subscribed(&watcher.request(msg::subscribe(&f.board)).await);
    let mut writer = connect(server, &f.owner.access_token, JSON).await;
    ok_empty(&writer.request(msg::delete_board(&f.board)).await);
    let deleted = watcher.next_event().await;
    assert_eq!(deleted.kind, "board.deleted");
    let EventData::BoardDeleted(deleted) = event_data(&deleted) else { unreachable!() };
    assert_eq!(deleted.id, harness::id(&f.board));
    let ended = watcher.next_unsubscribed().await;
    assert_eq!(ended.error.code, ErrorCode::NotFound);
    assert!(server.state().ws().fanout().is_empty());
}

/// Losing org admin (and with it the boards one is not a member of), or leaving the org, ends
/// the affected subscriptions at once, not at the next periodic re-check (five minutes away here).
async fn org_membership_changes_reach_sockets_at_once(server: &TestServer) {
    let f = fixture(server).await;
    let admin = server.register("admin").await;
    server.add_member(&f.owner, &f.org, &admin, "admin").await;
    let editor = server.register("editor").await;
    server.add_member(&f.owner, &f.org, &editor, "member").await;
    server.add_board_member(&f.owner, &f.board, &editor, "editor").await;
    let mut as_admin = connect(server, &admin.access_token, JSON).await;
    subscribed(&as_admin.request(msg::subscribe(&f.board)).await);
    let mut as_editor = connect(server, &editor.access_token, JSON).await;
    subscribed(&as_editor.request(msg::subscribe(&f.board)).await);
    let members = format!("/api/v1/orgs/{}/members", f.org);
    let demoted: OrgMember =
        server.set_org_role(&f.owner, &f.org, &admin, "member").await.expect_as(200);
    assert_eq!(demoted.role, OrgRole::Member);
    let ended = as_admin.next_unsubscribed().await;
    assert_eq!(ended.error.code, ErrorCode::NotFound, "not on the board, no longer an admin");
    server
        .send_as(Method::DELETE, &format!("{members}/{}", editor.id), &f.owner.access_token, None)
        .await
        .expect(204);
    let ended = as_editor.next_unsubscribed().await;
    assert_eq!(ended.error.code, ErrorCode::NotFound, "no longer in the organization");
}
