//! Board events between nodes: what a board's actor commits on one node reaches the sockets
//! subscribed to that board on every node, in `seq` order, with no gap and no duplicate.
//!
//! - **Publish.** A task listens to this node's [`EventBus`] (only the actors running here
//!   publish on it) and publishes each event on `board.<board id>.events` as a
//!   [`BoardEventMessage`], on core NATS: `board_events` in Postgres is the durable log, so a
//!   message NATS loses is read from there instead of being stored twice (JetStream).
//! - **Receive.** Every node listens on `board.*.events`. A message of a board no socket here
//!   watches costs a look at its subject; one from this node itself is dropped (its events reach
//!   the fan-out through the bus); the others go to the [`Fanout`], which in a cluster takes
//!   each subscription's events strictly in order ([`Fanout::report_gaps`]) and reports a
//!   subscription that is [`Behind`]. Those are filled here from `board_events`, a page at a
//!   time, before anything else is handled.
//! - **Lost messages of an idle board** show in no later event, so every
//!   [`CHECK_EVERY`], and at once when the NATS connection comes back after a disconnect, the
//!   stored `seq` of every board with live subscriptions is compared with the lowest `seq` its
//!   subscriptions were sent, and the difference is filled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use boardroom_actors::domain::BoardEvent;
use boardroom_actors::event_bus::EventBus;
use boardroom_protocol::cluster::BoardEventMessage;
use boardroom_protocol::events::Event;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::Cluster;
use crate::state::AppState;
use crate::storage::EventRow;
use crate::ws::fanout::{Behind, Fanout};

/// How often the stored `seq` of every watched board is compared with what its sockets got:
/// the bound on how late the last event of an idle board arrives when NATS lost its message.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Events read from the log per query while filling a gap.
const FILL_PAGE: i64 = 1000;

/// The subject a board's events travel on.
pub fn subject(cluster: &Cluster, board: Uuid) -> String {
    cluster.subject(&format!("board.{board}.events"))
}

/// Starts publishing this node's events and delivering the other nodes' (when this node is in
/// a cluster), before any socket subscribes. The publisher runs until [`Cluster::leave`], after
/// the actors flushed, so the events of a graceful stop go out too; the receiver stops with the
/// gateway.
pub fn start(state: &AppState) {
    let Some(cluster) = state.cluster() else { return };
    // Turned on before the receiver starts, so every subscription takes events in order.
    let Some(gaps) = state.ws().fanout().report_gaps() else { return };
    cluster.keep(tokio::spawn(publish(cluster.clone(), state.boards().bus().clone())));
    let receiver = Receiver {
        cluster: cluster.clone(),
        state: state.clone(),
        page_bytes: i64::from(state.settings().events_page_bytes),
    };
    cluster.keep(tokio::spawn(receiver.run(gaps, state.ws().shutdown_signal())));
}

/// Publishes every event the actors here commit, in the order they commit.
async fn publish(cluster: Arc<Cluster>, bus: EventBus) {
    let mut events = bus.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // The other nodes see the gap at the next event, or at their periodic check.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "publishing events on NATS fell behind the bus");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let message = BoardEventMessage {
            organization_id: event.organization_id,
            board_id: event.board_id,
            event: crate::wire::events::event(&event),
        };
        cluster.publish(subject(&cluster, event.board_id), &message).await;
    }
}

/// What the receiver does next.
enum Step {
    Fill(Behind),
    Reconnected,
    Check,
    Receive(async_nats::Message),
}

/// The other nodes' events, to this node's sockets.
struct Receiver {
    cluster: Arc<Cluster>,
    /// For its fan-out and store.
    state: AppState,
    page_bytes: i64,
}

impl Receiver {
    async fn run(self, mut gaps: mpsc::UnboundedReceiver<Behind>, shutdown: watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        let wildcard = self.cluster.subject("board.*.events");
        // The subscription outlives NATS restarts: the client subscribes again on reconnect.
        let mut messages = loop {
            match self.cluster.nats().subscribe(wildcard.clone()).await {
                Ok(messages) => break messages,
                Err(err) => {
                    tracing::warn!(error = %err, "subscribing to board events failed; retrying");
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconnects = self.cluster.reconnects();
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                Some(first) = gaps.recv() => Step::Fill(first),
                Ok(()) = reconnects.changed() => Step::Reconnected,
                _ = check.tick() => Step::Check,
                message = messages.next() => match message {
                    Some(message) => Step::Receive(message),
                    None => {
                        tracing::error!("the board events subscription ended");
                        return;
                    }
                },
            };
            match step {
                Step::Fill(first) => self.fill_reported(first, &mut gaps).await,
                Step::Reconnected => {
                    tracing::info!("NATS is back: catching every watched board up from the log");
                    self.catch_up_all().await;
                }
                Step::Check => self.catch_up_all().await,
                Step::Receive(message) => self.receive(&message),
            }
        }
    }

    fn fanout(&self) -> &Fanout {
        self.state.ws().fanout()
    }

    /// Hands a message of another node to the fan-out, if a socket here watches its board.
    fn receive(&self, message: &async_nats::Message) {
        // The board is in the subject: a board nobody here watches is not even decoded.
        let Some(board) = board_of(message.subject.as_str()) else { return };
        if !self.fanout().watches(board) {
            return;
        }
        let Some(envelope) = super::decode::<BoardEventMessage>(&message.payload) else {
            tracing::warn!(subject = %message.subject, "a board event did not decode");
            return;
        };
        if envelope.from == self.cluster.node_id() || envelope.body.board_id != board {
            return;
        }
        let BoardEventMessage { organization_id, board_id, event } = envelope.body;
        match from_wire(organization_id, board_id, event) {
            Some(event) => self.fanout().deliver(&Arc::new(event)),
            // Left for the log to fill: the next event finds the subscriptions behind.
            None => tracing::warn!(board = %board_id, "a board event's data did not convert"),
        }
    }

    /// Fills every gap reported so far (several reports of a board: from the lowest).
    async fn fill_reported(&self, first: Behind, gaps: &mut mpsc::UnboundedReceiver<Behind>) {
        let mut wanted: HashMap<Uuid, Behind> = HashMap::new();
        let mut add = |behind: Behind| {
            wanted
                .entry(behind.board)
                .and_modify(|w| w.after = w.after.min(behind.after))
                .or_insert(behind);
        };
        add(first);
        while let Ok(behind) = gaps.try_recv() {
            add(behind);
        }
        for behind in wanted.into_values() {
            self.fill(behind).await;
        }
    }

    /// Compares the stored `seq` of every board with live subscriptions here with the lowest
    /// one they were sent, and fills the difference.
    async fn catch_up_all(&self) {
        let positions = self.fanout().positions();
        if positions.is_empty() {
            return;
        }
        let boards: Vec<(Uuid, Uuid)> = positions.iter().map(|p| (p.org, p.board)).collect();
        let stored: HashMap<Uuid, i64> = match self.state.store().board_seqs(&boards).await {
            Ok(seqs) => seqs.into_iter().collect(),
            Err(err) => {
                tracing::warn!(error = ?err, "reading the boards' seq failed");
                return;
            }
        };
        for behind in positions {
            if stored.get(&behind.board).is_some_and(|seq| *seq > behind.after) {
                self.fill(behind).await;
            }
        }
    }

    /// Hands the board's events after `behind.after` from the log to the fan-out, up to the
    /// newest; subscriptions already past an event skip it.
    async fn fill(&self, behind: Behind) {
        let Behind { board, org, after } = behind;
        let tenant = self.state.store().tenant(org);
        let mut cursor = after;
        loop {
            let page = match tenant
                .board_events_page(board, cursor, FILL_PAGE, self.page_bytes)
                .await
            {
                Ok(page) => page,
                // The periodic check tries again.
                Err(err) => {
                    tracing::warn!(error = ?err, %board, "reading the log to fill a gap failed");
                    return;
                }
            };
            let Some(first) = page.rows.first().map(|r| r.seq) else { return };
            if first != cursor + 1 {
                tracing::error!(%board, after = cursor, first, "the event log has a hole");
                self.fanout().resync_behind(board, cursor);
                return;
            }
            for row in page.rows {
                let seq = row.seq;
                let Some(event) = from_row(org, board, row) else {
                    tracing::error!(%board, seq, "a logged event did not convert");
                    self.fanout().resync_behind(board, seq - 1);
                    return;
                };
                self.fanout().deliver(&Arc::new(event));
                cursor = seq;
            }
            if !page.more {
                return;
            }
        }
    }
}

/// The board a subject `….board.<id>.events` names.
fn board_of(subject: &str) -> Option<Uuid> {
    let rest = subject.strip_suffix(".events")?;
    let (_, board) = rest.rsplit_once('.')?;
    board.parse().ok()
}

/// A wire event back as the domain's, as the board's actor published it.
fn from_wire(org: Uuid, board: Uuid, event: Event) -> Option<BoardEvent> {
    Some(BoardEvent {
        organization_id: org,
        board_id: board,
        seq: event.seq,
        actor: event.actor,
        data: crate::wire::events::to_domain(event.event)?,
        created_at: event.created_at,
    })
}

/// A logged event as the domain's.
fn from_row(org: Uuid, board: Uuid, row: EventRow) -> Option<BoardEvent> {
    let data = crate::wire::events::decode(&row.kind, row.payload.0).ok()?;
    Some(BoardEvent {
        organization_id: org,
        board_id: board,
        seq: row.seq,
        actor: row.actor,
        data: crate::wire::events::to_domain(data)?,
        created_at: row.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_is_read_from_the_subject() {
        let board = Uuid::now_v7();
        let subject = format!("boardroom.0123abcd.board.{board}.events");
        assert_eq!(board_of(&subject), Some(board));
        assert_eq!(board_of("boardroom.x.board.nope.events"), None);
        assert_eq!(board_of(&format!("boardroom.x.board.{board}.other")), None);
    }
}
