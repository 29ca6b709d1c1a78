//! Exports on the wire: an `exports` row as the protocol's [`wire::Export`].

use boardroom_protocol::exports as wire;

use crate::storage::ExportRow;

/// An export's state. A status the server does not know reads as `failed`.
pub fn export(row: &ExportRow) -> wire::Export {
    let status = match row.status.as_str() {
        "pending" => wire::ExportStatus::Pending,
        "ready" => wire::ExportStatus::Ready,
        _ => wire::ExportStatus::Failed,
    };
    wire::Export { id: row.id, status, created_at: row.created_at, expires_at: row.expires_at }
}
