//! A connection's writer: drains the [`Outbox`] to the socket, many frames to a flush, and
//! sends the close frame when the connection ends, whoever ended it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use boardroom_protocol::frames::close;
use futures::SinkExt;
use tokio::sync::watch;

use super::until_closed;
use crate::ws::outbox::{Outbox, WRITE_BATCH};

/// Writes the outbox to `sink` until the connection closes, then says goodbye.
pub(super) async fn write_loop(
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
