//! `boardroom restore --from DIR`: every checksum is verified before anything is touched; a
//! target holding data is refused unless forced; then the database is put in place, its rows
//! counted against the manifest, the migrations run forward from the snapshot's schema version,
//! and the blobs copied into the configured blob store.

use std::collections::BTreeMap;
use std::path::Path;

use object_store::ObjectStoreExt;

use super::database::{self, POSTGRES_FILE, SQLITE_FILE};
use super::{
    hash_file, sha256_hex, BackupError, Manifest, BLOBS_DIR, FORMAT_VERSION, MANIFEST, MANIFEST_SUM,
};
use crate::config::Settings;
use crate::storage::{Backend, Store};

/// One table's rows: what the manifest says and what the restored database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Rows the manifest counted (`None`: not in the snapshot).
    pub expected: Option<i64>,
    /// Rows restored (`None`: not in the restored database).
    pub restored: Option<i64>,
}

impl TableCount {
    /// Whether the two agree.
    pub fn matches(&self) -> bool {
        self.expected == self.restored
    }
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The snapshot's manifest.
    pub manifest: Manifest,
    /// Rows per table, before the migrations ran forward.
    pub counts: Vec<TableCount>,
    /// Blobs written to the blob store.
    pub blobs: usize,
}

impl RestoreReport {
    /// Whether every table holds the manifest's count.
    pub fn matches(&self) -> bool {
        self.counts.iter().all(TableCount::matches)
    }
}

/// Reads the manifest of the snapshot in `dir` and checks the manifest's own checksum, then
/// the size and SHA-256 of every file it lists. Changes nothing.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let raw = std::fs::read(dir.join(MANIFEST))
        .map_err(|e| BackupError::io(format!("{}: no snapshot here", dir.display()), e))?;
    let sum = std::fs::read_to_string(dir.join(MANIFEST_SUM))
        .map_err(|e| BackupError::io(dir.join(MANIFEST_SUM).display(), e))?;
    if sum.trim() != sha256_hex(&raw) {
        return Err(BackupError(format!(
            "{}: checksum mismatch: the manifest is damaged; nothing was restored",
            dir.join(MANIFEST).display()
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| BackupError(format!("{}: {e}", dir.join(MANIFEST).display())))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(BackupError(format!(
            "snapshot format {} is not one this build reads ({FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    let database_file = database_file(&manifest)?;
    if !manifest.files.iter().any(|f| f.path == database_file) {
        return Err(BackupError(format!("the manifest lists no {database_file}")));
    }
    for entry in &manifest.files {
        // Only the names a snapshot is made of: a manifest never points outside its directory.
        let allowed = entry.path == database_file
            || entry
                .path
                .strip_prefix(BLOBS_DIR)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(crate::attachments::is_blob_key);
        if !allowed {
            return Err(BackupError(format!(
                "the manifest lists an unexpected file {:?}",
                entry.path
            )));
        }
        let (bytes, sha256) = hash_file(&dir.join(&entry.path))?;
        if bytes != entry.bytes || sha256 != entry.sha256 {
            return Err(BackupError(format!(
                "{}: checksum mismatch ({bytes} bytes, sha256 {sha256}; the manifest says {} \
                 bytes, {}): the snapshot is damaged; nothing was restored",
                entry.path, entry.bytes, entry.sha256
            )));
        }
    }
    Ok(manifest)
}

fn database_file(manifest: &Manifest) -> Result<&'static str, BackupError> {
    match manifest.backend.as_str() {
        "sqlite" => Ok(SQLITE_FILE),
        "postgres" => Ok(POSTGRES_FILE),
        other => Err(BackupError(format!("the manifest names an unknown backend {other:?}"))),
    }
}

/// Restores the snapshot in `dir` into the database and blob store `settings` name.
pub async fn restore(
    settings: &Settings,
    dir: &Path,
    force: bool,
) -> Result<RestoreReport, BackupError> {
    let manifest = verify(dir)?;
    let backend = if manifest.backend == "sqlite" { Backend::Sqlite } else { Backend::Postgres };
    let url = settings.effective_database_url();
    // Before the database is touched: a blob store that cannot be reached stops the restore.
    let blobs = crate::attachments::blob_store::from_settings(settings).map_err(BackupError)?;
    let restored =
        database::restore(backend, &dir.join(database_file(&manifest)?), &url, force).await?;
    let counts = compare(&manifest.tables, &restored);
    let store = Store::open(&url, 2).await.map_err(|e| BackupError(e.to_string()))?;
    let migrated = store.migrate().await;
    store.close().await;
    migrated.map_err(|e| BackupError(format!("DATABASE_URL: migrations failed: {e}")))?;
    let mut written = 0;
    for entry in manifest.files.iter().filter(|f| f.path.starts_with(BLOBS_DIR)) {
        let Some(name) = entry.path.strip_prefix(BLOBS_DIR).and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let bytes = std::fs::read(dir.join(&entry.path))
            .map_err(|e| BackupError::io(dir.join(&entry.path).display(), e))?;
        if sha256_hex(&bytes) != entry.sha256 {
            return Err(BackupError(format!("{}: changed while restoring", entry.path)));
        }
        blobs
            .store
            .put(&object_store::path::Path::from(name), bytes.into())
            .await
            .map_err(|e| BackupError(format!("blob store: writing {name}: {e}")))?;
        written += 1;
    }
    Ok(RestoreReport { manifest, counts, blobs: written })
}

/// Every table of either side, with both counts.
fn compare(expected: &BTreeMap<String, i64>, restored: &BTreeMap<String, i64>) -> Vec<TableCount> {
    let mut tables: Vec<&String> = expected.keys().chain(restored.keys()).collect();
    tables.sort();
    tables.dedup();
    tables
        .into_iter()
        .map(|table| TableCount {
            table: table.clone(),
            expected: expected.get(table).copied(),
            restored: restored.get(table).copied(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_missing_on_either_side_is_a_mismatch() {
        let expected = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 0)]);
        let restored = BTreeMap::from([("a".to_owned(), 2), ("c".to_owned(), 0)]);
        let counts = compare(&expected, &restored);
        let names: Vec<_> = counts.iter().map(|c| (c.table.as_str(), c.matches())).collect();
        assert_eq!(names, [("a", true), ("b", false), ("c", false)]);
    }
}
