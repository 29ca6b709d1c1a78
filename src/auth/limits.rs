//! Login and registration limits, shared by every node through the database.
//!
//! Each limit is a sliding-window estimate over two fixed windows: the hits of the current window
//! plus the previous window's hits weighted by how much of it still overlaps the sliding window.
//! Every attempt counts, the refused ones included, so hammering does not shorten a lockout.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::storage::{StorageResult, Store, WindowCounts};

/// A limit: at most `max` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Name used in the bucket key.
    pub name: &'static str,
    /// Hits allowed per window.
    pub max: u32,
    /// The window.
    pub window: Duration,
}

/// Counts a hit against `limit` for `subject`; `Err(retry_after_secs)` when over.
pub async fn hit(store: &Store, limit: Limit, subject: &str) -> StorageResult<Result<(), u64>> {
    // Subjects hold emails and IPs; the table keeps only a digest of them.
    let digest = Sha256::digest(subject.as_bytes());
    let bucket = format!("{}:{}", limit.name, hex::encode(&digest[..16]));
    let now = chrono::Utc::now().timestamp();
    let window = limit.window.as_secs().max(1) as i64;
    let counts = store.rate_limit_hit(&bucket, now, window).await?;
    Ok(verdict(counts, now, window, i64::from(limit.max)))
}

fn verdict(counts: WindowCounts, now: i64, window: i64, max: i64) -> Result<(), u64> {
    let elapsed = (now - counts.window_start) as f64;
    let overlap = 1.0 - elapsed / window as f64;
    let estimate = counts.previous as f64 * overlap + counts.current as f64;
    if estimate <= max as f64 {
        return Ok(());
    }
    // In the next window this one becomes "previous": one more hit fits once
    // current × (1 − e/window) + 1 ≤ max.
    let until_window_end = window - (now - counts.window_start);
    let into_next = if counts.current > 0 {
        let fraction = (1.0 - (max - 1) as f64 / counts.current as f64).max(0.0);
        (fraction * window as f64).ceil() as i64
    } else {
        0
    };
    Err((until_window_end + into_next).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_hit_in_a_window_is_refused() {
        let window = 900;
        for current in 1..=5 {
            let counts = WindowCounts { window_start: 0, current, previous: 0 };
            assert_eq!(verdict(counts, 10, window, 5), Ok(()));
        }
        let counts = WindowCounts { window_start: 0, current: 6, previous: 0 };
        let retry = verdict(counts, 10, window, 5).unwrap_err();
        assert!(retry > 890 && retry <= 900 + 900, "{retry}");
    }

    #[test]
    fn previous_window_still_weighs_early_in_the_next() {
        let counts = WindowCounts { window_start: 900, current: 1, previous: 6 };
        // 10 s into the new window, nearly all of the previous window still overlaps.
        assert!(verdict(counts, 910, 900, 5).is_err());
        // Near its end, the previous window barely counts.
        assert_eq!(verdict(counts, 1790, 900, 5), Ok(()));
    }
}
