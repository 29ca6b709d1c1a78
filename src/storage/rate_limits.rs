//! Shared rate-limit logs.
//!
//! Each limit keeps, per bucket, a log of the attempts it let through: one row per attempt,
//! holding the moment (unix milliseconds) it stops counting. A bucket has room while fewer than
//! its `max` rows are still counting, so the answer is exact for any span of the window, and the
//! moment a slot frees is read off the log. The log lives in the database, so it survives
//! restarts and every node sees the same one.
//!
//! Taking slots is one transaction that locks each bucket first (Postgres: a transaction-scoped
//! advisory lock; SQLite: the `IMMEDIATE` transaction holds the database's write lock), so
//! concurrent attempts on several nodes cannot both take the last slot, and a refused attempt
//! takes none. Rows that stopped counting are pruned.
//!
//! Marks are the other half: a key remembered until a given moment ("this account signed in from
//! this network"), kept in their own table.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Backend, StorageResult, Store};
use crate::{on_pool, transaction, write_on_pool};

/// One bucket to take a slot in.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    /// The bucket's key.
    pub key: &'a str,
    /// Attempts counted at once.
    pub max: u32,
    /// How long an attempt counts, in milliseconds.
    pub window_ms: i64,
}

/// A bucket without room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullBucket {
    /// Its index among the buckets asked for.
    pub index: usize,
    /// Milliseconds until one of its counted attempts stops counting.
    pub frees_in_ms: i64,
}

/// Advisory-lock class of rate-limit buckets (`pg_advisory_xact_lock(class, key)`), so they
/// cannot collide with locks taken for anything else.
const LOCK_CLASS: i32 = 0x6272_6c69;

impl Store {
    /// Takes one slot in every bucket at `now_ms`, or none: `Err` names the buckets without room.
    /// Returns the ids of the counted attempts, for [`Store::rate_limit_release`].
    pub async fn rate_limit_take(
        &self,
        buckets: &[Bucket<'_>],
        now_ms: i64,
    ) -> StorageResult<Result<Vec<Uuid>, Vec<FullBucket>>> {
        // Locks are taken in the order of their keys, so two takes never wait on each other
        // crosswise (a lock held twice by one transaction is simply held).
        let mut order: Vec<(i32, usize)> =
            buckets.iter().enumerate().map(|(i, b)| (lock_key(b.key), i)).collect();
        order.sort_unstable();
        let lock = self.backend() == Backend::Postgres;
        transaction!(self, conn => {
            let mut full = Vec::new();
            for &(lock_key, index) in &order {
                let bucket = buckets[index];
                if lock {
                    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                        .bind(LOCK_CLASS)
                        .bind(lock_key)
                        .execute(&mut *conn)
                        .await?;
                }
                // The most recent `max` attempts still counting; with fewer there is room,
                // otherwise a slot frees when the oldest of them stops counting.
                let counted: Vec<(i64,)> = sqlx::query_as(
                    "SELECT expires_ms FROM rate_limit_hits WHERE bucket = $1 AND expires_ms > $2 \
                     ORDER BY expires_ms DESC LIMIT $3",
                )
                .bind(bucket.key)
                .bind(now_ms)
                .bind(i64::from(bucket.max))
                .fetch_all(&mut *conn)
                .await?;
                if counted.len() >= bucket.max as usize {
                    let frees_at = counted.last().map_or(now_ms, |(at,)| *at);
                    full.push(FullBucket { index, frees_in_ms: frees_at - now_ms });
                }
            }
            if !full.is_empty() {
                return Ok(Err(full));
            }
            let mut ids = Vec::with_capacity(buckets.len());
            for bucket in buckets {
                let id = super::new_id();
                sqlx::query(
                    "INSERT INTO rate_limit_hits (id, bucket, expires_ms) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(bucket.key)
                .bind(now_ms.saturating_add(bucket.window_ms))
                .execute(&mut *conn)
                .await?;
                ids.push(id);
            }
            Ok(Ok(ids))
        })
    }

    /// Stops counting the attempts `ids` (given back: they turned out not to count).
    pub async fn rate_limit_release(&self, ids: &[Uuid]) -> StorageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        transaction!(self, conn => {
            for id in ids {
                sqlx::query("DELETE FROM rate_limit_hits WHERE id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    }

    /// Forgets every counted attempt of `bucket` (the subject behind it is gone).
    pub async fn rate_limit_forget(&self, bucket: &str) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM rate_limit_hits WHERE bucket = $1")
                .bind(bucket)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Remembers `mark` until `expires_ms` (a later remembering extends it).
    pub async fn rate_limit_mark(&self, mark: &str, expires_ms: i64) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO rate_limit_marks (mark, expires_ms) VALUES ($1, $2) \
                 ON CONFLICT (mark) DO UPDATE SET expires_ms = excluded.expires_ms",
            )
            .bind(mark)
            .bind(expires_ms)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Whether `mark` is remembered at `now_ms`.
    pub async fn rate_limit_marked(&self, mark: &str, now_ms: i64) -> StorageResult<bool> {
        let found: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT expires_ms FROM rate_limit_marks WHERE mark = $1 AND expires_ms > $2",
            )
            .bind(mark)
            .bind(now_ms)
            .fetch_optional(pool)
            .await
        })?;
        Ok(found.is_some())
    }

    /// Removes attempts and marks that stopped counting by `now_ms`; returns how many.
    pub async fn rate_limit_prune(&self, now_ms: i64) -> StorageResult<u64> {
        let mut pruned = 0;
        for table in ["rate_limit_hits", "rate_limit_marks"] {
            let statement = format!("DELETE FROM {table} WHERE expires_ms <= $1");
            pruned += write_on_pool!(self, pool => {
                sqlx::query(&statement)
                    .bind(now_ms)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        Ok(pruned)
    }
}

/// The advisory-lock key of a bucket. Two buckets sharing one only take turns needlessly.
fn lock_key(bucket: &str) -> i32 {
    let digest = Sha256::digest(bucket.as_bytes());
    i32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}
