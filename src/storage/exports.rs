//! Exports: the `exports` rows (a personal or organization export's state, its sealed blob in the
//! attachment vault, its expiry), and the reads that gather what a person authored or is
//! recorded about, for their export.
//!
//! A personal export spans the organizations its owner belongs to: its reads of board content
//! go through each organization's [`TenantStore`], and only the audit rows about the person
//! are read across organizations, since the person is what selects them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::audit::{AuditRow, AUDIT_COLUMNS};
use super::{now, StorageResult, Store, TenantStore};
use crate::attachments::SealedBlob;
use crate::{on_pool, write_on_pool};

/// A stored export.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    /// Id.
    pub id: Uuid,
    /// Who asked for it, and the only one who may read it.
    pub user_id: Uuid,
    /// The organization exported, for an organization export (`None`: a personal one).
    pub organization_id: Option<Uuid>,
    /// `pending`, `ready` or `failed`.
    pub status: String,
    /// A plain file under `<data dir>/exports/` left by a release before the vault (only ever
    /// deleted).
    pub file_name: Option<String>,
    /// The zip's size in bytes, once ready.
    pub size: Option<i64>,
    /// The sealed zip's name in the blob store, once ready.
    pub blob_key: Option<String>,
    /// The master key wrapping its data key.
    pub key_id: Option<String>,
    /// Its data key, wrapped.
    pub wrapped_key: Option<Vec<u8>>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it stops being served and is deleted.
    pub expires_at: DateTime<Utc>,
}

const EXPORT_COLUMNS: &str = "id, user_id, organization_id, status, file_name, size, blob_key, \
     key_id, wrapped_key, created_at, expires_at";

/// A session, as its owner's export shows it (never its refresh salt).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SessionRecord {
    /// Id.
    pub id: Uuid,
    /// `password` or `google`.
    pub method: String,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Client User-Agent at sign-in.
    pub user_agent: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_used_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An item someone created.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuthoredItem {
    /// Id.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its board.
    pub board_id: Uuid,
    /// Its group.
    pub group_id: Uuid,
    /// Name.
    pub name: String,
    /// Values by column id.
    #[serde(rename = "values")]
    pub column_values: Json<Value>,
    /// When archived, if it is.
    pub archived_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A comment (update) someone wrote.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuthoredComment {
    /// Id.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its board.
    pub board_id: Uuid,
    /// Its item.
    pub item_id: Uuid,
    /// The comment it answers.
    pub parent_id: Option<Uuid>,
    /// Text.
    pub body: String,
    /// When written.
    pub created_at: DateTime<Utc>,
    /// When last edited.
    pub edited_at: Option<DateTime<Utc>>,
}

/// An attachment someone uploaded: its metadata only (never its key or blob).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuthoredAttachment {
    /// Id.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its board.
    pub board_id: Uuid,
    /// Its item.
    pub item_id: Uuid,
    /// The comment it belongs to, if any.
    pub update_id: Option<Uuid>,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Media type.
    pub content_type: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Records a pending export asked for by `user_id`, of the organization `org` (or personal,
    /// for `None`), expiring at `expires_at`. A second pending one of the same person (personal)
    /// or organization is refused by the `exports_one_pending*` indexes
    /// ([`super::StorageError::Unique`]).
    pub async fn create_export(
        &self,
        id: Uuid,
        user_id: Uuid,
        org: Option<Uuid>,
        expires_at: DateTime<Utc>,
    ) -> StorageResult<ExportRow> {
        let sql = format!(
            "INSERT INTO exports (id, user_id, organization_id, status, created_at, expires_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5) RETURNING {EXPORT_COLUMNS}"
        );
        Ok(write_on_pool!(self, pool => {
            sqlx::query_as::<_, ExportRow>(&sql)
                .bind(id)
                .bind(user_id)
                .bind(org)
                .bind(now())
                .bind(expires_at)
                .fetch_one(pool)
                .await
        })?)
    }

    /// The export `id` if `user_id` asked for it, it is of `org` (`None`: a personal one), and
    /// it has not expired at `at`.
    pub async fn export_of(
        &self,
        id: Uuid,
        user_id: Uuid,
        org: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> StorageResult<Option<ExportRow>> {
        let sql = format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1 AND user_id = $2 \
             AND (organization_id = $3 OR ($3 IS NULL AND organization_id IS NULL)) \
             AND expires_at > $4"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ExportRow>(&sql)
                .bind(id)
                .bind(user_id)
                .bind(org)
                .bind(at)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Every export `user_id` asked for, personal and organization ones, in any state.
    pub async fn exports_by(&self, user_id: Uuid) -> StorageResult<Vec<ExportRow>> {
        let sql = format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE user_id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ExportRow>(&sql).bind(user_id).fetch_all(pool).await
        })?)
    }

    /// The export row `id`, whoever's, expired or not.
    pub async fn export_row(&self, id: Uuid) -> StorageResult<Option<ExportRow>> {
        let sql = format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ExportRow>(&sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Ends a pending export: `ready` with its sealed blob, or `failed`. Answers whether the row
    /// was still there and pending (if not, the caller deletes the blob it made).
    pub async fn finish_export(&self, id: Uuid, blob: Option<&SealedBlob>) -> StorageResult<bool> {
        let status = if blob.is_some() { "ready" } else { "failed" };
        let size = blob.map(|b| i64::try_from(b.size).unwrap_or(i64::MAX));
        Ok(write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE exports SET status = $2, size = $3, blob_key = $4, key_id = $5, \
                 wrapped_key = $6 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(status)
            .bind(size)
            .bind(blob.map(|b| b.blob_key.as_str()))
            .bind(blob.map(|b| b.key_id.as_str()))
            .bind(blob.map(|b| b.wrapped_key.as_slice()))
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })?)
    }

    /// Marks every pending export failed: at start, the builds they waited for died with the
    /// last process.
    pub async fn fail_pending_exports(&self) -> StorageResult<u64> {
        Ok(write_on_pool!(self, pool => {
            sqlx::query("UPDATE exports SET status = 'failed' WHERE status = 'pending'")
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// Exports expired at `at` whose build has finished (a pending one is left to its build,
    /// which would otherwise write a file after its row is gone).
    pub async fn expired_exports(&self, at: DateTime<Utc>) -> StorageResult<Vec<ExportRow>> {
        let sql = format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE expires_at <= $1 AND status <> 'pending'"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ExportRow>(&sql).bind(at).fetch_all(pool).await
        })?)
    }

    /// Deletes the export row `id`.
    pub async fn delete_export(&self, id: Uuid) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM exports WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Every session of `user_id`, revoked and expired ones too, newest first.
    pub async fn sessions_record(&self, user_id: Uuid) -> StorageResult<Vec<SessionRecord>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SessionRecord>(
                "SELECT id, method, ip, user_agent, created_at, last_used_at, expires_at, \
                 revoked_at FROM sessions WHERE user_id = $1 ORDER BY created_at DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The audit rows whose actor or target is `user_id`, oldest first. Deliberately not
    /// tenant-scoped: the person selects the rows, across organizations and outside them.
    pub async fn audit_about_user(&self, user_id: Uuid) -> StorageResult<Vec<AuditRow>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE actor_id = $1 OR target = $2 \
             ORDER BY seq"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(&sql)
                .bind(user_id)
                .bind(user_id.to_string())
                .fetch_all(pool)
                .await
        })?)
    }
}

impl TenantStore<'_> {
    /// The items `user_id` created in this organization.
    pub async fn items_created_by(&self, user_id: Uuid) -> StorageResult<Vec<AuthoredItem>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuthoredItem>(
                "SELECT id, organization_id, board_id, group_id, name, column_values, \
                 archived_at, created_at, updated_at FROM items \
                 WHERE organization_id = $1 AND created_by = $2 ORDER BY created_at, id",
            )
            .bind(self.org_id())
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The comments `user_id` wrote in this organization.
    pub async fn comments_by(&self, user_id: Uuid) -> StorageResult<Vec<AuthoredComment>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuthoredComment>(
                "SELECT id, organization_id, board_id, item_id, parent_id, body, created_at, \
                 edited_at FROM updates WHERE organization_id = $1 AND author_id = $2 \
                 ORDER BY created_at, id",
            )
            .bind(self.org_id())
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The attachments `user_id` uploaded in this organization (metadata).
    pub async fn attachments_by(&self, user_id: Uuid) -> StorageResult<Vec<AuthoredAttachment>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuthoredAttachment>(
                "SELECT id, organization_id, board_id, item_id, update_id, name, size, \
                 content_type, sha256, created_at FROM attachments \
                 WHERE organization_id = $1 AND created_by = $2 ORDER BY created_at, id",
            )
            .bind(self.org_id())
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?)
    }
}
