//! Scheduled backups in the running server (`BOARDROOM_BACKUP_DIR`): one snapshot every
//! `BOARDROOM_BACKUP_INTERVAL`, counted from the newest complete one in the directory (so a
//! restart neither skips nor repeats one), then the snapshots older than
//! `BOARDROOM_BACKUP_RETENTION_DAYS` pruned, never the newest. A failure is logged at error,
//! counted (`boardroom_backup_failures_total`, [`BackupStatus`]) and retried at the next tick;
//! only a renamed, complete snapshot sets `boardroom_last_backup_success_timestamp_seconds`.
//!
//! Two nodes never back up at once: on Postgres the run holds a session advisory lock and a
//! node that cannot take it skips its turn; SQLite runs on a single node.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use sqlx::Connection;
use tokio::task::JoinHandle;

use super::{BackupError, Manifest, MANIFEST, PARTIAL_PREFIX};
use crate::storage::{Pool, Store};

/// Snapshots the schedule writes are named `backup-<UTC time>`.
pub const SNAPSHOT_PREFIX: &str = "backup-";

/// Advisory-lock class and key of the scheduled backup (`pg_try_advisory_lock(class, key)`).
const LOCK_CLASS: i32 = 0x6272_626b;
const LOCK_KEY: i32 = 1;

/// What the schedule has done, for tests and `/metrics` alike.
#[derive(Debug, Default)]
pub struct BackupStatus {
    successes: AtomicU64,
    failures: AtomicU64,
    /// Unix seconds of the last success; 0 before the first.
    last_success: AtomicI64,
}

impl BackupStatus {
    /// Snapshots completed by this process.
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Failed runs of this process.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// When this process last completed a snapshot.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        match self.last_success.load(Ordering::Relaxed) {
            0 => None,
            secs => DateTime::from_timestamp(secs, 0),
        }
    }

    fn succeeded(&self, at: DateTime<Utc>) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.last_success.store(at.timestamp(), Ordering::Relaxed);
        crate::metrics::backup_succeeded(at.timestamp());
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        crate::metrics::backup_failed();
    }
}

/// What the schedule needs.
pub struct Schedule {
    /// The database.
    pub store: Store,
    /// Its URL (for `pg_dump`).
    pub database_url: String,
    /// The blob store.
    pub blobs: Arc<dyn ObjectStore>,
    /// Where snapshots go.
    pub dir: PathBuf,
    /// How often.
    pub interval: Duration,
    /// How long complete snapshots are kept.
    pub retention: chrono::Duration,
    /// Where outcomes are recorded.
    pub status: Arc<BackupStatus>,
}

/// What one run did.
#[derive(Debug, PartialEq, Eq)]
pub enum Run {
    /// A snapshot was written; these were pruned.
    Done {
        /// The new snapshot.
        snapshot: PathBuf,
        /// Snapshots deleted by retention.
        pruned: Vec<PathBuf>,
    },
    /// Another node holds the lock, or wrote a snapshot less than an interval ago.
    Skipped,
}

impl Schedule {
    /// Runs the schedule in the background until aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.until_due()).await;
                match self.run_once().await {
                    Ok(Run::Done { snapshot, pruned }) => tracing::info!(
                        snapshot = %snapshot.display(),
                        pruned = pruned.len(),
                        "backup written"
                    ),
                    // Another node's turn: ours comes an interval later.
                    Ok(Run::Skipped) => tokio::time::sleep(self.interval).await,
                    Err(err) => {
                        tracing::error!(error = %err, dir = %self.dir.display(), "backup failed");
                        self.status.failed();
                        // Retried at the next tick, not at once: a full disk stays full.
                        tokio::time::sleep(self.interval).await;
                    }
                }
            }
        })
    }

    /// How long until the next snapshot is due: an interval after the newest complete one.
    fn until_due(&self) -> Duration {
        let newest = complete_snapshots(&self.dir).into_iter().map(|(_, at)| at).max();
        match newest {
            None => Duration::ZERO,
            Some(at) => {
                let due = at + chrono::Duration::from_std(self.interval).unwrap_or_default();
                (due - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            }
        }
    }

    /// One run now: under the lock, unless a snapshot less than an interval old exists,
    /// writes one and prunes.
    pub async fn run_once(&self) -> Result<Run, BackupError> {
        match self.store.pool() {
            Pool::Sqlite(_) => self.locked_run().await,
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                    .bind(LOCK_CLASS)
                    .bind(LOCK_KEY)
                    .fetch_one(&mut *conn)
                    .await?;
                if !locked {
                    return Ok(Run::Skipped);
                }
                let run = self.locked_run().await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                    .bind(LOCK_CLASS)
                    .bind(LOCK_KEY)
                    .execute(&mut *conn)
                    .await;
                if unlocked.is_err() {
                    // A connection that may still hold the lock must not go back to the pool.
                    let _ = conn.detach().close().await;
                }
                run
            }
        }
    }

    async fn locked_run(&self) -> Result<Run, BackupError> {
        if !self.until_due().is_zero() {
            return Ok(Run::Skipped);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| BackupError::io(self.dir.display(), e))?;
        remove_partials(&self.dir);
        let name = format!("{SNAPSHOT_PREFIX}{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let snapshot = self.dir.join(name);
        let manifest =
            super::create(&self.store, &self.database_url, &self.blobs, &snapshot).await?;
        self.status.succeeded(manifest.created_at);
        let pruned = prune(&self.dir, Utc::now(), self.retention);
        Ok(Run::Done { snapshot, pruned })
    }
}

/// The complete snapshots in `dir` (a readable manifest) and when each was taken.
pub fn complete_snapshots(dir: &Path) -> Vec<(PathBuf, DateTime<Utc>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(SNAPSHOT_PREFIX)))
        .filter_map(|e| {
            let raw = std::fs::read(e.path().join(MANIFEST)).ok()?;
            let manifest: Manifest = serde_json::from_slice(&raw).ok()?;
            Some((e.path(), manifest.created_at))
        })
        .collect()
}

/// Which of `snapshots` retention deletes: those taken before `now - retention`, but never
/// the newest.
pub fn expired(
    snapshots: &[(PathBuf, DateTime<Utc>)],
    now: DateTime<Utc>,
    retention: chrono::Duration,
) -> Vec<PathBuf> {
    let Some(newest) = snapshots.iter().map(|(_, at)| *at).max() else { return Vec::new() };
    let cutoff = now - retention;
    snapshots
        .iter()
        .filter(|(_, at)| *at < cutoff && *at != newest)
        .map(|(path, _)| path.clone())
        .collect()
}

/// Deletes the expired snapshots of `dir`; answers those deleted.
fn prune(dir: &Path, now: DateTime<Utc>, retention: chrono::Duration) -> Vec<PathBuf> {
    let mut pruned = Vec::new();
    for path in expired(&complete_snapshots(dir), now, retention) {
        // The manifest first: a half-deleted snapshot is then no longer taken for complete.
        let removed =
            std::fs::remove_file(path.join(MANIFEST)).and_then(|()| std::fs::remove_dir_all(&path));
        match removed {
            Ok(()) => pruned.push(path),
            Err(err) => {
                tracing::warn!(error = %err, snapshot = %path.display(), "pruning failed")
            }
        }
    }
    pruned
}

/// Deletes snapshots a crashed run left half-written (run under the lock, so never another
/// node's in progress).
fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(PARTIAL_PREFIX)) {
            if let Err(err) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %err, path = %entry.path().display(), "cannot remove");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days_ago: i64, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono::Duration::days(days_ago)
    }

    #[test]
    fn retention_deletes_the_old_but_never_the_newest() {
        let now = Utc::now();
        let thirty = chrono::Duration::days(30);
        let snaps: Vec<(PathBuf, DateTime<Utc>)> = [(1, "a"), (29, "b"), (31, "c"), (90, "d")]
            .iter()
            .map(|(days, name)| (PathBuf::from(name), at(*days, now)))
            .collect();
        assert_eq!(expired(&snaps, now, thirty), [PathBuf::from("c"), PathBuf::from("d")]);
        // All older than the retention: the newest stays all the same.
        let old: Vec<_> = snaps.iter().filter(|(p, _)| p.as_os_str() > "b").cloned().collect();
        assert_eq!(expired(&old, now, thirty), [PathBuf::from("d")]);
        assert!(expired(&[], now, thirty).is_empty());
    }
}
