//! The orphan sweep: deletes blobs that no live attachment or unexpired export names, once they
//! are older than a grace period.
//!
//! Rows go before their blobs (an item's or a comment's by `ON DELETE CASCADE`; a deleted
//! board's count as gone; an export's once it expired, or its row is deleted with its
//! requester), and a crash can fall between a row's deletion and its blob's, or between a
//! blob's sealing and its row's insertion (an upload refused, or cut off). The row's
//! wrapped key is the only way into a blob, so a blob without a row is already unreadable; the
//! sweep removes what is left. The grace period (an hour) keeps it away from uploads and export
//! builds in flight, whose blob exists before their row names it. It runs at start, every
//! `BOARDROOM_ATTACHMENT_SWEEP_INTERVAL_SECS`, and when poked ([`Sweeper::poke`], after a
//! deletion). Only names the vault could have made are considered; anything else in the store is
//! left alone.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{is_blob_key, Vault, VaultError};
use crate::storage::{Store, BLOB_KEYS_PER_QUERY};

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs looked at (names the vault could have made).
    pub seen: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans kept because they are younger than the grace period.
    pub young: u64,
}

/// Runs sweeps, now or in the background.
pub struct Sweeper {
    vault: Arc<Vault>,
    store: Store,
    grace: Duration,
    wake: Notify,
    /// One pass at a time: a poke during a pass waits for it rather than racing it.
    running: tokio::sync::Mutex<()>,
}

impl Sweeper {
    /// A sweeper of `vault`'s blobs against `store`'s rows.
    pub fn new(vault: Arc<Vault>, store: Store, grace: Duration) -> Sweeper {
        Sweeper { vault, store, grace, wake: Notify::new(), running: tokio::sync::Mutex::new(()) }
    }

    /// Asks the background task for a pass soon (after a deletion). Never waits.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// One pass now: lists the store, asks which names live rows hold (in batches), deletes the
    /// orphans older than the grace period.
    pub async fn run_once(&self) -> Result<SweepReport, VaultError> {
        let _one_at_a_time = self.running.lock().await;
        let cutoff = chrono::Duration::from_std(self.grace)
            .ok()
            .and_then(|grace| chrono::Utc::now().checked_sub_signed(grace))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let mut report = SweepReport::default();
        let mut listing = self.vault.store().list(None);
        let mut batch: Vec<(String, bool)> = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| VaultError::Store(e.to_string()))?;
            let Some(name) = meta.location.filename().filter(|n| is_blob_key(n)) else {
                continue;
            };
            // A prefix store lists its own objects only; a name in a subdirectory was not
            // made by the vault.
            if meta.location.as_ref() != name {
                continue;
            }
            report.seen += 1;
            batch.push((name.to_owned(), meta.last_modified < cutoff));
            if batch.len() >= BLOB_KEYS_PER_QUERY {
                self.sweep_batch(std::mem::take(&mut batch), &mut report).await?;
            }
        }
        self.sweep_batch(batch, &mut report).await?;
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                seen = report.seen,
                "swept orphaned attachment blobs"
            );
        }
        Ok(report)
    }

    async fn sweep_batch(
        &self,
        batch: Vec<(String, bool)>,
        report: &mut SweepReport,
    ) -> Result<(), VaultError> {
        if batch.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
        let live = self
            .store
            .live_blob_keys(&names, crate::storage::now())
            .await
            .map_err(|e| VaultError::Store(format!("cannot read the rows of blobs: {e}")))?;
        for (name, old) in batch {
            if live.contains(&name) {
                continue;
            }
            if !old {
                report.young += 1;
                continue;
            }
            self.vault.delete(&name).await?;
            report.deleted += 1;
        }
        Ok(())
    }

    /// Sweeps at once, then every `every` and whenever poked, until the task is aborted.
    pub fn spawn(self: Arc<Self>, every: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = self.wake.notified() => {}
                }
                if let Err(err) = self.run_once().await {
                    tracing::warn!(error = %err, "the attachment sweep failed; retrying later");
                }
            }
        })
    }
}
