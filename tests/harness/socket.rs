//! The tests' typed WebSocket client: requests are [`ClientFrame`]s encoded with
//! [`Encoding::encode`] in the encoding the server chose for the connection, and every frame the
//! server sends is decoded as a [`ServerFrame`] (so each one is checked against the protocol).
//! Frames arriving out of turn are kept for later. [`msg`] builds the client messages from the
//! REST body types, so the frame shapes live in one place.

use std::collections::VecDeque;
use std::time::Duration;

use boardroom_protocol::frames::{Done, EventFrame, Presence, Reply, Subscribed, Unsubscribed};
use boardroom_protocol::{ClientFrame, ClientMessage, Encoding, RequestId, ServerFrame};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Api;

/// The JSON subprotocol name.
pub const JSON: &str = Encoding::Json.subprotocol();
/// The MessagePack subprotocol name.
pub const MSGPACK: &str = Encoding::MessagePack.subprotocol();

/// How the upgrade authenticates.
pub enum Auth<'a> {
    /// `Authorization: Bearer`.
    Bearer(&'a str),
    /// `?ticket=`.
    Ticket(&'a str),
    /// A browser's upgrade: a ticket, with whatever access cookie the browser holds.
    TicketWithCookie(&'a str, &'a str),
}

/// One thing read from the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A server frame.
    Frame(ServerFrame),
    /// The connection ended, with the close code when a close frame came.
    Closed(Option<u16>),
}

/// A connected client; see the module docs.
#[derive(Debug)]
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    encoding: Encoding,
    next_id: u64,
    /// How long to wait for the next frame.
    patience: Duration,
    /// Frames read while waiting for something else, oldest first.
    pub pending: VecDeque<ServerFrame>,
    /// Every frame received, in order, unless [`Socket::keeping_no_history`].
    pub history: Vec<ServerFrame>,
    keep_history: bool,
}

/// Opens a socket, or answers the refusal before the upgrade. `offered` is the raw
/// `Sec-WebSocket-Protocol` header; the encoding is the one the server picked (JSON for none).
pub async fn try_connect(
    server: &Api,
    auth: Auth<'_>,
    offered: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, WsError> {
    let mut url = format!("ws://{}/api/v1/ws", server.addr());
    if let Auth::Ticket(ticket) | Auth::TicketWithCookie(ticket, _) = auth {
        url.push_str(&format!("?ticket={ticket}"));
    }
    let mut request = url.into_client_request().unwrap();
    match auth {
        Auth::Bearer(token) => {
            let value = format!("Bearer {token}").parse().unwrap();
            request.headers_mut().insert("authorization", value);
        }
        Auth::TicketWithCookie(_, cookie) => {
            let value = format!("br_access={cookie}").parse().unwrap();
            request.headers_mut().insert("cookie", value);
        }
        Auth::Ticket(_) => {}
    }
    if let Some(offered) = offered {
        request.headers_mut().insert("sec-websocket-protocol", offered.parse().unwrap());
    }
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
    let encoding = chosen.map_or(Some(Encoding::Json), Encoding::from_subprotocol);
    let encoding = encoding.unwrap_or_else(|| panic!("the server chose {chosen:?}"));
    Ok(Socket::greeted(ws, encoding).await)
}

/// Opens a socket with a bearer token, offering one subprotocol.
pub async fn connect(server: &Api, token: &str, protocol: &str) -> Socket {
    try_connect(server, Auth::Bearer(token), Some(protocol), None).await.unwrap()
}

/// The status of a refusal before the upgrade.
pub fn http_status(err: WsError) -> u16 {
    match err {
        WsError::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

impl Socket {
    /// Wraps an upgraded stream of `encoding` and reads its `hello`.
    pub async fn greeted(
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        encoding: Encoding,
    ) -> Socket {
        let mut socket = Socket {
            ws,
            encoding,
            next_id: 1,
            patience: Duration::from_secs(10),
            pending: VecDeque::new(),
            history: Vec::new(),
            keep_history: true,
        };
        match socket.next_received().await {
            Received::Frame(ServerFrame::Hello(hello)) => {
                assert_eq!(hello.protocol_version, boardroom_protocol::PROTOCOL_VERSION);
            }
            other => panic!("expected hello first, got {other:?}"),
        }
        socket
    }

    /// Keeps no history: for tests that measure the process's memory while reading much.
    pub fn keeping_no_history(mut self) -> Socket {
        self.keep_history = false;
        self
    }

    /// Waits up to `patience` for each frame (10 s by default).
    pub fn with_patience(mut self, patience: Duration) -> Socket {
        self.patience = patience;
        self
    }

    /// Sends a message as it is, bytes the test made itself.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// Sends `message` with the next id; answers the id.
    pub async fn send(&mut self, message: ClientMessage) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = ClientFrame { id: RequestId::Number(id), message };
        let bytes = self.encoding.encode(&frame).unwrap();
        let message = match self.encoding {
            Encoding::Json => Message::Text(String::from_utf8(bytes).unwrap().into()),
            Encoding::MessagePack => Message::Binary(bytes.into()),
        };
        self.send_raw(message).await;
        id
    }

    /// The next frame or close from the socket (pings skipped).
    pub async fn next_received(&mut self) -> Received {
        loop {
            let patience = self.patience;
            let next = tokio::time::timeout(patience, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {patience:?}"));
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(_)) | None => return Received::Closed(None),
            };
            let frame: ServerFrame = match message {
                Message::Text(text) => Encoding::Json.decode(text.as_bytes()),
                Message::Binary(bytes) => Encoding::MessagePack.decode(&bytes),
                Message::Close(frame) => return Received::Closed(frame.map(|f| u16::from(f.code))),
                _ => continue,
            }
            .unwrap_or_else(|err| panic!("not a server frame: {err}"));
            if self.keep_history {
                self.history.push(frame.clone());
            }
            return Received::Frame(frame);
        }
    }

    /// The next server frame, read or kept; the connection must not end.
    async fn next_frame(&mut self) -> ServerFrame {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        match self.next_received().await {
            Received::Frame(frame) => frame,
            Received::Closed(code) => panic!("closed ({code:?}) while waiting for a frame"),
        }
    }

    /// Sends a request and waits for its reply; other frames are kept for later.
    pub async fn request(&mut self, message: ClientMessage) -> Reply {
        let id = RequestId::Number(self.send(message).await);
        loop {
            match self.next_received().await {
                Received::Frame(ServerFrame::Reply(reply)) if reply.id.as_ref() == Some(&id) => {
                    return reply
                }
                Received::Frame(frame) => self.pending.push_back(frame),
                Received::Closed(code) => {
                    panic!("closed ({code:?}) while waiting for reply {id:?}")
                }
            }
        }
    }

    /// The next reply, whichever request it answers.
    pub async fn next_reply(&mut self) -> Reply {
        loop {
            if let ServerFrame::Reply(reply) = self.next_frame().await {
                return reply;
            }
        }
    }

    /// The next event, skipping other frames.
    pub async fn next_event(&mut self) -> EventFrame {
        loop {
            if let ServerFrame::Event(event) = self.next_frame().await {
                return event;
            }
        }
    }

    /// The next subscription the server ended, skipping other frames.
    pub async fn next_unsubscribed(&mut self) -> Unsubscribed {
        loop {
            if let ServerFrame::Unsubscribed(ended) = self.next_frame().await {
                return ended;
            }
        }
    }

    /// The next presence frame, skipping other frames.
    pub async fn next_presence(&mut self) -> Presence {
        loop {
            if let ServerFrame::Presence(presence) = self.next_frame().await {
                return presence;
            }
        }
    }

    /// Waits for the connection to end; answers the close code, if a close frame came.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Received::Closed(code) = self.next_received().await {
                return code;
            }
        }
    }

    /// The raw bytes of the next binary message (pings skipped), for byte-level checks.
    pub async fn next_binary(&mut self) -> Vec<u8> {
        loop {
            match self.ws.next().await.unwrap().unwrap() {
                Message::Binary(bytes) => return bytes.to_vec(),
                Message::Text(text) => panic!("expected a binary frame: {text}"),
                _ => continue,
            }
        }
    }
}

/// The `data` of a successful reply, as its protocol type.
#[track_caller]
pub fn ok<T: DeserializeOwned>(reply: &Reply) -> T {
    assert!(reply.ok && reply.error.is_none(), "reply failed: {reply:?}");
    let data = reply.data.clone().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(data.clone())
        .unwrap_or_else(|err| panic!("not a {}: {err}; {data}", std::any::type_name::<T>()))
}

/// Asserts that a reply succeeded (its data, if any, not looked at).
#[track_caller]
pub fn ok_empty(reply: &Reply) {
    assert!(reply.ok && reply.error.is_none(), "reply failed: {reply:?}");
}

/// Asserts that a reply succeeded with nothing more to say (`ping`, `auth`, `unsubscribe`):
/// its data is `Done`, `{}`.
#[track_caller]
pub fn done(reply: &Reply) {
    let Done {} = ok(reply);
    assert_eq!(reply.data, Some(serde_json::json!({})), "not an empty reply: {reply:?}");
}

/// The subscription a `subscribe` reply confirms.
#[track_caller]
pub fn subscribed(reply: &Reply) -> Subscribed {
    ok(reply)
}

/// The error code of a failed reply.
#[track_caller]
pub fn error_code(reply: &Reply) -> &'static str {
    assert!(!reply.ok && reply.data.is_none(), "reply succeeded: {reply:?}");
    reply.error.as_ref().expect("a failed reply names its error").code.as_str()
}

/// The client messages, built from the REST bodies where a board write has one. Ids are the
/// text the tests hold.
pub mod msg {
    use boardroom_protocol::boards;
    use boardroom_protocol::ClientMessage;

    pub fn ping() -> ClientMessage {
        ClientMessage::Ping {}
    }

    pub fn auth(token: &str) -> ClientMessage {
        ClientMessage::Auth { token: token.to_owned() }
    }

    pub fn subscribe(board: &str) -> ClientMessage {
        ClientMessage::Subscribe { board_id: board.to_owned(), after_seq: None }
    }

    /// Subscribes, replaying the events after `after_seq`.
    pub fn resume(board: &str, after_seq: i64) -> ClientMessage {
        ClientMessage::Subscribe { board_id: board.to_owned(), after_seq: Some(after_seq) }
    }

    pub fn unsubscribe(board: &str) -> ClientMessage {
        ClientMessage::Unsubscribe { board_id: board.to_owned() }
    }

    pub fn delete_board(board: &str) -> ClientMessage {
        ClientMessage::DeleteBoard { board_id: board.to_owned() }
    }

    pub fn create_column(board: &str, body: boards::CreateColumn) -> ClientMessage {
        ClientMessage::CreateColumn { board_id: board.to_owned(), body }
    }

    pub fn create_group(board: &str, body: boards::CreateGroup) -> ClientMessage {
        ClientMessage::CreateGroup { board_id: board.to_owned(), body }
    }

    pub fn create_item(board: &str, body: boards::CreateItem) -> ClientMessage {
        ClientMessage::CreateItem { board_id: board.to_owned(), body }
    }

    pub fn create_update(board: &str, item: &str, body: boards::CreateUpdate) -> ClientMessage {
        ClientMessage::CreateUpdate { board_id: board.to_owned(), item_id: item.to_owned(), body }
    }

    pub fn update_item(board: &str, item: &str, body: boards::UpdateItem) -> ClientMessage {
        ClientMessage::UpdateItem { board_id: board.to_owned(), item_id: item.to_owned(), body }
    }
}

/// An event's `data` as the protocol type its `kind` names.
#[track_caller]
pub fn event_data(event: &EventFrame) -> boardroom_protocol::events::EventData {
    let tagged = serde_json::json!({ "kind": event.kind, "data": event.data });
    serde_json::from_value(tagged).unwrap_or_else(|err| {
        panic!("{} does not carry its data: {err}; {}", event.kind, event.data)
    })
}
