//! One WebSocket connection: a reader that runs the client's requests, and a writer
//! ([`writer`]) that drains the connection's bounded [`Outbox`] to the socket. Subscriptions,
//! replays and access re-checks are in [`subscriptions`]; a board write becomes its command
//! through `crate::commands`, as on REST.
//!
//! The reader owns the connection's state (credential, subscriptions, rate limiter) and
//! handles one frame at a time. A board write is handed to its board in frame order and
//! answered after its commit, while the reader goes on reading: a client may pipeline up to
//! [`MAX_IN_FLIGHT`] writes, and they join the same group commit. The writer never
//! blocks anyone else: the fan-out pushes shared bytes into the outbox, and when the bytes
//! queued exceed the configured bound the connection is closed as a slow consumer instead of
//! growing. Closing is one `watch` value that both halves follow, so any part (fan-out, reader,
//! shutdown) ends the connection the same way, with a close code and reason.

mod subscriptions;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use boardroom_protocol::frames::{close, Done, Hello, Reply, ReplyOk};
use boardroom_protocol::{
    ClientFrame, ClientMessage, Encoding, ErrorCode, RequestId, ServerFrame, PROTOCOL_VERSION,
};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::watch;
use uuid::Uuid;

pub use self::subscriptions::{MAX_REPLAY, MAX_SUBSCRIPTIONS};
use super::fanout::Subscription;
use super::outbox::{Control, Outbox, OutboxEnds};
use crate::access::requester_for;
use crate::auth::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::events::Payload;

/// A board write's reply, sent once the write has committed.
type PendingReply = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Board writes one connection may have waiting for their commit. Beyond it the reader stops
/// reading, so a pipelining client is held back by TCP rather than by the server's memory.
pub const MAX_IN_FLIGHT: usize = 64;

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
    /// How long a replay waits for a client that reads nothing before closing it (4008): the
    /// heartbeat period, which also measures how long a whole replay may take.
    patience: Duration,
    /// The server's shutdown, which a replay races (the reader's own loop cannot see it then).
    shutdown: watch::Receiver<bool>,
    /// Per board written to, when the last write's reply has gone out: each reply waits for
    /// the one before it to the same board, so replies to one board leave in the order the
    /// writes came, however their answers are scheduled (a forwarded answer, or a ready one
    /// the runtime's budget makes wait a turn).
    replied: HashMap<Uuid, tokio::sync::oneshot::Receiver<()>>,
}

/// Sets a connection up and answers the future that runs it until either side ends it.
///
/// The set-up is done here, before the future exists, and the future captures only what the
/// connection keeps: an async fn would also keep its arguments' storage (the socket and
/// [`Accepted`], 664 bytes) in every idle socket's task for the connection's whole life.
pub fn run(socket: WebSocket, accepted: Accepted) -> impl Future<Output = ()> + Send {
    let Accepted { state, caller, credential, encoding, limits, slot } = accepted;
    let counted = crate::metrics::ws_opened();
    let (sink, mut stream) = socket.split();
    let (outbox, ends) = Outbox::new(encoding, limits.outbound_bytes);
    slot.attach(&outbox);
    let OutboxEnds { mut closed } = ends;
    let writer =
        state.ws().delivery().spawn(writer::write_loop(sink, outbox.clone(), closed.clone()));
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
        shutdown: state.ws().shutdown_signal(),
        replied: HashMap::new(),
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
    // Made at the first board write: most sockets only listen, and an empty set allocates.
    let mut in_flight: Option<FuturesUnordered<PendingReply>> = None;
    async move {
        loop {
            let waiting = in_flight.as_ref().map_or(0, FuturesUnordered::len);
            tokio::select! {
                () = until_closed(&mut closed) => break,
                Some(()) = next_reply(&mut in_flight), if waiting > 0 => {}
                () = until_shutdown(&mut shutdown) => {
                    outbox.close(close::GOING_AWAY, "server shutting down");
                    break;
                }
                // At the bound, frames wait in the socket and TCP pushes back on the client.
                received = stream.next(), if waiting < MAX_IN_FLIGHT => {
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
                    // Handling a frame is boxed: its future is large (subscribing reads the
                    // log), and inline it would sit in every idle connection's task for its
                    // whole life.
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
                    // replay, say) is no silence of the client's, whose pongs wait unread
                    // meanwhile.
                    last_heard = Instant::now();
                    if let Some(pending) = pending {
                        in_flight.get_or_insert_with(FuturesUnordered::new).push(pending);
                    }
                }
                () = outbox.controls_ready.notified() => {
                    while let Some(control) = outbox.take_control() {
                        match control {
                            Control::Recheck(board) => Box::pin(conn.recheck_board(board)).await,
                            Control::RecheckAll => Box::pin(conn.recheck_boards()).await,
                            Control::RecheckCredential => Box::pin(conn.recheck_now()).await,
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
        drop((conn, outbox));
        let _ = tokio::time::timeout(Duration::from_secs(3), writer).await;
        // Counted as open (and against its user's sockets) until the writer has said goodbye.
        drop((slot, counted));
    }
}

/// The next reply of a write that has committed; never ready when there is none.
async fn next_reply(in_flight: &mut Option<FuturesUnordered<PendingReply>>) -> Option<()> {
    match in_flight {
        Some(in_flight) => in_flight.next().await,
        None => std::future::pending().await,
    }
}

async fn until_closed(closed: &mut watch::Receiver<Option<(u16, String)>>) {
    let _ = closed.wait_for(Option::is_some).await;
}

async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Queues the successful reply to `id`: `data` (and `seq`) written straight into the frame.
/// Fails only if `data` does not encode (a defect), and then queues nothing: the caller answers
/// with the error instead.
fn send_ok<T: Serialize>(
    outbox: &Outbox,
    id: Option<&RequestId>,
    data: &T,
    seq: Option<i64>,
) -> Result<(), ApiError> {
    outbox.try_send(&ReplyOk::new(id, data, seq)).map_err(ApiError::internal)
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
            crate::metrics::rate_limited(crate::metrics::Limit::WsFrames);
            let id = match &decoded {
                Ok(frame) => Some(frame.id.clone()),
                Err(err) => err.id.clone(),
            };
            let err = ApiError::new(
                ErrorCode::RateLimited,
                "too many frames on this connection; slow down",
            );
            self.reply(Reply::err(id, err.into()));
            return None;
        }
        let frame = match decoded {
            Ok(frame) => frame,
            Err(err) => {
                let message = format!("unreadable frame: {}", err.message);
                let refusal = ApiError::new(ErrorCode::MalformedBody, message);
                self.reply(Reply::err(err.id, refusal.into()));
                return None;
            }
        };
        if let Err(err) = self.charge_key(&frame.message) {
            self.reply(Reply::err(Some(frame.id), err.into()));
            return None;
        }
        let ClientFrame { id, message } = frame;
        let result = match message {
            ClientMessage::Ping {} => Ok(Done {}),
            ClientMessage::Auth { token } => self.refresh(&token).await.map(|()| Done {}),
            ClientMessage::Subscribe { board_id, after_seq } => {
                // Subscribe sends its own reply: it must precede the replayed events.
                self.subscribe(id, &board_id, after_seq).await;
                return None;
            }
            ClientMessage::Unsubscribe { board_id } => crate::commands::id("board_id", &board_id)
                .map(|board| {
                    if let Some(sub) = self.subs.remove(&board) {
                        self.state.ws().fanout().remove(&sub);
                    }
                    Done {}
                }),
            other => match self.submit(&id, other).await {
                Ok(pending) => return Some(pending),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = result.and_then(|done| send_ok(&self.outbox, Some(&id), &done, None)) {
            self.reply(Reply::err(Some(id), err.into()));
        }
        None
    }

    /// Charges a key's per-minute limit for what REST would charge: every request but `ping`
    /// and `auth`, so a socket is no way around the key's limit.
    fn charge_key(&self, message: &ClientMessage) -> Result<(), ApiError> {
        let Principal::ApiKey(grant) = &self.caller.principal else { return Ok(()) };
        if matches!(message, ClientMessage::Ping {} | ClientMessage::Auth { .. }) {
            return Ok(());
        }
        let limit = self.state.auth().key_cache().charge(grant);
        if limit.allowed {
            Ok(())
        } else {
            crate::metrics::rate_limited(crate::metrics::Limit::ApiKey);
            Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("this API key's limit is used up; retry in {} s", limit.reset_secs),
            ))
        }
    }

    /// Checks access and hands a board write to its board, in the order the frames came.
    async fn submit(
        &mut self,
        id: &RequestId,
        message: ClientMessage,
    ) -> Result<PendingReply, ApiError> {
        let Some((board, command)) = crate::commands::from_message(message)? else {
            return Err(ApiError::new(ErrorCode::BadRequest, "not a board write"));
        };
        let (org, requester) = requester_for(&self.state, &self.caller, board).await?;
        let answer = self.state.boards().submit(org, board, requester, command, None).await?;
        let (id, outbox) = (id.clone(), self.outbox.clone());
        let (sent, this_sent) = tokio::sync::oneshot::channel();
        let before = self.replied.insert(board, this_sent);
        if self.replied.len() > MAX_IN_FLIGHT * 4 {
            // Boards whose last reply is out need no entry.
            self.replied.retain(|_, sent| matches!(sent.try_recv(), Err(TryRecvError::Empty)));
        }
        Ok(Box::pin(async move {
            let answer = answer.wait().await;
            if let Some(before) = before {
                // Sent, or dropped with its connection: either way its turn is over.
                let _ = before.await;
            }
            let replied = answer.map_err(ApiError::from).and_then(|output| {
                let data = Payload::of(board, &output.data);
                send_ok(&outbox, Some(&id), &data, Some(output.seq))
            });
            if let Err(err) = replied {
                outbox.send(&ServerFrame::Reply(Reply::err(Some(id), err.into())));
            }
            let _ = sent.send(());
        }))
    }

    /// Replaces the socket's access token with a fresh one of the same user.
    async fn refresh(&mut self, token: &str) -> Result<(), ApiError> {
        if matches!(self.caller.principal, Principal::ApiKey(_)) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "API key sockets need no token refresh",
            ));
        }
        let principal = self.state.auth().authenticate(token, &self.caller.meta).await?;
        let same_user = matches!(
            (&principal, &self.caller.principal),
            (Principal::User { user_id: a, .. }, Principal::User { user_id: b, .. }) if a == b
        );
        if !same_user {
            return Err(ApiError::new(ErrorCode::Forbidden, "the token belongs to someone else"));
        }
        self.caller.principal = principal;
        token.clone_into(&mut self.credential);
        Ok(())
    }
}
