//! The fan-out: committed board events to the sockets subscribed to their board.
//!
//! One task listens to the event bus. For each event it finds the board's subscriptions,
//! encodes the event at most once per encoding (JSON text, MessagePack binary) and hands every
//! subscriber a clone of the shared bytes. Nothing here waits on a socket: a connection's
//! [`Outbox`] either takes the bytes or closes the connection as a slow consumer.
//!
//! ## No gap, no duplicate
//! A subscription starts in [`Gate::Buffering`]: events for its board are kept (as shared
//! pointers) while the connection reads the log or a snapshot. The connection then goes
//! [`Gate::Live`] under the same lock, sending the buffered events newer than what it sent;
//! from then on the fan-out skips anything at or below the last `seq` sent. Because the
//! subscription is registered before the log is read, no event can fall between the two.
//!
//! If this task falls behind the bus (it lost events), every connection with a subscription is
//! closed with [`close::RESYNC`]: clients resubscribe with `after_seq` and lose nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use boardroom_actors::board::Requester;
use boardroom_actors::domain::{BoardEvent, EventKind};
use boardroom_actors::event_bus::EventBus;
use boardroom_protocol::frames::{close, EventFrame, ServerFrame};
use boardroom_protocol::{Encoding, Scope};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::connection::{Control, Outbox};

/// Events a subscription may buffer while it catches up before it counts as a slow consumer.
pub const MAX_BUFFERED_EVENTS: usize = 10_000;

/// Where a subscription stands.
pub enum Gate {
    /// Catching up: live events wait here.
    Buffering(Vec<Arc<BoardEvent>>),
    /// Caught up to `last_seq`; newer events go straight to the socket.
    Live {
        /// The last `seq` sent (or deliberately skipped).
        last_seq: i64,
    },
    /// Ended; nothing more is sent.
    Closed,
}

/// One socket's subscription to one board.
pub struct Subscription {
    id: u64,
    /// The board.
    pub board: Uuid,
    /// The board's organization.
    pub org: Uuid,
    /// Who subscribed, with the key's scopes (they filter item and update events).
    pub requester: Requester,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
    gate: Mutex<Gate>,
}

impl Subscription {
    /// The gate, locked. A poisoned lock only means a panic elsewhere; the state is still valid.
    pub fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the subscriber may see events of `kind`.
    pub fn may_see(&self, kind: &str) -> bool {
        may_see(&self.requester, kind)
    }
}

/// Whether `requester` may see events of `kind`: a key needs `items:read` for item events and
/// `updates:read` for update events (`boards:read` was checked on subscribe).
pub fn may_see(requester: &Requester, kind: &str) -> bool {
    let Some(scopes) = &requester.scopes else { return true };
    if kind.starts_with("item.") {
        scopes.contains(&Scope::ItemsRead)
    } else if kind.starts_with("update.") {
        scopes.contains(&Scope::UpdatesRead)
    } else {
        true
    }
}

/// The RFC 3339 form every event time takes on the wire, live or replayed.
pub fn wire_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The wire frame of a bus event.
pub fn event_frame(event: &BoardEvent) -> ServerFrame {
    ServerFrame::Event(EventFrame {
        board_id: event.board_id.to_string(),
        seq: event.seq,
        kind: event.kind.as_str().to_owned(),
        actor: event.actor.map(|a| a.to_string()),
        data: event.data.clone(),
        created_at: wire_time(event.created_at),
    })
}

/// A frame encoded as a WebSocket message of `encoding`.
pub fn message(encoding: Encoding, frame: &ServerFrame) -> Option<Message> {
    let bytes = match encoding.encode(frame) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::error!(error = %err, "encoding a frame failed");
            return None;
        }
    };
    Some(match encoding {
        Encoding::Json => Message::Text(Utf8Bytes::try_from(bytes).ok()?),
        Encoding::MessagePack => Message::Binary(Bytes::from(bytes)),
    })
}

/// The subscriptions of every board.
#[derive(Default)]
pub struct Fanout {
    boards: Mutex<HashMap<Uuid, Vec<Arc<Subscription>>>>,
    next_id: AtomicU64,
}

impl Fanout {
    fn boards(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<Arc<Subscription>>>> {
        self.boards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a buffering subscription; events for the board are kept from now on.
    pub fn add(
        &self,
        board: Uuid,
        org: Uuid,
        requester: Requester,
        outbox: Arc<Outbox>,
    ) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            board,
            org,
            requester,
            outbox,
            gate: Mutex::new(Gate::Buffering(Vec::new())),
        });
        self.boards().entry(board).or_default().push(sub.clone());
        sub
    }

    /// Ends a subscription.
    pub fn remove(&self, sub: &Subscription) {
        *sub.gate() = Gate::Closed;
        let mut boards = self.boards();
        if let Some(subs) = boards.get_mut(&sub.board) {
            subs.retain(|s| s.id != sub.id);
            if subs.is_empty() {
                boards.remove(&sub.board);
            }
        }
    }

    /// How many subscriptions exist (tests and metrics).
    pub fn len(&self) -> usize {
        self.boards().values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands one committed event to its board's subscribers.
    pub fn deliver(&self, event: &Arc<BoardEvent>) {
        let subs = match self.boards().get(&event.board_id) {
            Some(subs) => subs.clone(),
            None => return,
        };
        // Encoded at most once per encoding, then shared by every subscriber.
        let mut encoded: HashMap<Encoding, Option<Message>> = HashMap::new();
        let access_changed = matches!(
            event.kind,
            EventKind::MemberRemoved | EventKind::MemberRoleChanged | EventKind::BoardDeleted
        );
        for sub in subs {
            let mut gate = sub.gate();
            match &mut *gate {
                Gate::Buffering(buffer) => {
                    if buffer.len() >= MAX_BUFFERED_EVENTS {
                        sub.outbox.close(close::SLOW_CONSUMER, "slow consumer");
                    } else {
                        buffer.push(event.clone());
                    }
                }
                Gate::Live { last_seq } => {
                    if event.seq <= *last_seq {
                        continue;
                    }
                    *last_seq = event.seq;
                    if sub.may_see(event.kind.as_str()) {
                        let encoding = sub.outbox.encoding;
                        let message = encoded
                            .entry(encoding)
                            .or_insert_with(|| message(encoding, &event_frame(event)));
                        if let Some(message) = message {
                            sub.outbox.push(message.clone());
                        }
                    }
                }
                Gate::Closed => continue,
            }
            drop(gate);
            if access_changed {
                sub.outbox.control(Control::Recheck(sub.board));
            }
        }
    }

    /// Closes every subscribed connection: the fan-out lost events and cannot promise order.
    fn resync_all(&self) {
        for subs in self.boards().values() {
            for sub in subs {
                sub.outbox.close(close::RESYNC, "server fell behind; resubscribe with after_seq");
            }
        }
    }

    /// Runs the fan-out until shutdown.
    pub async fn run(self: Arc<Self>, bus: EventBus, mut shutdown: watch::Receiver<bool>) {
        let mut events = bus.subscribe();
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                received = events.recv() => match received {
                    Ok(event) => self.deliver(&event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "socket fan-out fell behind the event bus");
                        self.resync_all();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}
