//! Exports: what an export holds and where it is kept.
//!
//! - [`board`]: a board as CSV for people.
//! - [`personal`]: a person's data export (GDPR access and portability) as a zip of JSON files.
//! - [`Exporter`]: builds personal exports in the background (one pending per person, enforced
//!   by the `exports` table; at most [`BUILDS_AT_ONCE`] building at a time on this node), keeps
//!   each zip under `<data dir>/exports/` (mode 0600, directory 0700) until it expires
//!   (`BOARDROOM_EXPORT_TTL_SECS`, 7 days), and deletes expired ones (the server's maintenance
//!   tick, at start and every 5 minutes).

pub mod board;
pub mod personal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::storage::{now, ExportRow, StorageResult, Store};

/// Most exports built at once on one node: a build reads much and compresses, so more would
/// only take the database and CPU from requests.
pub const BUILDS_AT_ONCE: usize = 2;

/// Builds, keeps and deletes exports.
#[derive(Clone)]
pub struct Exporter {
    store: Store,
    dir: PathBuf,
    ttl: chrono::Duration,
    builds: Arc<Semaphore>,
}

impl Exporter {
    /// An exporter keeping its files under `<data_dir>/exports/`, each for `ttl_secs`.
    pub fn new(store: Store, data_dir: &Path, ttl_secs: u64) -> Self {
        // The setting is bounded (`config::MAX_EXPORT_TTL_SECS`), so this never reaches the
        // fallback, and adding it to now cannot overflow.
        let ttl = i64::try_from(ttl_secs.min(crate::config::MAX_EXPORT_TTL_SECS))
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .unwrap_or_else(|| chrono::Duration::days(7));
        Exporter {
            store,
            dir: data_dir.join("exports"),
            ttl,
            builds: Arc::new(Semaphore::new(BUILDS_AT_ONCE)),
        }
    }

    /// Records a pending personal export of `user_id` and starts building it. A person with an
    /// export still pending is refused ([`crate::storage::StorageError::Unique`]).
    pub async fn request_personal(&self, user_id: Uuid) -> StorageResult<ExportRow> {
        let row = self.store.create_export(Uuid::now_v7(), user_id, now() + self.ttl).await?;
        let this = self.clone();
        let id = row.id;
        tokio::spawn(async move { this.build_personal(id, user_id).await });
        Ok(row)
    }

    async fn build_personal(&self, id: Uuid, user_id: Uuid) {
        let Ok(_permit) = self.builds.acquire().await else { return };
        let file = match self.write_personal(id, user_id).await {
            Ok(file) => Some(file),
            Err(err) => {
                tracing::error!(export = %id, error = %err, "building a personal export failed");
                None
            }
        };
        let finished =
            self.store.finish_export(id, file.as_ref().map(|(name, size)| (name.as_str(), *size)));
        if let Err(err) = finished.await {
            tracing::error!(export = %id, error = %err, "recording a finished export failed");
        }
    }

    async fn write_personal(&self, id: Uuid, user_id: Uuid) -> anyhow::Result<(String, i64)> {
        let files = personal::collect(&self.store, user_id).await?;
        let name = format!("{id}.zip");
        let path = self.dir.join(&name);
        let dir = self.dir.clone();
        // Compressing and writing are blocking work: off the async runtime.
        let size = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let zip = personal::zip(&files)?;
            write_private(&dir, &path, &zip)?;
            Ok(i64::try_from(zip.len())?)
        })
        .await??;
        Ok((name, size))
    }

    /// The bytes of a ready export.
    pub async fn read(&self, row: &ExportRow) -> anyhow::Result<Vec<u8>> {
        let name = row.file_name.as_deref().ok_or_else(|| anyhow::anyhow!("export not ready"))?;
        Ok(tokio::fs::read(self.dir.join(name)).await?)
    }

    /// Marks exports left pending by a previous process failed (their builds died with it).
    pub async fn recover(&self) -> StorageResult<u64> {
        self.store.fail_pending_exports().await
    }

    /// Deletes expired exports, files first; returns how many rows went.
    pub async fn sweep(&self) -> StorageResult<usize> {
        let expired = self.store.expired_exports(now()).await?;
        for row in &expired {
            if let Some(name) = &row.file_name {
                match tokio::fs::remove_file(self.dir.join(name)).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        // Keep the row, so the next sweep tries the file again.
                        tracing::warn!(export = %row.id, error = %err, "deleting an export failed");
                        continue;
                    }
                }
            }
            self.store.delete_export(row.id).await?;
        }
        Ok(expired.len())
    }
}

/// Writes `bytes` to `path` readable by this user only, in a directory only this user enters.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
