//! A connection's subscriptions: subscribing (a snapshot, or a replay of the log after the
//! client's `after_seq`), going live, and ending a subscription when the caller loses the
//! board (periodic and event-driven re-checks of the credential and of board access).
//!
//! A replay is served by the reader, which handles nothing else meanwhile (frames, re-checks,
//! shutdown); it is therefore raced with shutdown and bounded by [`REPLAY_HEARTBEATS`]
//! heartbeat periods overall, after which the connection closes 4009 and the client resumes
//! from what it received.

use std::future::Future;
use std::time::Duration;

use boardroom_protocol::frames::{close, EventFrame, Reply, Subscribed, Unsubscribed};
use boardroom_protocol::{ErrorCode, RequestId, Scope, ServerFrame};
use uuid::Uuid;

use super::{send_ok, until_shutdown, Connection};
use crate::access::{requester_for, requester_recheck, scopes_of};
use crate::error::ApiError;
use crate::ws::fanout::{message, wire_time, Subscription};
use crate::ws::outbox::{size_of, Outbox};

/// Heartbeat periods a whole replay may take (two minutes by default). Generous: a replay that
/// makes progress is cut short only to bound how long the reader serves nothing else.
const REPLAY_HEARTBEATS: u32 = 2;
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// How far back `after_seq` may reach; further back, the subscriber gets a snapshot instead.
pub const MAX_REPLAY: i64 = 10_000;
/// Rows read from the log per query while replaying.
const REPLAY_PAGE: i64 = 1000;
/// Board access is re-checked every this many credential re-checks (and on member events).
const BOARD_RECHECK_EVERY: u32 = 6;

impl Connection {
    /// Subscribes to a board: registers with the fan-out first (so nothing can fall between),
    /// then replays the log after `after_seq` or sends a snapshot, then goes live. Sends its own
    /// reply, which must precede the replayed events.
    pub(super) async fn subscribe(
        &mut self,
        id: RequestId,
        board_id: &str,
        after_seq: Option<i64>,
    ) {
        let board = match crate::commands::id("board_id", board_id) {
            Ok(board) => board,
            Err(err) => return self.reply(Reply::err(Some(id), err.into())),
        };
        if let Some(old) = self.subs.remove(&board) {
            self.state.ws().fanout().remove(&old);
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            let err = ApiError::new(
                ErrorCode::ValidationFailed,
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
            );
            return self.reply(Reply::err(Some(id), err.into()));
        }
        let (org, requester) = match requester_for(&self.state, &self.caller, board).await {
            Ok(found) => found,
            Err(err) => return self.reply(Reply::err(Some(id), err.into())),
        };
        let sub = self.state.ws().fanout().add(board, org, requester.clone(), self.outbox.clone());
        match self.catch_up(&sub, id.clone(), after_seq).await {
            Ok(()) => {
                self.state.ws().fanout().join(&sub);
                self.subs.insert(board, sub);
            }
            Err(err) => {
                self.state.ws().fanout().remove(&sub);
                self.reply(Reply::err(Some(id), err.into()));
            }
        }
    }

    async fn catch_up(
        &self,
        sub: &Subscription,
        id: RequestId,
        after_seq: Option<i64>,
    ) -> Result<(), ApiError> {
        let (board, org, requester) = (sub.board, sub.org, &sub.requester);
        let replayable = match after_seq {
            Some(after) => self.replayable(sub, after).await?,
            None => None,
        };
        let sent = match replayable {
            Some((after, current)) => {
                let data = Subscribed { seq: current, recovered: true, snapshot: None };
                send_ok(&self.outbox, Some(&id), &data, Some(current))?;
                self.replay(sub, after, current).await;
                current
            }
            None => {
                let snapshot = self.state.boards().snapshot(org, board, requester.clone()).await?;
                let seq = snapshot.seq;
                let snapshot = Some(crate::wire::boards::snapshot(&snapshot));
                let data = Subscribed { seq, recovered: false, snapshot };
                send_ok(&self.outbox, Some(&id), &data, Some(seq))?;
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
    ) -> Result<Option<(i64, i64)>, ApiError> {
        let (board, org) = (sub.board, sub.org);
        let (current, _) = self.state.boards().seq(org, board, sub.requester.clone()).await?;
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
            .map_err(ApiError::internal)?;
        Ok((held == current - after).then_some((after, current)))
    }

    /// Sends the events after `after` up to `current` ([`Connection::replay_pages`]), within
    /// [`REPLAY_HEARTBEATS`] heartbeat periods and unless the server shuts down first (see
    /// [`bounded`]).
    async fn replay(&self, sub: &Subscription, after: i64, current: i64) {
        let mut shutdown = self.shutdown.clone();
        let pages = self.replay_pages(sub, after, current);
        let within = self.patience * REPLAY_HEARTBEATS;
        bounded(&self.outbox, pages, within, until_shutdown(&mut shutdown)).await;
    }

    /// Sends the events after `after` up to `current`, read a page at a time (at most
    /// [`REPLAY_PAGE`] events and the smaller of `BOARDROOM_EVENTS_PAGE_BYTES` and the outbound
    /// buffer), each event queued when the outbox has room for it: a resume holds one page
    /// besides the outbox, however long the log it replays. If the log cannot be read to the
    /// end, the connection closes with 4009 and the client resumes again.
    async fn replay_pages(&self, sub: &Subscription, after: i64, current: i64) {
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
    pub(super) async fn recheck(&mut self) {
        if !self.recheck_credential().await {
            return;
        }
        self.rechecks = self.rechecks.wrapping_add(1);
        if self.rechecks.is_multiple_of(BOARD_RECHECK_EVERY) {
            self.recheck_boards().await;
        }
    }

    /// Re-checks the credential and, if it still stands, every subscription's board access: the
    /// credential or the access behind it changed, here or on another node.
    pub(super) async fn recheck_now(&mut self) {
        if self.recheck_credential().await {
            self.recheck_boards().await;
        }
    }

    /// Re-checks the credential: `false` when it ended (the connection is closing, 4001).
    async fn recheck_credential(&mut self) -> bool {
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
            // answered from the cache before that check, so only a lost key meets it (or one
            // just re-scoped, dropped from the cache, while its network is blocked: closing it
            // is the safe side, since passing it would let a revoked key's holder keep its
            // socket by failing keys on purpose).
            Err(err) if matches!(err.code(), ErrorCode::Internal | ErrorCode::Unavailable) => {}
            Err(err) => {
                self.outbox.close(close::AUTH_ENDED, err.code().as_str());
                return false;
            }
        }
        true
    }

    /// Re-checks access to every subscribed board.
    pub(super) async fn recheck_boards(&mut self) {
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
                error: why.to_body(),
            }));
        }
    }

    /// Ends the subscription to `board` if the caller lost access to it.
    pub(super) async fn recheck_board(&mut self, board: Uuid) {
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
        let scope = Scope::BoardsRead;
        self.state.boards().access(org, board, requester, scope).await?;
        Ok(())
    }

    pub(super) fn end_all(&mut self) {
        for (_, sub) in self.subs.drain() {
            self.state.ws().fanout().remove(&sub);
        }
    }
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

/// Runs `replay` (which queues into `outbox`) unless `stop`, the server's shutdown, resolves
/// first (closing 1001) or it outlasts `within` (closing 4009, so the client resumes from the
/// last event it received). A replay holds the connection's reader: unbounded, a client that
/// reads slowly, but reads, would hold back its access re-checks and the shutdown for as long
/// as it liked.
async fn bounded(
    outbox: &Outbox,
    replay: impl Future<Output = ()>,
    within: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::select! {
        () = replay => {}
        () = stop => outbox.close(close::GOING_AWAY, "server shutting down"),
        () = tokio::time::sleep(within) => {
            outbox.close(close::RESYNC, "replay took too long; resume again");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::extract::ws::Message;
    use boardroom_protocol::Encoding;

    use super::*;

    /// An outbox that is full, and a replay that waits for room in it for a minute.
    fn stalled() -> (Arc<Outbox>, crate::ws::outbox::OutboxEnds) {
        let (outbox, ends) = Outbox::new(Encoding::Json, 1000);
        outbox.push(Message::Text("x".repeat(800).into()));
        (outbox, ends)
    }

    #[tokio::test]
    async fn a_stalled_replay_ends_at_its_deadline_as_a_resync() {
        let (outbox, ends) = stalled();
        let started = std::time::Instant::now();
        let replay = async {
            outbox.wait_for_room(800, Duration::from_secs(60)).await;
        };
        bounded(&outbox, replay, Duration::from_millis(100), std::future::pending()).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(ends.closed.borrow().as_ref().map(|c| c.0), Some(close::RESYNC));
    }

    #[tokio::test]
    async fn a_stalled_replay_gives_way_to_shutdown() {
        let (outbox, ends) = stalled();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let replay = async {
            outbox.wait_for_room(800, Duration::from_secs(60)).await;
        };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = stop.send(true);
        });
        let started = std::time::Instant::now();
        bounded(&outbox, replay, Duration::from_secs(60), until_shutdown(&mut stopped)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(ends.closed.borrow().as_ref().map(|c| c.0), Some(close::GOING_AWAY));
    }

    #[tokio::test]
    async fn a_replay_that_finishes_closes_nothing() {
        let (outbox, ends) = Outbox::new(Encoding::Json, 1000);
        bounded(&outbox, async {}, Duration::from_secs(60), std::future::pending()).await;
        assert!(ends.closed.borrow().is_none());
    }
}
