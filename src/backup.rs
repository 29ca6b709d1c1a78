//! Backups: a consistent snapshot of the database and the attachment blobs, taken while the
//! server keeps serving (`boardroom backup --out DIR`, and on a schedule with
//! `BOARDROOM_BACKUP_DIR`), and the way back from one ([`restore`]).
//!
//! A snapshot is a directory: the database in its backend's own format (SQLite: `VACUUM INTO`;
//! Postgres: `pg_dump -Fc` of an exported snapshot, see [`database`]), `blobs/<name>` for every
//! blob a row of that snapshot names (still sealed: the wrapped data keys are in the database,
//! the master keys are not), and `manifest.json` (what it is and the size and SHA-256 of every
//! file) with `manifest.json.sha256` beside it. It is written under a hidden `.partial-` name,
//! fsynced, and renamed into place last, so a directory with a manifest is complete.
//!
//! No secret is ever written: the master keys, the JWT secret and the audit key are kept apart
//! from the backups ([`SECRETS_NOTE`]), so a stolen backup opens no attachment and forges no
//! session or audit seal.

pub mod database;
pub mod restore;
pub mod schedule;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{Backend, Store};

/// The layout of snapshots this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a snapshot.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's own SHA-256 (hex), checked before the manifest is believed.
pub const MANIFEST_SUM: &str = "manifest.json.sha256";
/// The directory inside a snapshot that holds the blobs.
pub const BLOBS_DIR: &str = "blobs";

/// What every backup command says about the secrets it leaves out.
pub const SECRETS_NOTE: &str = "this snapshot holds no secret: keep BOARDROOM_MASTER_KEY (or \
    <data dir>/master-key; without it no attachment can be opened), BOARDROOM_JWT_SECRET (or \
    <data dir>/jwt-secret; sessions) and BOARDROOM_AUDIT_KEY (or <data dir>/audit-key; audit \
    verify) in a secrets manager, apart from the backups";

/// A snapshot's description, `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the build that wrote it.
    pub format_version: u32,
    /// `sqlite` or `postgres`: the format of the database file.
    pub backend: String,
    /// The newest migration applied in the snapshot.
    pub schema_version: i64,
    /// When the database snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The version of the server that wrote it.
    pub server_version: String,
    /// Every file of the snapshot but the manifest, by path relative to the snapshot.
    pub files: Vec<FileEntry>,
    /// Rows per table, counted inside the database snapshot.
    pub tables: BTreeMap<String, i64>,
    /// Blobs a row named but the store no longer held when they were copied (deleted after
    /// the snapshot was taken): their attachments are restored without their bytes.
    pub blobs_missing: Vec<String>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the snapshot directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
}

impl Manifest {
    /// Total bytes of the snapshot's files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Why a backup or a restore failed: one line, naming what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

impl BackupError {
    pub(crate) fn io(what: impl std::fmt::Display, err: std::io::Error) -> BackupError {
        BackupError(format!("{what}: {err}"))
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(err: sqlx::Error) -> Self {
        BackupError(format!("database: {err}"))
    }
}

/// Writes a complete snapshot of `store` (reached at `database_url`) and of the blobs its rows
/// name in `blobs` into `out`, which must not exist yet. Nothing is left at `out` unless every
/// file was written and synced.
pub async fn create(
    store: &Store,
    database_url: &str,
    blobs: &Arc<dyn ObjectStore>,
    out: &Path,
) -> Result<Manifest, BackupError> {
    if out.exists() {
        return Err(BackupError(format!(
            "{} already exists: a snapshot goes into a new directory",
            out.display()
        )));
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError(format!("{}: not a directory name", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| BackupError::io(parent.display(), e))?;
    let partial = parent.join(format!("{PARTIAL_PREFIX}{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir(&partial).map_err(|e| BackupError::io(partial.display(), e))?;
    let written = write_snapshot(store, database_url, blobs, &partial).await;
    let manifest = match written {
        Ok(manifest) => manifest,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(err);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&partial);
        BackupError::io(format!("renaming the snapshot to {}", out.display()), e)
    })?;
    sync_dir(&parent)?;
    Ok(manifest)
}

/// Directories being written start with this; they are never a snapshot.
pub const PARTIAL_PREFIX: &str = ".partial-";

async fn write_snapshot(
    store: &Store,
    database_url: &str,
    blobs: &Arc<dyn ObjectStore>,
    dir: &Path,
) -> Result<Manifest, BackupError> {
    let snapshot = database::snapshot(store, database_url, dir).await?;
    let blob_dir = dir.join(BLOBS_DIR);
    std::fs::create_dir(&blob_dir).map_err(|e| BackupError::io(blob_dir.display(), e))?;
    let mut files = vec![file_entry(dir, snapshot.file)?];
    let mut blobs_missing = Vec::new();
    for key in &snapshot.blob_keys {
        // Only names the vault makes: a row can never send the copy outside the snapshot.
        if !crate::attachments::is_blob_key(key) {
            return Err(BackupError(format!("a row names an invalid blob {key:?}")));
        }
        let path = blob_dir.join(key);
        match copy_blob(blobs, key, &path).await {
            Ok(true) => files.push(file_entry(dir, &format!("{BLOBS_DIR}/{key}"))?),
            Ok(false) => blobs_missing.push(key.clone()),
            Err(err) => return Err(err),
        }
    }
    sync_dir(&blob_dir)?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        backend: snapshot.backend.as_str().to_owned(),
        schema_version: snapshot.schema_version,
        created_at: snapshot.taken_at,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        files,
        tables: snapshot.tables,
        blobs_missing,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError(format!("manifest: {e}")))?;
    write_synced(&dir.join(MANIFEST), &json)?;
    write_synced(&dir.join(MANIFEST_SUM), format!("{}\n", sha256_hex(&json)).as_bytes())?;
    sync_dir(dir)?;
    Ok(manifest)
}

/// Copies one blob into `path` (synced); `false` when the store no longer has it.
async fn copy_blob(
    blobs: &Arc<dyn ObjectStore>,
    key: &str,
    path: &Path,
) -> Result<bool, BackupError> {
    let got = match blobs.get(&object_store::path::Path::from(key)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(err) => return Err(BackupError(format!("blob store: reading {key}: {err}"))),
    };
    let mut file = std::fs::File::create(path).map_err(|e| BackupError::io(path.display(), e))?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BackupError(format!("blob store: reading {key}: {e}")))?;
        file.write_all(&chunk).map_err(|e| BackupError::io(path.display(), e))?;
    }
    file.sync_all().map_err(|e| BackupError::io(path.display(), e))?;
    Ok(true)
}

/// The size and SHA-256 of `dir/relative`.
fn file_entry(dir: &Path, relative: &str) -> Result<FileEntry, BackupError> {
    let path = dir.join(relative);
    let (bytes, sha256) = hash_file(&path)?;
    Ok(FileEntry { path: relative.to_owned(), bytes, sha256 })
}

/// Size and SHA-256 (hex) of a file, read in 1 MiB pieces.
pub(crate) fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| BackupError::io(path.display(), e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(|e| BackupError::io(path.display(), e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut file = std::fs::File::create(path).map_err(|e| BackupError::io(path.display(), e))?;
    file.write_all(bytes).map_err(|e| BackupError::io(path.display(), e))?;
    file.sync_all().map_err(|e| BackupError::io(path.display(), e))
}

/// Makes a directory's entries (a created or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(format!("syncing {}", dir.display()), e))
}

/// Which backend a database URL names.
pub(crate) fn backend_of(url: &str) -> Result<Backend, BackupError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(BackupError("DATABASE_URL: use sqlite://PATH or postgres://…".into()))
    }
}
