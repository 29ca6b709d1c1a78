//! A connection's outbound side: the bounded queue of encoded frames the socket's writer
//! drains, the reader's control queue, and the one close signal every part of the connection
//! follows.
//!
//! Everything that sends to a client goes through [`Outbox::push`], which never waits: past
//! the byte bound the connection is closed as a slow consumer (4008) instead of growing. Only a
//! replay, which the connection reads from the log at its own pace, waits for room
//! ([`Outbox::wait_for_room`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Message;
use boardroom_protocol::codec::CodecError;
use boardroom_protocol::frames::close;
use boardroom_protocol::Encoding;
use serde::Serialize;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::fanout::{encoded, message};

/// Bytes counted per queued message on top of its payload.
const MESSAGE_OVERHEAD: usize = 64;

/// Asks a connection's reader to do something on the fan-out's behalf.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Membership of this board changed (or the board went): re-check access to it.
    Recheck(Uuid),
    /// The user's organization membership changed: re-check access to every subscribed board.
    RecheckAll,
    /// The user's sessions, keys or superadmin flag changed (here or on another node):
    /// re-check the credential now (closing 4001 if it ended), then every subscribed board.
    RecheckCredential,
}

/// A connection's outbound side: bounded in bytes, closable from anywhere.
///
/// The queues are plain `VecDeque`s behind a lock with a [`Notify`] each, not channels: a
/// channel allocates its first block of slots up front, which every idle socket would carry;
/// an empty `VecDeque` allocates nothing.
pub struct Outbox {
    frames: Mutex<VecDeque<Message>>,
    pub(super) frames_ready: Notify,
    controls: Mutex<VecDeque<Control>>,
    pub(super) controls_ready: Notify,
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

/// Most frames written before one flush.
pub(super) const WRITE_BATCH: usize = 64;

/// The bytes a message counts against the bound.
pub(super) fn size_of(message: &Message) -> usize {
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
    pub(super) fn take_frames(&self, max: usize) -> (Vec<Message>, usize) {
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
    pub(super) fn written(&self, size: usize) {
        self.queued.fetch_sub(size, Ordering::AcqRel);
        self.drained.notify_waiters();
    }

    /// Frames queued and not yet written (tests).
    #[cfg(test)]
    pub fn queued_frames(&self) -> Vec<Message> {
        self.take_frames(usize::MAX).0
    }

    /// Encodes and queues a frame: a [`boardroom_protocol::ServerFrame`], or one written straight
    /// from its types such as [`boardroom_protocol::frames::ReplyOk`].
    pub fn send<T: Serialize>(&self, frame: &T) {
        if let Some(message) = message(self.encoding, frame) {
            self.push(message);
        }
    }

    /// Encodes and queues a frame, or says why it did not encode (and queues nothing).
    pub fn try_send<T: Serialize>(&self, frame: &T) -> Result<(), CodecError> {
        self.push(encoded(self.encoding, frame)?);
        Ok(())
    }

    /// Closes the connection with `code` and `reason`; the first close wins.
    pub fn close(&self, code: u16, reason: &str) {
        self.closing.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some((code, reason.to_owned()));
            if code == close::SLOW_CONSUMER {
                crate::metrics::ws_slow_consumer_closed();
            }
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

    pub(super) fn take_control(&self) -> Option<Control> {
        locked(&self.controls).pop_front()
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
