//! Shared rate-limit counters.
//!
//! Counters live in the database so they survive restarts and hold across nodes. Each bucket
//! counts hits in fixed windows; one atomic upsert per hit, so concurrent nodes never lose a
//! count. The caller combines the current and previous windows into a sliding estimate.

use super::{StorageResult, Store};
use crate::{on_pool, write_on_pool};

/// Hits of a bucket in the current and the previous window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCounts {
    /// Start of the current window, in unix seconds.
    pub window_start: i64,
    /// Hits in the current window, this one included.
    pub current: i64,
    /// Hits in the window before it.
    pub previous: i64,
}

impl Store {
    /// Records one hit on `bucket` at unix time `now` with windows of `window_secs`.
    pub async fn rate_limit_hit(
        &self,
        bucket: &str,
        now: i64,
        window_secs: i64,
    ) -> StorageResult<WindowCounts> {
        let window_start = now - now.rem_euclid(window_secs);
        let (current,): (i64,) = write_on_pool!(self, pool => {
            sqlx::query_as(
                "INSERT INTO rate_limit_windows (bucket, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (bucket, window_start) \
                 DO UPDATE SET hits = rate_limit_windows.hits + 1 RETURNING hits",
            )
            .bind(bucket)
            .bind(window_start)
            .fetch_one(pool)
            .await
        })?;
        let previous: Option<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT hits FROM rate_limit_windows WHERE bucket = $1 AND window_start = $2",
            )
            .bind(bucket)
            .bind(window_start - window_secs)
            .fetch_optional(pool)
            .await
        })?;
        Ok(WindowCounts { window_start, current, previous: previous.map_or(0, |(h,)| h) })
    }

    /// Removes windows that started before `before` (unix seconds).
    pub async fn rate_limit_prune(&self, before: i64) -> StorageResult<u64> {
        Ok(write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM rate_limit_windows WHERE window_start < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }
}
