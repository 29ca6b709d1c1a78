//! Exports: what an export holds and where it is kept.
//!
//! - [`board`]: a board as CSV for people.
//! - [`personal`]: a person's data export (GDPR access and portability) as a zip of JSON files.
//! - [`org`]: a whole organization's export, for its admins, as a zip of JSON files.
//! - [`archive`]: writing an export's zip as it is collected, a file at a time.
//! - [`Exporter`]: builds personal and organization exports in the background (one pending per
//!   person, and one per organization, enforced by the `exports` table; at most
//!   [`BUILDS_AT_ONCE`] building at a time on this node), seals each zip into the attachment
//!   vault as it is written (encrypted under a data key of its own, wrapped by the master
//!   keyring, in the same blob store; `boardroom keys rotate` re-wraps it like an attachment's),
//!   serves it decrypted as it streams, and deletes it when it expires
//!   (`BOARDROOM_EXPORT_TTL_SECS`, 7 days; the server's maintenance tick, at start and every
//!   5 minutes) or when the person who asked for it is erased: [`Exporter::delete`] is the one
//!   way an export goes, blob first, then row.

pub mod archive;
pub mod board;
pub mod org;
pub mod personal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boardroom_actors::boards::Boards;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

use crate::attachments::{SealedBlob, Vault, VaultError};
use crate::storage::{now, ExportRow, StorageResult, Store};

/// Most exports built at once on one node: a build reads much and compresses, so more would
/// only take the database and CPU from requests.
pub const BUILDS_AT_ONCE: usize = 2;

/// Zip pieces waiting to be sealed: the zip writer runs at most this far ahead of the vault.
const PIECES_IN_FLIGHT: usize = 2;

/// Builds, keeps, serves and deletes exports.
#[derive(Clone)]
pub struct Exporter {
    store: Store,
    vault: Arc<Vault>,
    boards: Arc<Boards>,
    /// Where releases before the vault kept plain zips; only ever deleted from now.
    legacy_dir: PathBuf,
    ttl: chrono::Duration,
    builds: Arc<Semaphore>,
}

impl Exporter {
    /// An exporter sealing its zips into `vault`, each kept for `ttl_secs`; organization exports
    /// read boards through `boards`.
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        boards: Arc<Boards>,
        data_dir: &Path,
        ttl_secs: u64,
    ) -> Self {
        // The setting is bounded (`config::MAX_EXPORT_TTL_SECS`), so this never reaches the
        // fallback, and adding it to now cannot overflow.
        let ttl = i64::try_from(ttl_secs.min(crate::config::MAX_EXPORT_TTL_SECS))
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .unwrap_or_else(|| chrono::Duration::days(7));
        Exporter {
            store,
            vault,
            boards,
            legacy_dir: data_dir.join("exports"),
            ttl,
            builds: Arc::new(Semaphore::new(BUILDS_AT_ONCE)),
        }
    }

    /// Records a pending personal export of `user_id` and starts building it. A person with an
    /// export still pending is refused ([`crate::storage::StorageError::Unique`]).
    pub async fn request_personal(&self, user_id: Uuid) -> StorageResult<ExportRow> {
        self.request(user_id, None).await
    }

    /// Records a pending export of the organization `org`, asked for by its admin `admin`, and
    /// starts building it. An organization with an export still pending is refused
    /// ([`crate::storage::StorageError::Unique`]). The caller has checked the role.
    pub async fn request_org(&self, org: Uuid, admin: Uuid) -> StorageResult<ExportRow> {
        self.request(admin, Some(org)).await
    }

    async fn request(&self, user_id: Uuid, org: Option<Uuid>) -> StorageResult<ExportRow> {
        let row = self.store.create_export(Uuid::now_v7(), user_id, org, now() + self.ttl).await?;
        let this = self.clone();
        let pending = row.clone();
        tokio::spawn(async move { this.build(pending).await });
        Ok(row)
    }

    async fn build(&self, row: ExportRow) {
        let Ok(_permit) = self.builds.acquire().await else { return };
        let sealed = match self.seal(&row).await {
            Ok(sealed) => Some(sealed),
            Err(err) => {
                tracing::error!(export = %row.id, error = %err, "building an export failed");
                None
            }
        };
        let kept = match self.store.finish_export(row.id, sealed.as_ref()).await {
            Ok(kept) => kept,
            Err(err) => {
                // The row stays pending; the next start marks it failed.
                tracing::error!(export = %row.id, error = %err, "recording a finished export failed");
                false
            }
        };
        if let (false, Some(sealed)) = (kept, &sealed) {
            // Nothing names the blob (the row went meanwhile, with its requester): delete it
            // now rather than leave it to the orphan sweep.
            if let Err(err) = self.vault.delete(&sealed.blob_key).await {
                tracing::warn!(export = %row.id, error = %err, "deleting an unused export blob failed");
            }
        }
    }

    /// Collects the export's files, zips them and seals the zip, all at once and a file at a
    /// time. Fails, leaving no blob, if any of the three does.
    async fn seal(&self, row: &ExportRow) -> anyhow::Result<SealedBlob> {
        let (files, incoming) = archive::channel();
        let (pieces, zipped) = mpsc::channel::<Bytes>(PIECES_IN_FLIGHT);
        // Compressing is blocking work: off the async runtime.
        let zipper = tokio::task::spawn_blocking(move || archive::write(incoming, pieces));
        let body = futures::stream::unfold(zipped, |mut zipped| async move {
            zipped.recv().await.map(|piece| (Ok::<_, std::convert::Infallible>(piece), zipped))
        })
        .boxed();
        let collect = async move {
            match row.organization_id {
                Some(org) => {
                    org::collect(&self.store, &self.boards, org, row.user_id, &files).await
                }
                None => personal::collect(&self.store, row.user_id, &files).await,
            }
            // Dropping `files` here ends the zip.
        };
        let (collected, sealed) = tokio::join!(collect, self.vault.seal(body, u64::MAX));
        let zipped = zipper.await.map_err(anyhow::Error::from).and_then(|zipped| zipped);
        // A zip that ended early (its collector or writer failed) would still seal: it is
        // judged by all three, the sealing's own failure being the cause of the others'.
        let failure = match (&sealed, zipped, collected) {
            (Ok(_), Ok(()), Ok(())) => None,
            (Err(err), _, _) => Some(anyhow::anyhow!("sealing: {err}")),
            (Ok(_), Err(err), _) => Some(err.context("zipping")),
            (Ok(_), Ok(()), Err(err)) => Some(err.context("collecting")),
        };
        match (sealed, failure) {
            (Ok(sealed), None) => Ok(sealed),
            (sealed, Some(failure)) => {
                if let Ok(sealed) = sealed {
                    self.vault.delete(&sealed.blob_key).await?;
                }
                Err(failure)
            }
            (Err(err), None) => Err(err.into()),
        }
    }

    /// A ready export's zip, decrypted as it streams (see [`Vault::open`]).
    pub async fn open(
        &self,
        row: &ExportRow,
    ) -> Result<BoxStream<'static, Result<Bytes, VaultError>>, VaultError> {
        match (&row.blob_key, &row.key_id, &row.wrapped_key) {
            (Some(blob_key), Some(key_id), Some(wrapped_key)) => {
                self.vault.open(blob_key, key_id, wrapped_key).await
            }
            _ => Err(VaultError::NotFound),
        }
    }

    /// Marks exports left pending by a previous process failed (their builds died with it).
    pub async fn recover(&self) -> StorageResult<u64> {
        self.store.fail_pending_exports().await
    }

    /// Deletes an export: its blob (or a plain file from before the vault), then its row, so a
    /// failure leaves the row for another try. The one way an export goes: expiry
    /// ([`Self::sweep`]) and the erasure of whoever asked for it ([`Self::delete_all_of`]) both
    /// come here. A pending export's build, finding its row gone, deletes what it sealed.
    pub async fn delete(&self, row: &ExportRow) -> anyhow::Result<()> {
        if let Some(blob_key) = &row.blob_key {
            self.vault.delete(blob_key).await?;
        }
        if let Some(name) = &row.file_name {
            // The name was the server's own (`{id}.zip`); anything else is not a file of ours.
            if Path::new(name).file_name().is_some_and(|n| n == name.as_str()) {
                match tokio::fs::remove_file(self.legacy_dir.join(name)).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        self.store.delete_export(row.id).await?;
        Ok(())
    }

    /// Deletes every export `user_id` asked for, personal and organization ones, in any state
    /// (account erasure); answers how many.
    pub async fn delete_all_of(&self, user_id: Uuid) -> anyhow::Result<usize> {
        let rows = self.store.exports_by(user_id).await?;
        for row in &rows {
            self.delete(row).await?;
        }
        Ok(rows.len())
    }

    /// Deletes expired exports whose build has finished; returns how many went. One that cannot
    /// be deleted now is kept for the next sweep.
    pub async fn sweep(&self) -> StorageResult<usize> {
        let expired = self.store.expired_exports(now()).await?;
        let mut deleted = 0;
        for row in &expired {
            match self.delete(row).await {
                Ok(()) => deleted += 1,
                Err(err) => {
                    tracing::warn!(export = %row.id, error = %err, "deleting an export failed");
                }
            }
        }
        Ok(deleted)
    }
}
