//! Rate limits on attempts (logins, registrations, sign-in starts), exact and shared by every
//! node through the database.
//!
//! A [`Limit`] allows at most `max` attempts in any span of its `window`: the database keeps a
//! log of the attempts let through ([`Store::rate_limit_take`]), so no pattern of timing gets
//! more (the sliding-window estimate this replaces let 9 logins through in 721 s), and a refusal
//! says exactly when the oldest counted attempt leaves the window. A refused attempt is not
//! counted: it was not let through, so hammering neither extends a lockout nor shortens it.
//!
//! An attempt takes its slots up front, before the work it guards, so concurrent attempts cannot
//! overrun a limit; an attempt that turns out not to count (a correct password, say) gives its
//! slots back ([`Limiter::give_back`]). Which attempts count is the caller's rule.
//!
//! Subjects hold emails and IP networks; the database keeps only a digest of them.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::storage::{Bucket, StorageResult, Store};

/// A limit: at most `max` attempts in any span of `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Name used in the bucket key; limits with different names never share a count.
    pub name: &'static str,
    /// Attempts allowed in any span of `window`.
    pub max: u32,
    /// The span.
    pub window: Duration,
}

/// Unix time in milliseconds. Production reads the system clock; tests inject their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Slots taken by one attempt. Keep them (the attempt counts) or [`Limiter::give_back`] them.
#[derive(Debug, Default)]
#[must_use = "an attempt's slots are kept unless given back"]
pub struct Taken {
    ids: Vec<Uuid>,
}

impl Taken {
    /// Keeps the slots: the attempt counts.
    pub fn keep(self) {}
}

/// An attempt refused because a limit has no room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until every refusing limit has room again (at least 1, at most the longest
    /// window among them), rounded up: retrying then is not refused by these attempts.
    pub retry_after_secs: u64,
    /// Indexes (among the limits asked for) of the limits without room.
    pub full: Vec<usize>,
    /// The name of the first limit without room (the metrics' `limit` label).
    pub limit: &'static str,
}

impl Refused {
    /// Whether the limit at `index` is the only one without room.
    pub fn only(&self, index: usize) -> bool {
        self.full == [index]
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        crate::metrics::rate_limited(crate::metrics::Limit::Attempts(refused.limit));
        ApiError::rate_limited(refused.retry_after_secs)
    }
}

/// Takes and gives back slots of limits, and remembers marks. One per server.
#[derive(Clone)]
pub struct Limiter {
    store: Store,
    clock: Clock,
}

impl Limiter {
    /// A limiter on the system clock.
    pub fn new(store: Store) -> Self {
        Self::with_clock(store, Arc::new(|| chrono::Utc::now().timestamp_millis()))
    }

    /// A limiter reading the time from `clock`.
    pub fn with_clock(store: Store, clock: Clock) -> Self {
        Limiter { store, clock }
    }

    /// Takes a slot in each `(limit, subject)` for one attempt, or none when any has no room.
    pub async fn take(&self, limits: &[(Limit, &str)]) -> StorageResult<Result<Taken, Refused>> {
        let keys: Vec<String> =
            limits.iter().map(|(limit, subject)| key(limit.name, subject)).collect();
        let buckets: Vec<Bucket<'_>> = limits
            .iter()
            .zip(&keys)
            .map(|((limit, _), key)| Bucket {
                key,
                max: limit.max,
                window_ms: i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX),
            })
            .collect();
        let now = (self.clock)();
        Ok(match self.store.rate_limit_take(&buckets, now).await? {
            Ok(ids) => Ok(Taken { ids }),
            Err(full) => {
                let wait_ms = full.iter().map(|f| f.frees_in_ms).max().unwrap_or(0);
                let wait_ms = u64::try_from(wait_ms).unwrap_or(0);
                let first = full.first().and_then(|f| limits.get(f.index));
                Err(Refused {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1),
                    full: full.iter().map(|f| f.index).collect(),
                    limit: first.map_or("unknown", |(limit, _)| limit.name),
                })
            }
        })
    }

    /// Gives an attempt's slots back: it does not count.
    pub async fn give_back(&self, taken: Taken) -> StorageResult<()> {
        self.store.rate_limit_release(&taken.ids).await
    }

    /// Remembers `subject` under `name` for `ttl` from now (a later call extends it).
    pub async fn mark(&self, name: &str, subject: &str, ttl: Duration) -> StorageResult<()> {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let until = (self.clock)().saturating_add(ttl);
        self.store.rate_limit_mark(&key(name, subject), until).await
    }

    /// Whether `subject` is remembered under `name`.
    pub async fn is_marked(&self, name: &str, subject: &str) -> StorageResult<bool> {
        self.store.rate_limit_marked(&key(name, subject), (self.clock)()).await
    }

    /// Forgets the attempts counted against `subject` under `name` (an erased account's).
    pub async fn forget(&self, name: &str, subject: &str) -> StorageResult<()> {
        self.store.rate_limit_forget(&key(name, subject)).await
    }

    /// Forgets attempts and marks that no longer count; run periodically.
    pub async fn prune(&self) -> StorageResult<u64> {
        self.store.rate_limit_prune((self.clock)()).await
    }
}

/// The stored key of `subject` under `name`.
fn key(name: &str, subject: &str) -> String {
    let digest = Sha256::digest(subject.as_bytes());
    format!("{name}:{}", hex::encode(&digest[..16]))
}
