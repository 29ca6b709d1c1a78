//! Attachment rows: a file's metadata, the name of its encrypted blob and its wrapped data key.
//! Rows are added and deleted only by a board's commit (with their `attachment.*` event, in the
//! same transaction: [`insert_attachments!`], and `boards.rs`'s deletions); the reads here serve
//! the routes and the board actor. Every statement binds `organization_id` and `board_id`.
//!
//! Rows go with their item, comment or organization by `ON DELETE CASCADE`; a board is deleted
//! softly, so its rows are taken out explicitly once it is ([`TenantStore::take_board_attachments`]).

use std::collections::HashMap;

use boardroom_actors::domain::{Attachment, StoredBlob};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StorageResult, Store, TenantStore};
use crate::{on_pool, write_on_pool};

/// The columns [`AttachmentRow`] reads.
const ATTACHMENT_COLUMNS: &str = "id, item_id, update_id, name, size, content_type, sha256, \
    blob_key, key_id, wrapped_key, created_by, created_at";

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    id: Uuid,
    item_id: Uuid,
    update_id: Option<Uuid>,
    name: String,
    size: i64,
    content_type: String,
    sha256: String,
    blob_key: String,
    key_id: String,
    wrapped_key: Vec<u8>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

/// An attachment with where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    /// Its metadata.
    pub attachment: Attachment,
    /// Its blob and wrapped data key.
    pub blob: StoredBlob,
}

impl From<AttachmentRow> for StoredAttachment {
    fn from(r: AttachmentRow) -> Self {
        StoredAttachment {
            attachment: Attachment {
                id: r.id,
                item_id: r.item_id,
                update_id: r.update_id,
                name: r.name,
                // Written from a u64 the server measured; a negative size is no size.
                size: u64::try_from(r.size).unwrap_or(0),
                content_type: r.content_type,
                sha256: r.sha256,
                created_by: r.created_by,
                created_at: r.created_at,
            },
            blob: StoredBlob { blob_key: r.blob_key, key_id: r.key_id, wrapped_key: r.wrapped_key },
        }
    }
}

/// Inserts each of `$rows` (`&[(&Attachment, &StoredBlob)]`) on board `$board`, on `$conn`
/// inside the caller's transaction (the board's commit). A row whose item is not that board's
/// is not written, and the batch is refused ([`super::boards::all_written`]).
macro_rules! insert_attachments {
    ($conn:ident, $org:expr, $board:expr, $rows:expr) => {{
        let (org, board): (Uuid, Uuid) = ($org, $board);
        let rows: &[(&boardroom_actors::domain::Attachment, &boardroom_actors::domain::StoredBlob)] =
            $rows;
        for (a, blob) in rows {
            let size = i64::try_from(a.size).map_err(|_| StorageError::Rule(NOT_APPLIED))?;
            let written = sqlx::query(
                "INSERT INTO attachments (id, organization_id, board_id, item_id, update_id, name, size, \
                 content_type, sha256, blob_key, key_id, wrapped_key, created_by, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
                 WHERE EXISTS (SELECT 1 FROM items WHERE organization_id = $2 AND board_id = $3 AND id = $4)",
            )
            .bind(a.id).bind(org).bind(board).bind(a.item_id).bind(a.update_id).bind(&a.name)
            .bind(size).bind(&a.content_type).bind(&a.sha256).bind(&blob.blob_key)
            .bind(&blob.key_id).bind(&blob.wrapped_key).bind(a.created_by).bind(a.created_at)
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            all_written(written, 1)?;
        }
    }};
}
pub(super) use insert_attachments;

impl TenantStore<'_> {
    /// The attachments on `item` of `board` (its comments' included), oldest first.
    pub async fn attachments(
        &self,
        board: Uuid,
        item: Uuid,
    ) -> StorageResult<Vec<StoredAttachment>> {
        self.attachments_on(board, Some(item)).await
    }

    /// Every attachment on `board`, oldest first: an organization export's (metadata only is
    /// ever written out).
    pub async fn board_attachments(&self, board: Uuid) -> StorageResult<Vec<StoredAttachment>> {
        self.attachments_on(board, None).await
    }

    async fn attachments_on(
        &self,
        board: Uuid,
        item: Option<Uuid>,
    ) -> StorageResult<Vec<StoredAttachment>> {
        let sql = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE organization_id = $1 AND board_id = $2 \
             AND ($3 IS NULL OR item_id = $3) ORDER BY created_at, id"
        );
        let rows: Vec<AttachmentRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, AttachmentRow>(&sql).bind(self.org_id()).bind(board).bind(item)
                .fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(StoredAttachment::from).collect())
    }

    /// One attachment of `board`.
    pub async fn attachment(
        &self,
        board: Uuid,
        id: Uuid,
    ) -> StorageResult<Option<StoredAttachment>> {
        attachment_of(self.store, self.org_id(), board, id).await
    }

    /// Takes out the attachment rows of `board` once it is deleted (a board is deleted softly,
    /// so its rows do not cascade), answering their blobs' names to delete. A live board's rows
    /// are never touched.
    pub async fn take_board_attachments(&self, board: Uuid) -> StorageResult<Vec<String>> {
        let rows: Vec<(String,)> = write_on_pool!(self, pool => {
            sqlx::query_as(
                "DELETE FROM attachments WHERE organization_id = $1 AND board_id = $2 \
                 AND EXISTS (SELECT 1 FROM boards WHERE organization_id = $1 AND id = $2 \
                 AND deleted_at IS NOT NULL) RETURNING blob_key",
            )
            .bind(self.org_id()).bind(board).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|(key,)| key).collect())
    }
}

async fn attachment_of(
    store: &Store,
    org: Uuid,
    board: Uuid,
    id: Uuid,
) -> StorageResult<Option<StoredAttachment>> {
    let sql = format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE organization_id = $1 AND board_id = $2 AND id = $3"
    );
    let row: Option<AttachmentRow> = on_pool!(store, pool => {
        sqlx::query_as::<_, AttachmentRow>(&sql).bind(org).bind(board).bind(id)
            .fetch_optional(pool).await
    })?;
    Ok(row.map(StoredAttachment::from))
}

impl Store {
    /// One attachment of `board` of `org` (the board actor's [`BoardStore::attachment`]).
    ///
    /// [`BoardStore::attachment`]: boardroom_actors::board::BoardStore::attachment
    pub(super) async fn board_attachment(
        &self,
        org: Uuid,
        board: Uuid,
        id: Uuid,
    ) -> StorageResult<Option<Attachment>> {
        Ok(attachment_of(self, org, board, id).await?.map(|a| a.attachment))
    }

    /// How many files are attached to `item` of `board`.
    pub(super) async fn item_attachment_count(
        &self,
        org: Uuid,
        board: Uuid,
        item: Uuid,
    ) -> StorageResult<u32> {
        let (count,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM attachments WHERE organization_id = $1 AND board_id = $2 AND item_id = $3",
            )
            .bind(org).bind(board).bind(item).fetch_one(pool).await
        })?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// How many files are attached to each item of `board` (items without any are absent): the
    /// counts a board is loaded with.
    pub(super) async fn board_attachment_counts(
        &self,
        org: Uuid,
        board: Uuid,
    ) -> StorageResult<HashMap<Uuid, u32>> {
        let rows: Vec<(Uuid, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT item_id, COUNT(*) FROM attachments WHERE organization_id = $1 AND board_id = $2 \
                 GROUP BY item_id",
            )
            .bind(org).bind(board).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|(item, count)| (item, u32::try_from(count).unwrap_or(u32::MAX)))
            .collect())
    }
}
