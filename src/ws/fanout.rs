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
//! ## Presence
//! A user is present on a board while at least one of their subscriptions to it is live.
//! The first such subscription announces `joined` to every subscriber; the last one to end
//! announces `left`. Each presence frame carries the whole list, built and queued under one
//! lock, so the last frame a client got is the current truth.
//!
//! If this task falls behind the bus (it lost events), every connection with a subscription is
//! closed with [`close::RESYNC`]: clients resubscribe with `after_seq` and lose nothing.
//!
//! ## Several nodes: strict order
//! In a cluster ([`Fanout::report_gaps`], started by `cluster::events`) events reach a node from
//! two sources, its own bus and NATS, and NATS may lose some. Each subscription then takes only
//! the event right after the last it sent: one further on is held back and the subscription is
//! reported [`Behind`], so the node reads what is missing from `board_events` and hands it over
//! (the subscription skips what it already has). Going live, the buffered events are sorted and
//! sent up to the first hole, and the rest is asked for the same way. So a socket never sees a
//! gap or a duplicate, whichever node committed the events and however they arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use boardroom_actors::board::Requester;
use boardroom_actors::domain::{BoardEvent, EventData};
use boardroom_actors::event_bus::EventBus;
use boardroom_protocol::codec::{json_text, CodecError};
use boardroom_protocol::frames::{close, EventFrame, Presence, ServerFrame};
use boardroom_protocol::Encoding;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::outbox::{Control, Outbox};

/// Events a subscription may buffer while it catches up before it counts as a slow consumer.
pub const MAX_BUFFERED_EVENTS: usize = 10_000;

/// Where a subscription stands.
pub enum Gate {
    /// Catching up, or paused while access is re-checked: live events wait here. `after` is
    /// the last `seq` already sent (meaningful when paused).
    Buffering {
        /// Last `seq` sent before buffering began.
        after: i64,
        /// Events that arrived meanwhile.
        events: Vec<Arc<BoardEvent>>,
    },
    /// Caught up to `last_seq`; newer events go straight to the socket.
    Live {
        /// The last `seq` sent (or deliberately skipped).
        last_seq: i64,
    },
    /// Ended; nothing more is sent.
    Closed,
}

/// A subscription (or several of one board) that has every event up to `after` and needs the
/// ones after it from the log: what a node in a cluster fills gaps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    /// The board.
    pub board: Uuid,
    /// The board's organization (the log is read through its tenant).
    pub org: Uuid,
    /// The last `seq` the subscription sent.
    pub after: i64,
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
    /// Counted in the board's presence.
    present: AtomicBool,
    /// In a cluster, where to ask for missing events; `None` on a single node, whose bus
    /// carries every event in order.
    gaps: Option<mpsc::UnboundedSender<Behind>>,
    /// The `after` last asked for, so a subscription behind asks once, not once per event.
    asked: AtomicI64,
}

impl Subscription {
    /// The gate, locked. A poisoned lock only means a panic elsewhere; the state is still valid.
    pub fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the subscriber may see events of `kind`.
    pub fn may_see(&self, kind: &str) -> bool {
        self.requester.may_see(kind)
    }

    /// Goes live: sends what was buffered beyond `sent` (or, when resuming from a pause, beyond
    /// what was sent before it), under the lock the fan-out takes, so nothing overtakes it.
    pub fn go_live(&self, sent: Option<i64>) {
        let mut gate = self.gate();
        let (after, events) = match &mut *gate {
            Gate::Buffering { after, events } => (*after, std::mem::take(events)),
            // Ended meanwhile (slow consumer while buffering), or already live: leave it.
            Gate::Live { .. } | Gate::Closed => return,
        };
        let mut events = events;
        if self.gaps.is_some() {
            // Two sources (the bus, NATS) and fills may have buffered out of order.
            events.sort_by_key(|e| e.seq);
        }
        let mut last = sent.unwrap_or(after);
        let mut events = events.into_iter();
        while let Some(event) = events.next() {
            if event.seq <= last {
                continue;
            }
            if self.gaps.is_some() && event.seq != last + 1 {
                // A hole: what was buffered beyond it comes again with the fill.
                self.ask_after(last);
                break;
            }
            last = event.seq;
            if self.may_see(event.kind().as_str()) {
                self.outbox.send(&event_frame(&event));
            }
            if self.pause_if_access_may_end(&mut gate, &event, || events.by_ref().collect()) {
                return;
            }
        }
        *gate = Gate::Live { last_seq: last };
    }
}

impl Subscription {
    /// Asks the node to fill what follows `after` from the log (once per `after`: a failed fill
    /// is retried by the node's periodic check).
    fn ask_after(&self, after: i64) {
        let Some(gaps) = &self.gaps else { return };
        if self.asked.swap(after, Ordering::AcqRel) != after {
            // The receiver is gone only at shutdown.
            let _ = gaps.send(Behind { board: self.board, org: self.org, after });
        }
    }

    /// If `event` (just sent, or withheld) may end the subscriber's access, nothing more goes
    /// out until the connection has re-checked it: a removed member must not see what the
    /// board does next. `rest` (events after it) stays buffered for a resume.
    fn pause_if_access_may_end(
        &self,
        gate: &mut Gate,
        event: &BoardEvent,
        rest: impl FnOnce() -> Vec<Arc<BoardEvent>>,
    ) -> bool {
        if !may_lose_access(event, self.requester.user_id) {
            return false;
        }
        *gate = Gate::Buffering { after: event.seq, events: rest() };
        self.outbox.control(Control::Recheck(self.board));
        true
    }
}

/// Whether `event` may end `user`'s access to its board: the board went, or they left it.
fn may_lose_access(event: &BoardEvent, user: Uuid) -> bool {
    match &event.data {
        EventData::BoardDeleted => true,
        EventData::MemberRemoved { user_id, .. } => *user_id == user,
        _ => false,
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
        kind: event.kind().as_str().to_owned(),
        actor: event.actor.map(|a| a.to_string()),
        data: crate::wire::events::payload(event.board_id, &event.data),
        created_at: wire_time(event.created_at),
    })
}

/// One frame, encoded at most once per encoding and then shared by every subscriber (the
/// message's bytes are reference-counted). Nothing is allocated for an encoding nobody uses.
#[derive(Default)]
struct EncodedOnce {
    json: Option<Option<Message>>,
    msgpack: Option<Option<Message>>,
}

impl EncodedOnce {
    /// The frame as a message of `encoding`, encoding it on first use; `None` if it cannot be
    /// encoded (`encode` logs why).
    fn get(
        &mut self,
        encoding: Encoding,
        encode: impl FnOnce(Encoding) -> Option<Message>,
    ) -> Option<&Message> {
        let slot = match encoding {
            Encoding::Json => &mut self.json,
            Encoding::MessagePack => &mut self.msgpack,
        };
        slot.get_or_insert_with(|| encode(encoding)).as_ref()
    }
}

/// A frame encoded as a WebSocket message of `encoding`; a frame that does not encode (a
/// defect: every frame type has string keys only) is logged and left out.
pub fn message<T: Serialize>(encoding: Encoding, frame: &T) -> Option<Message> {
    encoded(encoding, frame)
        .inspect_err(|err| tracing::error!(error = %err, "encoding a frame failed"))
        .ok()
}

/// A frame encoded as a WebSocket message of `encoding`, JSON straight into the text message's
/// string (not checked for UTF-8 again).
pub fn encoded<T: Serialize>(encoding: Encoding, frame: &T) -> Result<Message, CodecError> {
    Ok(match encoding {
        Encoding::Json => Message::Text(Utf8Bytes::from(json_text(frame)?)),
        Encoding::MessagePack => Message::Binary(Bytes::from(encoding.encode(frame)?)),
    })
}

fn presence_frame(
    board: Uuid,
    users: &HashMap<Uuid, usize>,
    joined: Option<Uuid>,
    left: Option<Uuid>,
) -> ServerFrame {
    let mut list: Vec<String> = users.keys().map(Uuid::to_string).collect();
    list.sort();
    ServerFrame::Presence(Presence {
        board_id: board.to_string(),
        users: list,
        joined: joined.map(|u| u.to_string()),
        left: left.map(|u| u.to_string()),
    })
}

/// The subscriptions of every board.
#[derive(Default)]
pub struct Fanout {
    boards: Mutex<HashMap<Uuid, Vec<Arc<Subscription>>>>,
    /// Per board, per user: how many of their subscriptions are live.
    presence: Mutex<HashMap<Uuid, HashMap<Uuid, usize>>>,
    next_id: AtomicU64,
    /// Set in a cluster: subscriptions take events strictly in order and ask here for gaps.
    gaps: OnceLock<mpsc::UnboundedSender<Behind>>,
}

impl Fanout {
    fn presence(&self) -> MutexGuard<'_, HashMap<Uuid, HashMap<Uuid, usize>>> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a live subscription as its user viewing the board. The first of a user's
    /// subscriptions tells every subscriber; a later one learns the list alone.
    pub fn join(&self, sub: &Subscription) {
        if sub.present.swap(true, Ordering::AcqRel) {
            return;
        }
        let user = sub.requester.user_id;
        let mut presence = self.presence();
        let users = presence.entry(sub.board).or_default();
        let count = users.entry(user).or_insert(0);
        *count += 1;
        let first = *count == 1;
        let frame = presence_frame(sub.board, users, first.then_some(user), None);
        if first {
            self.broadcast(sub.board, &frame);
        } else {
            sub.outbox.send(&frame);
        }
    }

    fn leave(&self, sub: &Subscription) {
        if !sub.present.swap(false, Ordering::AcqRel) {
            return;
        }
        let user = sub.requester.user_id;
        let mut presence = self.presence();
        let Some(users) = presence.get_mut(&sub.board) else { return };
        let gone = match users.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                users.remove(&user);
                true
            }
            None => false,
        };
        if gone {
            let frame = presence_frame(sub.board, users, None, Some(user));
            if users.is_empty() {
                presence.remove(&sub.board);
            }
            self.broadcast(sub.board, &frame);
        }
    }

    /// Queues a frame (not an event) for every live subscriber of `board`.
    fn broadcast(&self, board: Uuid, frame: &ServerFrame) {
        let subs = match self.boards().get(&board) {
            Some(subs) => subs.clone(),
            None => return,
        };
        let mut encoded = EncodedOnce::default();
        for sub in subs.iter().filter(|s| s.present.load(Ordering::Acquire)) {
            if let Some(message) = encoded.get(sub.outbox.encoding, |e| message(e, frame)) {
                sub.outbox.push(message.clone());
            }
        }
    }

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
            gate: Mutex::new(Gate::Buffering { after: 0, events: Vec::new() }),
            present: AtomicBool::new(false),
            gaps: self.gaps.get().cloned(),
            asked: AtomicI64::new(-1),
        });
        self.boards().entry(board).or_default().push(sub.clone());
        sub
    }

    /// Ends a subscription.
    pub fn remove(&self, sub: &Subscription) {
        *sub.gate() = Gate::Closed;
        {
            let mut boards = self.boards();
            if let Some(subs) = boards.get_mut(&sub.board) {
                subs.retain(|s| s.id != sub.id);
                if subs.is_empty() {
                    boards.remove(&sub.board);
                }
            }
        }
        self.leave(sub);
    }

    /// How many subscriptions exist (tests and metrics).
    pub fn len(&self) -> usize {
        self.boards().values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Turns on strict order (a node of a cluster, before any socket subscribes): from now on a
    /// subscription takes only the event after the last it sent, and one that is behind is
    /// reported on the returned channel, to be filled from the log with [`Fanout::deliver`].
    /// `None` if already on.
    pub fn report_gaps(&self) -> Option<mpsc::UnboundedReceiver<Behind>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.gaps.set(sender).ok()?;
        Some(receiver)
    }

    /// Whether any socket here is subscribed to `board`.
    pub fn watches(&self, board: Uuid) -> bool {
        self.boards().contains_key(&board)
    }

    /// Each board with a live subscription, with the lowest last `seq` its live subscriptions
    /// sent: what a periodic check compares with the board's stored `seq`.
    pub fn positions(&self) -> Vec<Behind> {
        let boards: Vec<(Uuid, Vec<Arc<Subscription>>)> =
            self.boards().iter().map(|(board, subs)| (*board, subs.clone())).collect();
        let mut positions = Vec::with_capacity(boards.len());
        for (board, subs) in boards {
            let lowest = subs
                .iter()
                .filter_map(|sub| match &*sub.gate() {
                    Gate::Live { last_seq } => Some((sub.org, *last_seq)),
                    Gate::Buffering { .. } | Gate::Closed => None,
                })
                .min_by_key(|(_, seq)| *seq);
            if let Some((org, after)) = lowest {
                positions.push(Behind { board, org, after });
            }
        }
        positions
    }

    /// Closes the connections subscribed to `board` that have not got past `after`, with
    /// [`close::RESYNC`]: the log cannot give them what follows (it has a hole there), and
    /// their clients resume with `after_seq` (a snapshot, then).
    pub fn resync_behind(&self, board: Uuid, after: i64) {
        let subs = match self.boards().get(&board) {
            Some(subs) => subs.clone(),
            None => return,
        };
        for sub in subs {
            let behind = match &*sub.gate() {
                Gate::Live { last_seq } => *last_seq <= after,
                Gate::Buffering { .. } => true,
                Gate::Closed => false,
            };
            if behind {
                sub.outbox.close(close::RESYNC, "events missing; resubscribe with after_seq");
            }
        }
    }

    /// Hands one committed event to its board's subscribers.
    pub fn deliver(&self, event: &Arc<BoardEvent>) {
        let subs = match self.boards().get(&event.board_id) {
            Some(subs) => subs.clone(),
            None => return,
        };
        let mut encoded = EncodedOnce::default();
        let mut delivered = 0;
        for sub in subs {
            let mut gate = sub.gate();
            match &mut *gate {
                Gate::Buffering { events, .. } => {
                    if events.len() >= MAX_BUFFERED_EVENTS {
                        sub.outbox.close(close::SLOW_CONSUMER, "slow consumer");
                    } else {
                        events.push(event.clone());
                    }
                }
                Gate::Live { last_seq } => {
                    if event.seq <= *last_seq {
                        continue;
                    }
                    if sub.gaps.is_some() && event.seq != *last_seq + 1 {
                        sub.ask_after(*last_seq);
                        continue;
                    }
                    *last_seq = event.seq;
                    if sub.may_see(event.kind().as_str()) {
                        if let Some(message) =
                            encoded.get(sub.outbox.encoding, |e| message(e, &event_frame(event)))
                        {
                            sub.outbox.push(message.clone());
                            delivered += 1;
                        }
                    }
                    sub.pause_if_access_may_end(&mut gate, event, Vec::new);
                }
                Gate::Closed => continue,
            }
        }
        crate::metrics::ws_delivered(delivered);
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
                        // In a cluster the next event (or the periodic check) shows each
                        // subscription what it lacks, and the log fills it.
                        if self.gaps.get().is_none() {
                            self.resync_all();
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use boardroom_actors::roles::OrgRole;

    use super::*;

    fn requester() -> Requester {
        Requester { user_id: Uuid::now_v7(), org_role: OrgRole::Member, scopes: None }
    }

    fn event(board: Uuid, seq: i64) -> Arc<BoardEvent> {
        Arc::new(BoardEvent {
            organization_id: Uuid::nil(),
            board_id: board,
            seq,
            actor: None,
            data: EventData::ItemDeleted { item_id: Uuid::nil(), group_id: Uuid::nil() },
            created_at: chrono::Utc::now(),
        })
    }

    fn received(outbox: &Outbox) -> Vec<Message> {
        outbox.queued_frames()
    }

    fn seqs(messages: &[Message]) -> Vec<i64> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Text(t) => serde_json::from_str::<serde_json::Value>(t).ok(),
                Message::Binary(b) => rmp_serde::from_slice::<serde_json::Value>(b).ok(),
                _ => None,
            })
            .filter_map(|v| v["seq"].as_i64())
            .collect()
    }

    #[test]
    fn each_event_is_encoded_once_per_encoding_and_shared() {
        let fanout = Fanout::default();
        let board = Uuid::now_v7();
        let (a, _) = Outbox::new(Encoding::Json, 1 << 20);
        let (b, _) = Outbox::new(Encoding::Json, 1 << 20);
        let (c, _) = Outbox::new(Encoding::MessagePack, 1 << 20);
        let (a_out, b_out, c_out) = (a.clone(), b.clone(), c.clone());
        for outbox in [a, b, c] {
            let sub = fanout.add(board, Uuid::nil(), requester(), outbox);
            sub.go_live(Some(0));
        }
        fanout.deliver(&event(board, 1));
        let (a, b, c) = (received(&a_out), received(&b_out), received(&c_out));
        match (&a[..], &b[..]) {
            ([Message::Text(x)], [Message::Text(y)]) => {
                assert_eq!(x.as_str().as_ptr(), y.as_str().as_ptr(), "encoded twice");
            }
            other => panic!("unexpected frames {other:?}"),
        }
        assert!(matches!(&c[..], [Message::Binary(_)]));
        assert_eq!(seqs(&c), vec![1]);
    }

    #[test]
    fn buffered_events_are_sent_once_and_in_order() {
        let fanout = Fanout::default();
        let board = Uuid::now_v7();
        let (outbox, _) = Outbox::new(Encoding::Json, 1 << 20);
        let sub = fanout.add(board, Uuid::nil(), requester(), outbox.clone());
        // Arrive while the subscriber reads the log up to 3.
        for seq in 2..=5 {
            fanout.deliver(&event(board, seq));
        }
        sub.go_live(Some(3));
        fanout.deliver(&event(board, 5));
        fanout.deliver(&event(board, 6));
        assert_eq!(seqs(&received(&outbox)), vec![4, 5, 6]);
        fanout.remove(&sub);
        fanout.deliver(&event(board, 7));
        assert!(received(&outbox).is_empty());
        assert!(fanout.is_empty());
    }

    #[test]
    fn a_full_outbox_closes_its_connection_only() {
        let fanout = Fanout::default();
        let board = Uuid::now_v7();
        let (slow, slow_ends) = Outbox::new(Encoding::Json, 512);
        let (fast, _) = Outbox::new(Encoding::Json, 1 << 20);
        let fast_out = fast.clone();
        for outbox in [slow, fast] {
            fanout.add(board, Uuid::nil(), requester(), outbox).go_live(Some(0));
        }
        for seq in 1..=20 {
            fanout.deliver(&event(board, seq));
        }
        let closed = slow_ends.closed.borrow().clone();
        assert_eq!(closed.map(|c| c.0), Some(close::SLOW_CONSUMER));
        assert_eq!(seqs(&received(&fast_out)), (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn in_a_cluster_a_gap_is_held_back_and_reported_until_filled() {
        let fanout = Fanout::default();
        let mut gaps = fanout.report_gaps().unwrap();
        assert!(fanout.report_gaps().is_none());
        let board = Uuid::now_v7();
        let (outbox, _) = Outbox::new(Encoding::Json, 1 << 20);
        let sub = fanout.add(board, Uuid::nil(), requester(), outbox.clone());
        sub.go_live(Some(2));
        fanout.deliver(&event(board, 3));
        // 4 was lost: 5 and 6 wait, and the node is asked once for what follows 3.
        fanout.deliver(&event(board, 5));
        fanout.deliver(&event(board, 6));
        assert_eq!(seqs(&received(&outbox)), vec![3]);
        let asked = gaps.try_recv().unwrap();
        assert_eq!(asked, Behind { board, org: Uuid::nil(), after: 3 });
        assert!(gaps.try_recv().is_err());
        assert_eq!(fanout.positions(), vec![asked]);
        // The fill from the log, then the live events again (duplicates are skipped).
        for seq in 4..=6 {
            fanout.deliver(&event(board, seq));
        }
        fanout.deliver(&event(board, 6));
        fanout.deliver(&event(board, 7));
        assert_eq!(seqs(&received(&outbox)), vec![4, 5, 6, 7]);
        assert_eq!(fanout.positions()[0].after, 7);
    }

    #[test]
    fn in_a_cluster_going_live_sorts_the_buffer_and_stops_at_a_hole() {
        let fanout = Fanout::default();
        let mut gaps = fanout.report_gaps().unwrap();
        let board = Uuid::now_v7();
        let (outbox, _) = Outbox::new(Encoding::Json, 1 << 20);
        let sub = fanout.add(board, Uuid::nil(), requester(), outbox.clone());
        // Arrived from two sources while the snapshot (at 3) was read: out of order, 7 lost.
        for seq in [5, 3, 4, 8, 6] {
            fanout.deliver(&event(board, seq));
        }
        assert!(fanout.positions().is_empty(), "nothing is live yet");
        sub.go_live(Some(3));
        assert_eq!(seqs(&received(&outbox)), vec![4, 5, 6]);
        assert_eq!(gaps.try_recv().unwrap().after, 6);
        for seq in 7..=8 {
            fanout.deliver(&event(board, seq));
        }
        assert_eq!(seqs(&received(&outbox)), vec![7, 8]);
    }

    #[test]
    fn on_one_node_events_pass_as_they_come() {
        let fanout = Fanout::default();
        let board = Uuid::now_v7();
        let (outbox, _) = Outbox::new(Encoding::Json, 1 << 20);
        fanout.add(board, Uuid::nil(), requester(), outbox.clone()).go_live(Some(1));
        fanout.deliver(&event(board, 3));
        assert_eq!(seqs(&received(&outbox)), vec![3]);
    }

    #[test]
    fn an_unfillable_hole_closes_only_the_subscriptions_behind_it() {
        let fanout = Fanout::default();
        let _gaps = fanout.report_gaps().unwrap();
        let board = Uuid::now_v7();
        let (behind, behind_ends) = Outbox::new(Encoding::Json, 1 << 20);
        let (ahead, ahead_ends) = Outbox::new(Encoding::Json, 1 << 20);
        fanout.add(board, Uuid::nil(), requester(), behind).go_live(Some(3));
        fanout.add(board, Uuid::nil(), requester(), ahead).go_live(Some(9));
        fanout.resync_behind(board, 5);
        assert_eq!(behind_ends.closed.borrow().as_ref().map(|c| c.0), Some(close::RESYNC));
        assert!(ahead_ends.closed.borrow().is_none());
    }
}
