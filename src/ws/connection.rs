//! One WebSocket connection: a reader that runs the client's requests, and a writer that drains
//! the connection's bounded [`Outbox`] to the socket.
//!
//! The reader owns the connection's state (credential, subscriptions, rate limiter) and
//! handles one frame at a time. A board write is handed to its board in frame order and
//! answered after its commit, while the reader goes on reading: a client may pipeline up to
//! [`MAX_IN_FLIGHT`] writes, and they join the same group commit. The writer never
//! blocks anyone else: the fan-out pushes shared bytes into the outbox, and when the bytes
//! queued exceed the configured bound the connection is closed as a slow consumer instead of
//! growing. Closing is one `watch` value that both halves follow, so any part (fan-out, reader,
//! shutdown) ends the connection the same way, with a close code and reason.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use boardroom_actors::board::BoardQuery;
use boardroom_actors::domain::{BoardCommand, BoardRole, ColumnKind, Placement};
use boardroom_protocol::frames::{close, EventFrame, Hello, Reply, Unsubscribed};
use boardroom_protocol::{
    ClientFrame, ClientMessage, Encoding, ErrorBody, ErrorCode, RequestId, Scope, ServerFrame,
    PROTOCOL_VERSION,
};
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::fanout::{message, wire_time, Subscription};
use crate::access::{requester_for, requester_recheck, scopes_of};
use crate::auth::{Caller, Principal};
use crate::error::ApiError;
use crate::http::boards::board_error;
use crate::http::AppState;

/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// How far back `after_seq` may reach; further back, the subscriber gets a snapshot instead.
pub const MAX_REPLAY: i64 = 10_000;
/// Rows read from the log per query while replaying.
const REPLAY_PAGE: i64 = 1000;
/// Board access is re-checked every this many credential re-checks (and on member events).
const BOARD_RECHECK_EVERY: u32 = 6;
/// Bytes counted per queued message on top of its payload.
const MESSAGE_OVERHEAD: usize = 64;

/// Asks a connection's reader to do something on the fan-out's behalf.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Membership of this board changed (or the board went): re-check access to it.
    Recheck(Uuid),
    /// The user's organization membership changed: re-check access to every subscribed board.
    RecheckAll,
}

/// A connection's outbound side: bounded in bytes, closable from anywhere.
///
/// The queues are plain `VecDeque`s behind a lock with a [`Notify`] each, not channels: a
/// channel allocates its first block of slots up front, which every idle socket would carry;
/// an empty `VecDeque` allocates nothing.
pub struct Outbox {
    frames: Mutex<VecDeque<Message>>,
    frames_ready: Notify,
    controls: Mutex<VecDeque<Control>>,
    controls_ready: Notify,
    /// Woken when the writer has written frames (and at close): a replay waits on it for room.
    drained: Notify,
    queued: AtomicUsize,
    limit: usize,
    /// How this connection's frames are encoded.
    pub encoding: Encoding,
    closing: watch::Sender<Option<(u16, String)>>,
    /// Whether `closing` holds a value; read for every frame pushed, so kept lock-free.
    is_closing: AtomicBool,
}

/// A board write's reply, sent once the write has committed.
type PendingReply = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Board writes one connection may have waiting for their commit. Beyond it the reader stops
/// reading, so a pipelining client is held back by TCP rather than by the server's memory.
pub const MAX_IN_FLIGHT: usize = 64;

/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;

fn size_of(message: &Message) -> usize {
    let payload = match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    };
    payload + MESSAGE_OVERHEAD
}

/// What follows a new [`Outbox`] from outside it: its close signal.
pub struct OutboxEnds {
    /// The close code and reason, once set.
    pub closed: watch::Receiver<Option<(u16, String)>>,
}

fn locked<T>(queue: &Mutex<VecDeque<T>>) -> MutexGuard<'_, VecDeque<T>> {
    // A poisoned lock only means a panic elsewhere; a queue is still a valid queue.
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    /// A new outbox holding at most `limit` bytes.
    pub fn new(encoding: Encoding, limit: usize) -> (Arc<Outbox>, OutboxEnds) {
        let (closing, closed) = watch::channel(None);
        let outbox = Outbox {
            frames: Mutex::new(VecDeque::new()),
            frames_ready: Notify::new(),
            controls: Mutex::new(VecDeque::new()),
            controls_ready: Notify::new(),
            drained: Notify::new(),
            queued: AtomicUsize::new(0),
            limit,
            encoding,
            closing,
            is_closing: AtomicBool::new(false),
        };
        (Arc::new(outbox), OutboxEnds { closed })
    }

    /// Queues a message, or closes the connection as a slow consumer if the bound is reached.
    pub fn push(&self, message: Message) {
        if self.is_closing.load(Ordering::Acquire) {
            return;
        }
        let size = size_of(&message);
        let before = self.queued.fetch_add(size, Ordering::AcqRel);
        if before + size > self.limit {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            self.close(close::SLOW_CONSUMER, "slow consumer");
            return;
        }
        locked(&self.frames).push_back(message);
        self.frames_ready.notify_one();
    }

    /// Waits until a message of `size` bytes fits beside what is queued (or nothing is queued,
    /// so one message larger than the bound is still tried, as live events are). A replay
    /// queues its events this way, as the socket drains, instead of all at once. False when
    /// the connection is closing, or when nothing was written for `patience`: the client stopped
    /// reading, and the connection is closed as a slow consumer.
    pub async fn wait_for_room(&self, size: usize, patience: Duration) -> bool {
        let mut deadline = tokio::time::Instant::now() + patience;
        let mut queued = usize::MAX;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before looking, so a drain between the look and the wait is not missed.
            drained.as_mut().enable();
            if self.is_closing.load(Ordering::Acquire) {
                return false;
            }
            let now_queued = self.queued.load(Ordering::Acquire);
            if now_queued == 0 || now_queued + size <= self.limit {
                return true;
            }
            if now_queued < queued {
                // Progress: the client reads, however slowly.
                deadline = tokio::time::Instant::now() + patience;
            }
            queued = now_queued;
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                self.close(close::SLOW_CONSUMER, "slow consumer");
                return false;
            }
        }
    }

    /// Takes up to `max` queued frames, with their size in bytes.
    fn take_frames(&self, max: usize) -> (Vec<Message>, usize) {
        let mut frames = locked(&self.frames);
        let count = frames.len().min(max);
        let taken: Vec<Message> = frames.drain(..count).collect();
        if frames.is_empty() && frames.capacity() > WRITE_BATCH {
            // A burst grew the queue; an idle socket should not keep that memory.
            frames.shrink_to_fit();
        }
        let size = taken.iter().map(size_of).sum();
        (taken, size)
    }

    /// The writer has written (or dropped) frames of `size` bytes: they no longer count, and a
    /// replay waiting for room may go on.
    fn written(&self, size: usize) {
        self.queued.fetch_sub(size, Ordering::AcqRel);
        self.drained.notify_waiters();
    }

    /// Frames queued and not yet written (tests).
    #[cfg(test)]
    pub fn queued_frames(&self) -> Vec<Message> {
        self.take_frames(usize::MAX).0
    }

    /// Encodes and queues a frame.
    pub fn send(&self, frame: &ServerFrame) {
        if let Some(message) = message(self.encoding, frame) {
            self.push(message);
        }
    }

    /// Closes the connection with `code` and `reason`; the first close wins.
    pub fn close(&self, code: u16, reason: &str) {
        self.closing.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some((code, reason.to_owned()));
            true
        });
        self.is_closing.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// Asks the reader to act.
    pub fn control(&self, control: Control) {
        locked(&self.controls).push_back(control);
        self.controls_ready.notify_one();
    }

    fn take_control(&self) -> Option<Control> {
        locked(&self.controls).pop_front()
    }
}

/// Limits of one connection, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Outbound bytes queued before the connection is closed.
    pub outbound_bytes: usize,
    /// Client frames per second.
    pub frames_per_sec: u32,
    /// Silence after which the connection is closed.
    pub heartbeat: Duration,
    /// How often the credential is re-checked.
    pub recheck: Duration,
}

/// What the upgrade established.
pub struct Accepted {
    /// The app.
    pub state: AppState,
    /// Who connected, from where.
    pub caller: Caller,
    /// The credential (access token or API key) the socket lives on; never logged.
    pub credential: String,
    /// Frame encoding.
    pub encoding: Encoding,
    /// Limits.
    pub limits: Limits,
    /// The socket's place in its user's count of open sockets, held for the connection's life.
    pub slot: super::SocketSlot,
}

struct Connection {
    state: AppState,
    caller: Caller,
    credential: String,
    outbox: Arc<Outbox>,
    subs: HashMap<Uuid, Arc<Subscription>>,
    limiter: DefaultDirectRateLimiter,
    rechecks: u32,
    /// How long a replay waits for a client that reads nothing before closing it (4008).
    patience: Duration,
}

/// Runs a connection until either side ends it.
pub async fn run(socket: WebSocket, accepted: Accepted) {
    let Accepted { state, caller, credential, encoding, limits, slot } = accepted;
    let (sink, mut stream) = socket.split();
    let (outbox, ends) = Outbox::new(encoding, limits.outbound_bytes);
    slot.attach(&outbox);
    let OutboxEnds { mut closed } = ends;
    let writer = tokio::spawn(write_loop(sink, outbox.clone(), closed.clone()));
    outbox.send(&ServerFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        heartbeat_secs: limits.heartbeat.as_secs(),
    }));
    let per_sec = NonZeroU32::new(limits.frames_per_sec).unwrap_or(NonZeroU32::MIN);
    let mut conn = Connection {
        state: state.clone(),
        caller,
        credential,
        outbox: outbox.clone(),
        subs: HashMap::new(),
        limiter: RateLimiter::direct(Quota::per_second(per_sec)),
        rechecks: 0,
        patience: limits.heartbeat,
    };
    let mut shutdown = state.ws().shutdown_signal();
    // The server pings at a third of the heartbeat period, so a live client always answers in time.
    let mut ping = tokio::time::interval(limits.heartbeat / 3);
    let mut recheck = tokio::time::interval(limits.recheck);
    // A long command delays the ticks; catching up with a burst of re-checks would be waste.
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let mut last_heard = Instant::now();
    let mut in_flight: FuturesUnordered<PendingReply> = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = until_closed(&mut closed) => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = until_shutdown(&mut shutdown) => {
                outbox.close(close::GOING_AWAY, "server shutting down");
                break;
            }
            // At the bound, frames wait in the socket and TCP pushes back on the client.
            received = stream.next(), if in_flight.len() < MAX_IN_FLIGHT => {
                let message = match received {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => {
                        // tungstenite is not a direct dependency; its capacity error reads
                        // "Message too long: <size> > <max>".
                        if err.to_string().contains("too long") {
                            outbox.close(close::MESSAGE_TOO_BIG, "message too big");
                        } else {
                            outbox.close(close::PROTOCOL_ERROR, "protocol error");
                        }
                        break;
                    }
                    None => break,
                };
                // Handling a frame is boxed: its future is large (subscribing reads the log),
                // and inline it would sit in every idle connection's task for its whole life.
                let pending = match message {
                    Message::Text(text) => {
                        Box::pin(conn.handle(Encoding::Json, text.as_bytes())).await
                    }
                    Message::Binary(bytes) => {
                        Box::pin(conn.handle(Encoding::MessagePack, &bytes)).await
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                // Heard now, and counted from when the frame was served: serving it (a long
                // replay, say) is no silence of the client's, whose pongs wait unread meanwhile.
                last_heard = Instant::now();
                in_flight.extend(pending);
            }
            () = outbox.controls_ready.notified() => {
                while let Some(control) = outbox.take_control() {
                    match control {
                        Control::Recheck(board) => Box::pin(conn.recheck_board(board)).await,
                        Control::RecheckAll => Box::pin(conn.recheck_boards()).await,
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.heartbeat {
                    outbox.close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                    break;
                }
                outbox.push(Message::Ping(Default::default()));
            }
            _ = recheck.tick() => Box::pin(conn.recheck()).await,
        }
    }
    conn.end_all();
    outbox.close(close::NORMAL, "");
    drop(conn);
    drop(outbox);
    let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    outbox: Arc<Outbox>,
    closed: watch::Receiver<Option<(u16, String)>>,
) {
    let mut close_signal = closed.clone();
    {
        // One close future for the connection's life: a new one per frame would register
        // with the watch again for every event delivered.
        let close_signal = until_closed(&mut close_signal);
        tokio::pin!(close_signal);
        'connection: loop {
            tokio::select! {
                biased;
                () = &mut close_signal => break,
                () = outbox.frames_ready.notified() => loop {
                    // Write everything already queued with one flush: under load a socket gets
                    // many events at once, and a syscall per frame is what would cap deliveries.
                    let (batch, size) = outbox.take_frames(WRITE_BATCH);
                    if batch.is_empty() {
                        break;
                    }
                    let write = async {
                        for message in batch {
                            sink.feed(message).await?;
                        }
                        sink.flush().await
                    };
                    let sent = tokio::select! {
                        biased;
                        () = &mut close_signal => None,
                        sent = write => Some(sent),
                    };
                    outbox.written(size);
                    if !matches!(sent, Some(Ok(()))) {
                        break 'connection;
                    }
                },
            }
        }
    }
    // Whatever ended the writer ends the connection (a dead socket included).
    outbox.close(close::NORMAL, "");
    let reason = closed.borrow().clone();
    if let Some((code, reason)) = reason {
        // A slow consumer's socket may be full: the close frame is best effort.
        let frame = CloseFrame { code, reason: reason.into() };
        let _ =
            tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame))))
                .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

async fn until_closed(closed: &mut watch::Receiver<Option<(u16, String)>>) {
    let _ = closed.wait_for(Option::is_some).await;
}

async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn error_body(err: &ApiError) -> ErrorBody {
    err.to_body()
}

fn body(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody { code, message: message.into() }
}

fn uuid(field: &str, raw: &str) -> Result<Uuid, ErrorBody> {
    Uuid::try_parse(raw)
        .map_err(|_| body(ErrorCode::ValidationFailed, format!("{field} is not a valid id")))
}

fn opt_uuid(field: &str, raw: Option<&String>) -> Result<Option<Uuid>, ErrorBody> {
    raw.map(|r| uuid(field, r)).transpose()
}

fn placement(before: Option<&String>, after: Option<&String>) -> Result<Placement, ErrorBody> {
    Ok(Placement { before: opt_uuid("before", before)?, after: opt_uuid("after", after)? })
}

fn values(
    raw: &std::collections::BTreeMap<String, Value>,
) -> Result<std::collections::BTreeMap<Uuid, Value>, ErrorBody> {
    raw.iter().map(|(k, v)| Ok((uuid("values key", k)?, v.clone()))).collect()
}

/// A client message as a board command: the board it targets and the command.
fn command(message: &ClientMessage) -> Result<Option<(Uuid, BoardCommand)>, ErrorBody> {
    use ClientMessage as M;
    let cmd = match message {
        M::Ping {} | M::Auth { .. } | M::Subscribe { .. } | M::Unsubscribe { .. } => {
            return Ok(None)
        }
        M::UpdateBoard { board_id, name, description } => (
            board_id,
            BoardCommand::UpdateBoard { name: name.clone(), description: description.clone() },
        ),
        M::DeleteBoard { board_id } => (board_id, BoardCommand::DeleteBoard),
        M::SetMember { board_id, user_id, role } => {
            let role = BoardRole::parse(role).ok_or_else(|| {
                body(ErrorCode::ValidationFailed, "role must be owner, editor or viewer")
            })?;
            (board_id, BoardCommand::SetMember { user_id: uuid("user_id", user_id)?, role })
        }
        M::RemoveMember { board_id, user_id } => {
            (board_id, BoardCommand::RemoveMember { user_id: uuid("user_id", user_id)? })
        }
        M::CreateColumn { board_id, title, column_type, settings, before, after } => {
            let kind = ColumnKind::parse(column_type).ok_or_else(|| {
                body(ErrorCode::ValidationFailed, "column_type must be one of text, long_text, number, status, date, person, checkbox, dropdown, link")
            })?;
            (
                board_id,
                BoardCommand::CreateColumn {
                    title: title.clone(),
                    kind,
                    settings: settings.clone(),
                    placement: placement(before.as_ref(), after.as_ref())?,
                },
            )
        }
        M::UpdateColumn { board_id, column_id, title, settings, before, after } => (
            board_id,
            BoardCommand::UpdateColumn {
                column_id: uuid("column_id", column_id)?,
                title: title.clone(),
                settings: settings.clone(),
                placement: placement(before.as_ref(), after.as_ref())?,
            },
        ),
        M::DeleteColumn { board_id, column_id } => {
            (board_id, BoardCommand::DeleteColumn { column_id: uuid("column_id", column_id)? })
        }
        M::CreateGroup { board_id, title, color, before, after } => (
            board_id,
            BoardCommand::CreateGroup {
                title: title.clone(),
                color: color.clone(),
                placement: placement(before.as_ref(), after.as_ref())?,
            },
        ),
        M::UpdateGroup { board_id, group_id, title, color, before, after } => (
            board_id,
            BoardCommand::UpdateGroup {
                group_id: uuid("group_id", group_id)?,
                title: title.clone(),
                color: color.clone(),
                placement: placement(before.as_ref(), after.as_ref())?,
            },
        ),
        M::DeleteGroup { board_id, group_id } => {
            (board_id, BoardCommand::DeleteGroup { group_id: uuid("group_id", group_id)? })
        }
        M::CreateItem { board_id, group_id, name, values: v, before, after } => (
            board_id,
            BoardCommand::CreateItem {
                group_id: uuid("group_id", group_id)?,
                name: name.clone(),
                values: values(v)?,
                placement: placement(before.as_ref(), after.as_ref())?,
            },
        ),
        M::UpdateItem { board_id, item_id, name, values: v, expected_version } => (
            board_id,
            BoardCommand::UpdateItem {
                item_id: uuid("item_id", item_id)?,
                name: name.clone(),
                values: values(v)?,
                expected_version: *expected_version,
            },
        ),
        M::MoveItem { board_id, item_id, group_id, before, after } => (
            board_id,
            BoardCommand::MoveItem {
                item_id: uuid("item_id", item_id)?,
                group_id: uuid("group_id", group_id)?,
                placement: placement(before.as_ref(), after.as_ref())?,
            },
        ),
        M::ArchiveItem { board_id, item_id, archived } => (
            board_id,
            BoardCommand::ArchiveItem {
                item_id: uuid("item_id", item_id)?,
                archived: archived.unwrap_or(true),
            },
        ),
        M::DeleteItem { board_id, item_id } => {
            (board_id, BoardCommand::DeleteItem { item_id: uuid("item_id", item_id)? })
        }
        M::CreateUpdate { board_id, item_id, body: text, parent_id } => (
            board_id,
            BoardCommand::CreateUpdate {
                item_id: uuid("item_id", item_id)?,
                body: text.clone(),
                parent_id: opt_uuid("parent_id", parent_id.as_ref())?,
            },
        ),
        M::EditUpdate { board_id, item_id, update_id, body: text } => (
            board_id,
            BoardCommand::EditUpdate {
                item_id: uuid("item_id", item_id)?,
                update_id: uuid("update_id", update_id)?,
                body: text.clone(),
            },
        ),
        M::DeleteUpdate { board_id, item_id, update_id } => (
            board_id,
            BoardCommand::DeleteUpdate {
                item_id: uuid("item_id", item_id)?,
                update_id: uuid("update_id", update_id)?,
            },
        ),
    };
    Ok(Some((uuid("board_id", cmd.0)?, cmd.1)))
}

/// Whether a refusal means the subscriber lost the board (rather than a passing failure).
fn access_lost(err: &ApiError) -> bool {
    matches!(
        err.code(),
        ErrorCode::NotFound
            | ErrorCode::Forbidden
            | ErrorCode::InsufficientScope
            | ErrorCode::Unauthenticated
    )
}

impl Connection {
    fn reply(&self, reply: Reply) {
        self.outbox.send(&ServerFrame::Reply(reply));
    }

    /// Handles one frame. A board write is handed to its board and answered later: the
    /// returned future sends its reply once the write has committed.
    async fn handle(&mut self, encoding: Encoding, bytes: &[u8]) -> Option<PendingReply> {
        let decoded = encoding.decode_client(bytes);
        // Every frame counts against the rate, unreadable ones too.
        if self.limiter.check().is_err() {
            let id = match &decoded {
                Ok(frame) => Some(frame.id.clone()),
                Err(err) => err.id.clone(),
            };
            let err = body(ErrorCode::RateLimited, "too many frames on this connection; slow down");
            self.reply(Reply::err(id, err));
            return None;
        }
        let frame = match decoded {
            Ok(frame) => frame,
            Err(err) => {
                let message = format!("unreadable frame: {}", err.message);
                self.reply(Reply::err(err.id, body(ErrorCode::MalformedBody, message)));
                return None;
            }
        };
        if let Err(err) = self.charge_key(&frame.message) {
            self.reply(Reply::err(Some(frame.id), err));
            return None;
        }
        let ClientFrame { id, message } = frame;
        let result = match &message {
            ClientMessage::Ping {} => Ok((json!({}), None)),
            ClientMessage::Auth { token } => self.refresh(token).await.map(|()| (json!({}), None)),
            ClientMessage::Subscribe { board_id, after_seq } => {
                // Subscribe sends its own reply: it must precede the replayed events.
                self.subscribe(id, board_id, *after_seq).await;
                return None;
            }
            ClientMessage::Unsubscribe { board_id } => match uuid("board_id", board_id) {
                Ok(board) => {
                    if let Some(sub) = self.subs.remove(&board) {
                        self.state.ws().fanout().remove(&sub);
                    }
                    Ok((json!({}), None))
                }
                Err(err) => Err(err),
            },
            other => match self.submit(&id, other).await {
                Ok(pending) => return Some(pending),
                Err(err) => Err(err),
            },
        };
        match result {
            Ok((data, seq)) => self.reply(Reply::ok(Some(id), data, seq)),
            Err(err) => self.reply(Reply::err(Some(id), err)),
        }
        None
    }

    /// Charges a key's per-minute limit for what REST would charge: every request but `ping`
    /// and `auth`, so a socket is no way around the key's limit.
    fn charge_key(&self, message: &ClientMessage) -> Result<(), ErrorBody> {
        let Principal::ApiKey(grant) = &self.caller.principal else { return Ok(()) };
        if matches!(message, ClientMessage::Ping {} | ClientMessage::Auth { .. }) {
            return Ok(());
        }
        let limit = self.state.auth().key_cache().charge(grant);
        if limit.allowed {
            Ok(())
        } else {
            Err(body(
                ErrorCode::RateLimited,
                format!("this API key's limit is used up; retry in {} s", limit.reset_secs),
            ))
        }
    }

    /// Checks access and hands a board write to its board, in the order the frames came.
    async fn submit(
        &self,
        id: &RequestId,
        message: &ClientMessage,
    ) -> Result<PendingReply, ErrorBody> {
        let Some((board, command)) = command(message)? else {
            return Err(body(ErrorCode::BadRequest, "not a board write"));
        };
        let (org, requester) =
            requester_for(&self.state, &self.caller, board).await.map_err(|e| error_body(&e))?;
        let answer = self
            .state
            .boards()
            .submit(org, board, requester, command, None)
            .await
            .map_err(|e| error_body(&board_error(e)))?;
        let (id, outbox) = (id.clone(), self.outbox.clone());
        Ok(Box::pin(async move {
            let reply = match answer.wait().await {
                Ok(output) => Reply::ok(Some(id), output.data, Some(output.seq)),
                Err(err) => Reply::err(Some(id), error_body(&board_error(err))),
            };
            outbox.send(&ServerFrame::Reply(reply));
        }))
    }

    /// Replaces the socket's access token with a fresh one of the same user.
    async fn refresh(&mut self, token: &str) -> Result<(), ErrorBody> {
        if matches!(self.caller.principal, Principal::ApiKey(_)) {
            return Err(body(ErrorCode::BadRequest, "API key sockets need no token refresh"));
        }
        let principal = self
            .state
            .auth()
            .authenticate(token, &self.caller.meta)
            .await
            .map_err(|e| error_body(&e))?;
        let same_user = matches!(
            (&principal, &self.caller.principal),
            (Principal::User { user_id: a, .. }, Principal::User { user_id: b, .. }) if a == b
        );
        if !same_user {
            return Err(body(ErrorCode::Forbidden, "the token belongs to someone else"));
        }
        self.caller.principal = principal;
        token.clone_into(&mut self.credential);
        Ok(())
    }

    /// Subscribes to a board: registers with the fan-out first (so nothing can fall between),
    /// then replays the log after `after_seq` or sends a snapshot, then goes live. Sends its own
    /// reply, which must precede the replayed events.
    async fn subscribe(&mut self, id: RequestId, board_id: &str, after_seq: Option<i64>) {
        let board = match uuid("board_id", board_id) {
            Ok(board) => board,
            Err(err) => return self.reply(Reply::err(Some(id), err)),
        };
        if let Some(old) = self.subs.remove(&board) {
            self.state.ws().fanout().remove(&old);
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            let err = body(
                ErrorCode::ValidationFailed,
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            );
            return self.reply(Reply::err(Some(id), err));
        }
        let (org, requester) = match requester_for(&self.state, &self.caller, board).await {
            Ok(found) => found,
            Err(err) => return self.reply(Reply::err(Some(id), error_body(&err))),
        };
        let sub = self.state.ws().fanout().add(board, org, requester.clone(), self.outbox.clone());
        match self.catch_up(&sub, id.clone(), after_seq).await {
            Ok(()) => {
                self.state.ws().fanout().join(&sub);
                self.subs.insert(board, sub);
            }
            Err(err) => {
                self.state.ws().fanout().remove(&sub);
                self.reply(Reply::err(Some(id), err));
            }
        }
    }

    async fn catch_up(
        &self,
        sub: &Subscription,
        id: RequestId,
        after_seq: Option<i64>,
    ) -> Result<(), ErrorBody> {
        let (board, org, requester) = (sub.board, sub.org, &sub.requester);
        let replayable = match after_seq {
            Some(after) => self.replayable(sub, after).await?,
            None => None,
        };
        let sent = match replayable {
            Some((after, current)) => {
                let data = json!({ "seq": current, "recovered": true });
                self.reply(Reply::ok(Some(id), data, Some(current)));
                self.replay(sub, after, current).await;
                current
            }
            None => {
                let snapshot = self
                    .state
                    .boards()
                    .read(org, board, requester.clone(), BoardQuery::Snapshot)
                    .await
                    .map_err(|e| error_body(&board_error(e)))?;
                let seq = snapshot["seq"].as_i64().unwrap_or(0);
                let data = json!({ "seq": seq, "recovered": false, "snapshot": snapshot });
                self.reply(Reply::ok(Some(id), data, Some(seq)));
                seq
            }
        };
        sub.go_live(Some(sent));
        Ok(())
    }

    /// `(after, current)` when the log holds every event after `after` up to the board's current
    /// `seq`, within [`MAX_REPLAY`]; `None` when the client needs a snapshot instead.
    async fn replayable(
        &self,
        sub: &Subscription,
        after: i64,
    ) -> Result<Option<(i64, i64)>, ErrorBody> {
        let (board, org) = (sub.board, sub.org);
        let info = self
            .state
            .boards()
            .read(org, board, sub.requester.clone(), BoardQuery::Board)
            .await
            .map_err(|e| error_body(&board_error(e)))?;
        let current = info["seq"].as_i64().unwrap_or(0);
        if after < 0 || after > current || current - after > MAX_REPLAY {
            return Ok(None);
        }
        // A log with a hole cannot be replayed without a gap: snapshot instead.
        let held = self
            .state
            .store()
            .tenant(org)
            .board_events_held(board, after, current)
            .await
            .map_err(|e| error_body(&ApiError::internal(e)))?;
        Ok((held == current - after).then_some((after, current)))
    }

    /// Sends the events after `after` up to `current`, read a page at a time (at most
    /// [`REPLAY_PAGE`] events and the smaller of `BOARDROOM_EVENTS_PAGE_BYTES` and the outbound
    /// buffer), each event queued when the outbox has room for it: a resume holds one page
    /// besides the outbox, however long the log it replays. If the log cannot be read to the
    /// end, the connection closes with 4009 and the client resumes again.
    async fn replay(&self, sub: &Subscription, after: i64, current: i64) {
        let settings = self.state.settings();
        let page_bytes = settings.events_page_bytes.min(settings.ws_outbound_buffer_bytes);
        let tenant = self.state.store().tenant(sub.org);
        let mut cursor = after;
        while cursor < current {
            let limit = REPLAY_PAGE.min(current - cursor);
            let page = match tenant
                .board_events_page(sub.board, cursor, limit, i64::from(page_bytes))
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::error!(error = ?err, board = %sub.board, "replaying the log failed");
                    self.outbox.close(close::RESYNC, "replay failed; resume again");
                    return;
                }
            };
            // The log was whole when counted; an event gone since cannot be replayed.
            let Some(last) = page.rows.last().map(|r| r.seq) else {
                self.outbox.close(close::RESYNC, "the log changed; resume again");
                return;
            };
            for row in page.rows.into_iter().filter(|r| r.seq <= current) {
                if !sub.may_see(&row.kind) {
                    continue;
                }
                let frame = ServerFrame::Event(EventFrame {
                    board_id: sub.board.to_string(),
                    seq: row.seq,
                    kind: row.kind,
                    actor: row.actor.map(|a| a.to_string()),
                    data: row.payload.0,
                    created_at: wire_time(row.created_at),
                });
                let Some(encoded) = message(self.outbox.encoding, &frame) else { continue };
                if !self.outbox.wait_for_room(size_of(&encoded), self.patience).await {
                    return;
                }
                self.outbox.push(encoded);
            }
            cursor = last;
        }
    }

    /// Re-checks the credential; every few rounds, each subscription's board access too.
    async fn recheck(&mut self) {
        match self.state.auth().authenticate(&self.credential, &self.caller.meta).await {
            Ok(principal) => {
                let rescoped = scopes_of(&principal) != scopes_of(&self.caller.principal);
                self.caller.principal = principal;
                if rescoped {
                    self.end_subscriptions_for_new_scopes();
                }
            }
            // A passing failure (database, bcrypt pool) is no reason to drop a client; anything
            // else is, a refusal for the client IP's bad keys included: a key still valid is
            // answered from the cache before that check, so only a lost key meets it.
            Err(err) if matches!(err.code(), ErrorCode::Internal | ErrorCode::Unavailable) => {}
            Err(err) => {
                self.outbox.close(close::AUTH_ENDED, err.code().as_str());
                return;
            }
        }
        self.rechecks = self.rechecks.wrapping_add(1);
        if self.rechecks.is_multiple_of(BOARD_RECHECK_EVERY) {
            self.recheck_boards().await;
        }
    }

    /// Re-checks access to every subscribed board.
    async fn recheck_boards(&mut self) {
        let boards: Vec<Uuid> = self.subs.keys().copied().collect();
        for board in boards {
            self.recheck_board(board).await;
        }
    }

    /// The key's scopes changed (re-scoped by its owner): every subscription was made under the
    /// old ones, which decide what it delivers, so each ends and the client subscribes again.
    fn end_subscriptions_for_new_scopes(&mut self) {
        let ended = ApiError::new(
            ErrorCode::InsufficientScope,
            "this API key's scopes changed; subscribe again",
        );
        let boards: Vec<Uuid> = self.subs.keys().copied().collect();
        for board in boards {
            self.end_subscription(board, &ended);
        }
    }

    /// Ends the subscription to `board` on the server's side, telling the client why.
    fn end_subscription(&mut self, board: Uuid, why: &ApiError) {
        if let Some(sub) = self.subs.remove(&board) {
            self.state.ws().fanout().remove(&sub);
            self.outbox.send(&ServerFrame::Unsubscribed(Unsubscribed {
                board_id: board.to_string(),
                error: error_body(why),
            }));
        }
    }

    /// Ends the subscription to `board` if the caller lost access to it.
    async fn recheck_board(&mut self, board: Uuid) {
        if !self.subs.contains_key(&board) {
            return;
        }
        let lost = match self.access(board).await {
            Err(err) if access_lost(&err) => err,
            // Still allowed (an org admin, say): carry on where it paused.
            Ok(_) => {
                if let Some(sub) = self.subs.get(&board) {
                    sub.go_live(None);
                }
                return;
            }
            // A passing failure: a paused subscription stays paused (failing closed) until the
            // next periodic re-check.
            Err(_) => return,
        };
        self.end_subscription(board, &lost);
    }

    /// Whether the caller may still read `board` (its organization, and `boards:read` on the
    /// board, as the board actor judges it).
    async fn access(&self, board: Uuid) -> Result<(), ApiError> {
        let (org, requester) = requester_recheck(&self.state, &self.caller, board).await?;
        let query = BoardQuery::Access(Scope::BoardsRead);
        self.state.boards().read(org, board, requester, query).await.map_err(board_error)?;
        Ok(())
    }

    fn end_all(&mut self) {
        for (_, sub) in self.subs.drain() {
            self.state.ws().fanout().remove(&sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay waits for room instead of overflowing the outbox, goes on once the writer has
    /// written, and gives up on a client that reads nothing, closing it as a slow consumer.
    #[tokio::test]
    async fn a_replay_waits_for_room_and_gives_up_on_a_client_that_reads_nothing() {
        let (outbox, ends) = Outbox::new(Encoding::Json, 1000);
        let frame = || Message::Text("x".repeat(400).into());
        let size = size_of(&frame());
        outbox.push(frame());
        outbox.push(frame());
        let patience = Duration::from_secs(5);
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move { outbox.wait_for_room(size, patience).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a third frame does not fit");
        let (taken, bytes) = outbox.take_frames(1);
        assert_eq!(taken.len(), 1);
        outbox.written(bytes);
        assert!(waiter.await.unwrap(), "room was made");
        assert!(ends.closed.borrow().is_none());
        // Nothing is written any more: after its patience the replay gives up.
        outbox.push(frame());
        assert!(!outbox.wait_for_room(size, Duration::from_millis(100)).await);
        assert_eq!(ends.closed.borrow().as_ref().map(|c| c.0), Some(close::SLOW_CONSUMER));
        // An empty outbox always takes the next message, however large, as live events do.
        let (empty, _) = Outbox::new(Encoding::Json, 1000);
        assert!(empty.wait_for_room(5000, patience).await);
    }
}
