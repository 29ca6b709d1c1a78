//! An organization's export (its admins'): a zip (deflate) of JSON files, each one a protocol
//! type, so a client reads it with the types it already reads the API with.
//!
//! - `organization.json`: the organization (`orgs::Organization`, its role field the requesting
//!   admin's);
//! - `members.json`: members and their roles (`orgs::OrgMemberList`);
//! - per live board, under `boards/{board}/`: `board.json`, its snapshot (`boards::Snapshot`:
//!   columns, groups, items, archived ones too); `comments.json`, every comment and reply
//!   (`boards::UpdateList`, replies by `parent_id`); `attachments.json`, the files' metadata
//!   (`attachments::AttachmentList`; never a file's content or key); `webhooks.json`
//!   (`webhooks::WebhookList`; never a signing secret);
//! - `audit/0001.json`, `audit/0002.json`, …: the organization's audit log, newest first,
//!   [`AUDIT_ROWS_PER_FILE`] rows a file (`audit::AuditLog`, `next_cursor` naming the next
//!   file's first row).
//!
//! Boards are read one at a time (the snapshot from the board's actor, so items still in its
//! write batch are in), and the audit log a file at a time: what is held is one board's content
//! or one audit file, however big the organization.

use boardroom_actors::board::Requester;
use boardroom_actors::boards::Boards;
use boardroom_actors::domain::BoardError;
use boardroom_actors::roles::OrgRole;
use uuid::Uuid;

use super::archive::Files;
use crate::storage::Store;
use crate::wire;

/// Audit rows in each `audit/NNNN.json`.
pub const AUDIT_ROWS_PER_FILE: i64 = 1000;

/// Puts the files of the organization `org`'s export, asked for by its admin `admin`, into
/// `files`.
pub async fn collect(
    store: &Store,
    boards: &Boards,
    org: Uuid,
    admin: Uuid,
    files: &Files,
) -> anyhow::Result<()> {
    let tenant = store.tenant(org);
    let organization =
        tenant.organization().await?.ok_or_else(|| anyhow::anyhow!("the organization is gone"))?;
    files
        .json("organization.json", &wire::orgs::organization(&organization, OrgRole::Admin))
        .await?;
    files.json("members.json", &wire::orgs::members(&tenant.members().await?)).await?;

    let requester = Requester { user_id: admin, org_role: OrgRole::Admin, scopes: None };
    for listing in tenant.boards_for(admin, true).await? {
        let board = listing.board.id;
        let snapshot = match boards.snapshot(org, board, requester.clone()).await {
            Ok(snapshot) => snapshot,
            // Deleted since it was listed: it is no longer the organization's.
            Err(BoardError::NotFound(_)) => continue,
            Err(err) => return Err(anyhow::anyhow!("board {board}: {err}")),
        };
        let dir = format!("boards/{board}");
        files.json(format!("{dir}/board.json"), &wire::boards::snapshot(&snapshot)).await?;
        drop(snapshot);
        let updates = tenant.board_updates(board).await?;
        files.json(format!("{dir}/comments.json"), &wire::boards::updates(board, &updates)).await?;
        let attachments = tenant.board_attachments(board).await?;
        files
            .json(format!("{dir}/attachments.json"), &wire::attachments::list(&attachments))
            .await?;
        let webhooks = tenant.webhooks(board).await?;
        files.json(format!("{dir}/webhooks.json"), &wire::webhooks::list(&webhooks)).await?;
    }

    let mut before = None;
    for file in 1.. {
        let rows = tenant.audit_entries(before, None, AUDIT_ROWS_PER_FILE).await?;
        let full = rows.len() as i64 == AUDIT_ROWS_PER_FILE;
        let next = if full { rows.last().map(|row| row.seq) } else { None };
        if rows.is_empty() && file > 1 {
            break;
        }
        files.json(format!("audit/{file:04}.json"), &wire::audit::page(rows, next)).await?;
        match next {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    Ok(())
}
