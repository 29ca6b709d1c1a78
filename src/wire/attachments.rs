//! Attachments on the wire: a file's metadata as the routes answer it and `attachment.*` events
//! carry it. Where its bytes are and the key that reads them never leave the server.

use boardroom_actors::domain;
use boardroom_protocol::attachments as wire;

use crate::storage::StoredAttachment;

/// An attachment's metadata.
pub fn attachment(a: &domain::Attachment) -> wire::Attachment {
    wire::Attachment {
        id: a.id,
        item_id: a.item_id,
        update_id: a.update_id,
        name: a.name.clone(),
        size: a.size,
        content_type: a.content_type.clone(),
        sha256: a.sha256.clone(),
        created_by: a.created_by,
        created_at: a.created_at,
    }
}

/// The attachments of an item, oldest first.
pub fn list(stored: &[StoredAttachment]) -> wire::AttachmentList {
    wire::AttachmentList { attachments: stored.iter().map(|s| attachment(&s.attachment)).collect() }
}

/// An attachment's metadata read back from its wire form (an idempotent answer, the log).
pub fn to_domain(a: wire::Attachment) -> domain::Attachment {
    domain::Attachment {
        id: a.id,
        item_id: a.item_id,
        update_id: a.update_id,
        name: a.name,
        size: a.size,
        content_type: a.content_type,
        sha256: a.sha256,
        created_by: a.created_by,
        created_at: a.created_at,
    }
}
