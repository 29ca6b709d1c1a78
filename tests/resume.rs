//! Resuming a socket (`subscribe` with `after_seq`): the connection's reader replays the log
//! itself, so while a replay waits for a client that reads slowly (or not at all) nothing else
//! the reader does happens. The replay is raced with the server's shutdown and bounded by one
//! heartbeat period overall, so neither shutdown nor access re-checks wait behind it.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::boards::fixture;
use crate::harness::socket::JSON;
use crate::harness::{both_backends_with, TestServer};

both_backends_with!(patient_sockets; a_stalled_replay_gives_way_to_shutdown);

/// A replay's patience with a client that reads nothing is one heartbeat: long enough here that
/// a connection ended by it could not be mistaken for one ended by the shutdown.
const HEARTBEAT_SECS: u64 = 40;

fn patient_sockets(settings: &mut boardroom::config::Settings) {
    settings.ws_heartbeat_secs = HEARTBEAT_SECS;
}

/// Events of about 480 KB each (three long-text values of 80 KB, the item and what changed):
/// together far more than the outbox and both ends' socket buffers hold, so a client that
/// reads nothing stalls the replay.
const EVENTS: usize = 48;

async fn a_stalled_replay_gives_way_to_shutdown(server: &TestServer) {
    let f = fixture(server).await;
    let token = &f.owner.access_token;
    let board_path = format!("/api/v1/boards/{}", f.board);
    let mut columns = Vec::new();
    for title in ["A", "B", "C"] {
        let body = json!({"title": title, "type": "long_text"});
        let column = server.post(&format!("{board_path}/columns"), Some(token), &body).await;
        columns.push(column.expect(201)["id"].as_str().unwrap().to_owned());
    }
    let body = json!({"group_id": f.group, "name": "heavy"});
    let item = server.post(&format!("{board_path}/items"), Some(token), &body).await;
    let item_path = format!("{board_path}/items/{}", item.expect(201)["id"].as_str().unwrap());
    for n in 0..EVENTS {
        let text = format!("{n}{}", "😀".repeat(19_990));
        let values: serde_json::Map<String, Value> =
            columns.iter().map(|c| (c.clone(), json!(text))).collect();
        let body = json!({ "values": values });
        server.send_as(Method::PATCH, &item_path, token, Some(&body)).await.expect(200);
    }

    let mut request = format!("ws://{}/api/v1/ws", server.addr()).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.headers_mut().insert("sec-websocket-protocol", JSON.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(next_frame(&mut socket).await["type"], "hello");
    let subscribe = json!({"type": "subscribe", "id": 1, "board_id": f.board, "after_seq": 0});
    socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();
    let reply = next_frame(&mut socket).await;
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    // From here the client reads nothing: the replay fills the socket and waits for room.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let user: uuid::Uuid = f.owner.id.parse().unwrap();
    let gateway = server.state().ws();
    assert_eq!(gateway.open_sockets(user), 1);

    gateway.shutdown();
    // The connection ends (and gives up its place in the user's count of sockets) within the
    // shutdown's few seconds of goodbye, not when the replay's patience runs out.
    let started = Instant::now();
    while gateway.open_sockets(user) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(HEARTBEAT_SECS / 4),
            "the connection outlived the shutdown by {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(socket);
}

/// The next text frame (pings skipped).
async fn next_frame(socket: &mut WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}
