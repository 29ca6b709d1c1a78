//! Changes to credentials and access made on this node, on their way to every node.
//!
//! Whatever ends or narrows a credential or someone's access (a logout or revoked session, a
//! password change or reset, a revoked or re-scoped API key, a membership or role change in an
//! organization, a superadmin grant or revoke) is applied to this node's caches at once by
//! [`super::Auth`], and told here as an [`Invalidation`]. The listener (`cluster::invalidations`,
//! started with the server) makes this node's affected sockets re-check at once and, with a
//! cluster, publishes the change to the other nodes, which drop their cache entries
//! ([`super::Auth::forget`]) and re-check their sockets too.
//!
//! Until a listener is attached nothing is kept: a process that serves nothing (a CLI command)
//! has no sockets to re-check, and no queue grows unread.

use std::sync::OnceLock;

use boardroom_protocol::cluster::Invalidation;
use tokio::sync::{mpsc, oneshot};

/// What the listener receives.
#[derive(Debug)]
pub enum Notice {
    /// A change to pass on.
    Changed(Invalidation),
    /// Answer once every change told before has been passed on (a CLI command about to exit).
    Flush(oneshot::Sender<()>),
}

/// The way from [`super::Auth`] to the listener.
#[derive(Default)]
pub struct Changes {
    sender: OnceLock<mpsc::UnboundedSender<Notice>>,
}

impl Changes {
    /// Attaches the listener: the receiving end, the first time only.
    pub fn listen(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.sender.set(sender).ok().map(|()| receiver)
    }

    /// Tells the listener of `change`; nothing without one.
    pub fn tell(&self, change: Invalidation) {
        if let Some(sender) = self.sender.get() {
            // The listener stops only with the server; a change told after it has nobody to
            // tell but also no socket left to re-check.
            let _ = sender.send(Notice::Changed(change));
        }
    }

    /// Waits until every change told so far has been passed on (at once without a listener).
    pub async fn flush(&self) {
        let Some(sender) = self.sender.get() else { return };
        let (done, passed) = oneshot::channel();
        if sender.send(Notice::Flush(done)).is_ok() {
            let _ = passed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[tokio::test]
    async fn changes_reach_the_one_listener_in_order() {
        let changes = Changes::default();
        let user = Uuid::now_v7();
        changes.tell(Invalidation::Superadmin { user_id: user });
        changes.flush().await;
        let mut listener = changes.listen().expect("the first listener");
        assert!(changes.listen().is_none(), "one listener only");
        changes.tell(Invalidation::UserSessions { user_id: user });
        let flushed = tokio::spawn(async move { changes.flush().await });
        assert!(matches!(
            listener.recv().await,
            Some(Notice::Changed(Invalidation::UserSessions { user_id })) if user_id == user
        ));
        match listener.recv().await {
            Some(Notice::Flush(done)) => done.send(()).unwrap(),
            other => panic!("expected the flush, got {other:?}"),
        }
        flushed.await.unwrap();
    }
}
