//! Messages between the nodes of one cluster, over NATS (`BOARDROOM_NATS_URL`).
//!
//! Every message travels in an [`Envelope`] that names the protocol version and the sending
//! node, encoded as JSON. A node ignores (and logs) a message of a version it does not speak, so
//! a rolling upgrade that changes a message bumps [`CLUSTER_PROTOCOL_VERSION`] and keeps reading
//! the old one for a release. Subjects are `boardroom.<cluster id>.<what>`, the cluster id
//! being the database's own (`cluster_identity`), so two clusters sharing one NATS server never
//! hear each other:
//!
//! | subject | message | who publishes, who listens |
//! |---|---|---|
//! | `….board.<board id>.events` | [`BoardEventMessage`] | a board's owner after each commit; every node's fan-out |
//! | `….invalidate` | [`Invalidation`] | the node where credentials or access changed; every node |
//! | `….node.<node id>.rpc` | a forwarded actor call (the server's `cluster::forward`) | any node; the owner |
//!
//! Board events carry [`crate::events::Event`], the same value the REST log and sockets show.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::Event;

/// The version of the messages between nodes.
pub const CLUSTER_PROTOCOL_VERSION: u16 = 1;

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// [`CLUSTER_PROTOCOL_VERSION`] of the sender.
    pub v: u16,
    /// The sending node's id.
    pub from: String,
    /// The message.
    pub body: T,
}

impl<T> Envelope<T> {
    /// `body` from node `from`, at this version.
    pub fn new(from: impl Into<String>, body: T) -> Envelope<T> {
        Envelope { v: CLUSTER_PROTOCOL_VERSION, from: from.into(), body }
    }
}

/// A committed board event, published by the board's owner once its transaction committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardEventMessage {
    /// The board's organization.
    pub organization_id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The event, as sockets and the REST log show it.
    pub event: Event,
}

/// Something every node must forget or re-check at once: a cached credential or role that
/// changed on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// A session ended (logout, revocation): no node accepts it any more.
    Session {
        /// The session.
        session_id: Uuid,
        /// Its owner, whose sockets re-check their credential.
        user_id: Uuid,
    },
    /// Every session of a person ended (password change, erasure).
    UserSessions {
        /// The person.
        user_id: Uuid,
    },
    /// An API key was revoked or re-scoped.
    ApiKey {
        /// The key.
        key_id: Uuid,
        /// The user it acts as, whose sockets re-check their credential.
        user_id: Uuid,
    },
    /// A person's membership or role in an organization changed (or ended).
    OrgMember {
        /// The organization.
        organization_id: Uuid,
        /// The person.
        user_id: Uuid,
    },
    /// A person's superadmin flag was granted or revoked.
    Superadmin {
        /// The person.
        user_id: Uuid,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_names_its_kind() {
        let id = Uuid::nil();
        let message = Envelope::new("node-a", Invalidation::ApiKey { key_id: id, user_id: id });
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"v": 1, "from": "node-a",
                "body": {"kind": "api_key", "key_id": "00000000-0000-0000-0000-000000000000",
                    "user_id": "00000000-0000-0000-0000-000000000000"}})
        );
        let back: Envelope<Invalidation> = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }
}
