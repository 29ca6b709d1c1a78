//! The audit log on the wire: an organization's audit rows as admins read them. The chain's
//! own fields (hashes, organization) stay in the database; `metadata` is free-form by design
//! (its fields depend on the action) and is shown as stored.

use boardroom_protocol::audit as wire;

use crate::storage::AuditRow;

/// One audit row.
pub fn entry(row: AuditRow) -> wire::AuditEntry {
    wire::AuditEntry {
        seq: row.seq,
        id: row.id,
        action: row.action,
        actor_id: row.actor_id,
        target: row.target,
        ip: row.ip,
        user_agent: row.user_agent,
        bypass: row.bypass,
        metadata: row.metadata.0,
        created_at: row.created_at,
    }
}

/// One page of the log, newest first, and the cursor of the next (older) page, if any.
pub fn page(rows: Vec<AuditRow>, next_cursor: Option<i64>) -> wire::AuditLog {
    wire::AuditLog { entries: rows.into_iter().map(entry).collect(), next_cursor }
}
