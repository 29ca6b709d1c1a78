//! What the vault's maintenance reads and writes in the rows that hold sealed blobs
//! (`attachments`, and `exports` since exports are sealed too): key ids in use, re-wrapped data
//! keys (`boardroom keys rotate`), and which blob names rows still hold (the sweep).
//!
//! These run over every organization at once, deliberately: they are platform maintenance, not
//! a tenant's request, and they touch only key ids, wrapped keys and blob names, never a file's
//! name, type or content. Each update of an attachment still binds the row's own
//! `organization_id`; an export row is keyed by its id alone (a personal export has no
//! organization).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StorageResult, Store};
use crate::{on_pool, transaction};

/// The kinds of rows that hold a sealed blob's wrapped data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// `attachments`.
    Attachments,
    /// `exports` (once built).
    Exports,
}

impl Sealed {
    /// Every kind, in the order rotation walks them.
    pub const ALL: [Sealed; 2] = [Sealed::Attachments, Sealed::Exports];

    /// The table.
    pub const fn table(self) -> &'static str {
        match self {
            Sealed::Attachments => "attachments",
            Sealed::Exports => "exports",
        }
    }

    /// What one row is, for messages and logs.
    pub const fn noun(self) -> &'static str {
        match self {
            Sealed::Attachments => "attachment",
            Sealed::Exports => "export",
        }
    }
}

/// A data key to re-wrap: the row, its blob, and the key as wrapped now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WrappedKeyRow {
    /// The attachment or export.
    pub id: Uuid,
    /// Its organization (`None` for a personal export).
    pub organization_id: Option<Uuid>,
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
    /// The attachment or export.
    pub id: Uuid,
    /// Its organization (`None` for a personal export).
    pub organization_id: Option<Uuid>,
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
    /// How many rows (attachments and exports) each master key wraps, by key id.
    pub async fn sealed_key_usage(&self) -> StorageResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT key_id, COUNT(*) FROM (SELECT key_id FROM attachments UNION ALL \
                 SELECT key_id FROM exports WHERE key_id IS NOT NULL) AS sealed \
                 GROUP BY key_id ORDER BY key_id",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// How many rows of `kind` the master key `key_id` wraps.
    pub async fn sealed_under_key(&self, kind: Sealed, key_id: &str) -> StorageResult<i64> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE key_id = $1", kind.table());
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(&sql).bind(key_id).fetch_one(pool).await
        })?)
    }

    /// Up to `limit` data keys of `kind` not wrapped under `active`, in id order after `after`.
    pub async fn wrapped_keys_not_under(
        &self,
        kind: Sealed,
        active: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> StorageResult<Vec<WrappedKeyRow>> {
        // The nil UUID sorts first on both backends (16 zero bytes, or uuid order).
        let after = after.unwrap_or(Uuid::nil());
        // An export not built yet has no key (NULL is never `<>` anything, so it is left out).
        let sql = format!(
            "SELECT id, organization_id, blob_key, key_id, wrapped_key FROM {} \
             WHERE key_id <> $1 AND id > $2 ORDER BY id LIMIT $3",
            kind.table()
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, WrappedKeyRow>(&sql)
                .bind(active)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Stores re-wrapped data keys of `kind` in one transaction. A row whose key changed
    /// meanwhile (or that is gone) is left alone. Returns how many rows changed.
    pub async fn store_rewrapped(&self, kind: Sealed, rows: &[Rewrapped]) -> StorageResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let sql = match kind {
            Sealed::Attachments => {
                "UPDATE attachments SET key_id = $3, wrapped_key = $4 \
                 WHERE id = $1 AND key_id = $2 AND organization_id = $5"
            }
            Sealed::Exports => {
                "UPDATE exports SET key_id = $3, wrapped_key = $4 WHERE id = $1 AND key_id = $2"
            }
        };
        transaction!(self, conn => {
            let mut changed = 0;
            for row in rows {
                let query = sqlx::query(sql)
                    .bind(row.id)
                    .bind(&row.from_key_id)
                    .bind(&row.key_id)
                    .bind(&row.wrapped_key);
                let query = match kind {
                    Sealed::Attachments => query.bind(row.organization_id),
                    Sealed::Exports => query,
                };
                changed += query.execute(&mut *conn).await?.rows_affected();
            }
            Ok(changed)
        })
    }

    /// Which of `blob_keys` a live row still names: an attachment of a board that exists and is
    /// not deleted, or an export that has not expired at `at`. A deleted board's files and an
    /// expired export are unreachable, so their blobs count as orphans.
    pub async fn live_blob_keys(
        &self,
        blob_keys: &[String],
        at: DateTime<Utc>,
    ) -> StorageResult<HashSet<String>> {
        let mut live = HashSet::new();
        for batch in blob_keys.chunks(BLOB_KEYS_PER_QUERY) {
            let placeholders: Vec<String> =
                (2..=batch.len() + 1).map(|n| format!("${n}")).collect();
            let names = placeholders.join(", ");
            let sql = format!(
                "SELECT blob_key FROM exports WHERE expires_at > $1 AND blob_key IN ({names}) \
                 UNION ALL SELECT a.blob_key FROM attachments a JOIN boards b \
                 ON b.organization_id = a.organization_id AND b.id = a.board_id \
                 WHERE b.deleted_at IS NULL AND a.blob_key IN ({names})"
            );
            let found: Vec<String> = on_pool!(self, pool => {
                let mut query = sqlx::query_scalar(&sql).bind(at);
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
