//! What the attachment vault's maintenance reads and writes in `attachments`: key ids in use,
//! re-wrapped data keys (`boardroom keys rotate`), and which blob names rows still hold (the
//! sweep).
//!
//! These run over every organization at once, deliberately: they are platform maintenance, not
//! a tenant's request, and they touch only key ids, wrapped keys and blob names, never a file's
//! name, type or content. Each update still binds the row's own `organization_id`.

use std::collections::HashSet;

use uuid::Uuid;

use super::{StorageResult, Store};
use crate::{on_pool, transaction};

/// A data key to re-wrap: the row, its blob, and the key as wrapped now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WrappedKeyRow {
    /// The attachment.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its blob's name (the wrapping's associated data).
    pub blob_key: String,
    /// The master key that wraps it now.
    pub key_id: String,
    /// The wrapped data key.
    pub wrapped_key: Vec<u8>,
}

/// A re-wrapped data key to store, if the row is still under `from_key_id`.
#[derive(Debug, Clone)]
pub struct Rewrapped {
    /// The attachment.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// The master key that wrapped what the row holds now.
    pub from_key_id: String,
    /// The new master key.
    pub key_id: String,
    /// The data key wrapped under it.
    pub wrapped_key: Vec<u8>,
}

/// Most blob names asked about in one statement (SQLite allows 32 766 parameters).
pub const BLOB_KEYS_PER_QUERY: usize = 500;

impl Store {
    /// How many attachments each master key wraps, by key id.
    pub async fn attachment_key_usage(&self) -> StorageResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT key_id, COUNT(*) FROM attachments GROUP BY key_id ORDER BY key_id",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// How many attachments the master key `key_id` wraps.
    pub async fn attachments_under_key(&self, key_id: &str) -> StorageResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE key_id = $1")
                .bind(key_id)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Up to `limit` data keys not wrapped under `active`, in id order after `after`.
    pub async fn wrapped_keys_not_under(
        &self,
        active: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> StorageResult<Vec<WrappedKeyRow>> {
        // The nil UUID sorts first on both backends (16 zero bytes, or uuid order).
        let after = after.unwrap_or(Uuid::nil());
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, WrappedKeyRow>(
                "SELECT id, organization_id, blob_key, key_id, wrapped_key FROM attachments \
                 WHERE key_id <> $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(active)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Stores re-wrapped data keys in one transaction. A row whose key changed meanwhile (or
    /// that is gone) is left alone. Returns how many rows changed.
    pub async fn store_rewrapped(&self, rows: &[Rewrapped]) -> StorageResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        transaction!(self, conn => {
            let mut changed = 0;
            for row in rows {
                changed += sqlx::query(
                    "UPDATE attachments SET key_id = $4, wrapped_key = $5 \
                     WHERE organization_id = $1 AND id = $2 AND key_id = $3",
                )
                .bind(row.organization_id)
                .bind(row.id)
                .bind(&row.from_key_id)
                .bind(&row.key_id)
                .bind(&row.wrapped_key)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            }
            Ok(changed)
        })
    }

    /// Which of `blob_keys` a live attachment still names: one of a board that exists and is
    /// not deleted. A deleted board's files are unreachable, so their blobs count as orphans.
    pub async fn live_blob_keys(&self, blob_keys: &[String]) -> StorageResult<HashSet<String>> {
        let mut live = HashSet::new();
        for batch in blob_keys.chunks(BLOB_KEYS_PER_QUERY) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT a.blob_key FROM attachments a JOIN boards b \
                 ON b.organization_id = a.organization_id AND b.id = a.board_id \
                 WHERE b.deleted_at IS NULL AND a.blob_key IN ({})",
                placeholders.join(", ")
            );
            let found: Vec<String> = on_pool!(self, pool => {
                let mut query = sqlx::query_scalar(&sql);
                for key in batch {
                    query = query.bind(key);
                }
                query.fetch_all(pool).await
            })?;
            live.extend(found);
        }
        Ok(live)
    }
}
