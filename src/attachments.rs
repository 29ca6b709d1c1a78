//! The attachment vault: file bytes encrypted at rest, each file under a key of its own.
//!
//! [`Vault::seal`] encrypts an upload as it arrives into a new blob in the blob store and answers
//! a [`SealedBlob`]: the blob's random name, its data key wrapped under the active master key,
//! the size, the SHA-256 and the first bytes (for sniffing). [`Vault::open`] decrypts a blob as
//! it streams, and [`Vault::delete`] removes one. Neither the plaintext nor a data key ever
//! reaches the database, the blob store or a log: the row keeps only the wrapped key.
//!
//! # Layout
//! - [`format`]: the sealed blob format (XChaCha20-Poly1305 in the STREAM construction, 64 KiB
//!   chunks bound to the blob's name) and its chunk-at-a-time sealer and opener;
//! - [`keyring`]: master keys (`BOARDROOM_MASTER_KEY` or the generated `master-key` file), key
//!   ids, wrapping data keys;
//! - [`blob_store`]: the directory or S3 bucket behind the vault;
//! - [`rotation`]: `boardroom keys rotate` and `keys retire`;
//! - [`sweep`]: the background removal of blobs no row names.
//!
//! Memory stays flat whatever the file's size: sealing holds one chunk beyond its input and the
//! upload's parts in flight (see [`blob_store::BlobStore::part_bytes`]); opening holds one chunk
//! beyond what the store last gave it.

pub mod blob_store;
pub mod format;
pub mod keyring;
pub mod rotation;
pub mod sweep;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::secrets::IfMissing;
use format::{Opener, Sealer};
use keyring::{DataKey, KeySource, Keyring};

/// How much of the plaintext's start [`SealedBlob::head`] keeps, for content sniffing.
pub const HEAD_BYTES: usize = 8 * 1024;

/// Upload parts in flight at once, beyond the one being filled.
const PARTS_IN_FLIGHT: usize = 2;

/// What sealing a file produced: everything its row needs, and nothing secret in clear.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    /// The blob's name in the store: 32 random hex digits, never derived from user input.
    pub blob_key: String,
    /// The master key that wrapped the data key.
    pub key_id: String,
    /// The data key, wrapped (AEAD) under that master key, bound to `blob_key`.
    pub wrapped_key: Vec<u8>,
    /// Plaintext bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the plaintext.
    pub sha256: String,
    /// The first ≤ 8 KiB of plaintext, for content sniffing.
    pub head: Bytes,
}

/// Why the vault could not do something. `Display` never holds a key or file content.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The upload went past the limit; nothing was kept.
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The blob or its wrapped key was altered, truncated, reordered or swapped.
    #[error("the attachment failed its integrity check")]
    Integrity,
    /// No such blob.
    #[error("attachment not found")]
    NotFound,
    /// The upload's body could not be read.
    #[error("the upload could not be read: {0}")]
    Body(String),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Store(String),
    /// A master key is missing or unusable.
    #[error("master key: {0}")]
    Key(String),
}

fn store_error(err: object_store::Error) -> VaultError {
    match err {
        object_store::Error::NotFound { .. } => VaultError::NotFound,
        other => VaultError::Store(other.to_string()),
    }
}

/// Encrypted blob storage for attachments. Shared by the edges through `AppState::vault`.
pub struct Vault {
    keyring: std::sync::RwLock<Arc<Keyring>>,
    /// The generated keyring's file and its (modification time, size) when last read: read
    /// again when they change, so `keys rotate` and `keys retire` reach running servers.
    keyring_file: Option<(PathBuf, std::sync::Mutex<Option<FileStamp>>)>,
    store: Arc<dyn ObjectStore>,
    part_bytes: usize,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyring = self.keyring.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        f.debug_struct("Vault").field("keyring", &keyring).field("store", &self.store).finish()
    }
}

/// A file's modification time and size.
type FileStamp = (SystemTime, u64);

fn file_stamp(path: &std::path::Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Whether `blob_key` is a name [`Vault::seal`] could have made (32 lowercase hex digits), so
/// nothing else is ever used as a path in the store.
pub fn is_blob_key(blob_key: &str) -> bool {
    blob_key.len() == 32 && blob_key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn new_blob_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Vault {
    /// A vault over `store` with `keyring`; uploads go in parts of `part_bytes`.
    pub fn new(keyring: Keyring, store: Arc<dyn ObjectStore>, part_bytes: usize) -> Vault {
        let keyring_file = match keyring.source() {
            KeySource::DataDir(path) => {
                Some((path.clone(), std::sync::Mutex::new(file_stamp(path))))
            }
            KeySource::Setting => None,
        };
        Vault {
            keyring: std::sync::RwLock::new(Arc::new(keyring)),
            keyring_file,
            store,
            part_bytes: part_bytes.max(format::CHUNK),
        }
    }

    /// The vault the settings describe: their keyring (generated into the data dir when
    /// unset and `missing` allows) and blob store.
    /// Errors are one line naming the setting at fault.
    pub fn from_settings(settings: &Settings, missing: IfMissing) -> Result<Vault, String> {
        let keyring = Keyring::load(settings, missing)?;
        let blobs = blob_store::from_settings(settings)?;
        tracing::debug!(store = %blobs.describe, active_key = keyring.active().id(), "attachment vault");
        Ok(Vault::new(keyring, blobs.store, blobs.part_bytes))
    }

    /// The master keys in effect: the generated keyring is read again first if its file
    /// changed (a stat per call; the file is read only when it did).
    pub fn keyring(&self) -> Arc<Keyring> {
        if let Some((path, stamp)) = &self.keyring_file {
            let now = file_stamp(path);
            let mut seen = stamp.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if *seen != now {
                *seen = now;
                let read = std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| Keyring::parse(&text, KeySource::DataDir(path.clone())));
                match read {
                    Ok(keyring) => {
                        tracing::info!(
                            active_key = keyring.active().id(),
                            "attachment keyring reloaded"
                        );
                        *self.keyring.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
                            Arc::new(keyring);
                    }
                    Err(err) => tracing::error!(file = %path.display(), error = %err,
                        "the attachment keyring changed but cannot be read; keeping the keys in use"),
                }
            }
        }
        self.keyring.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The blob store (sealed blobs only).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Encrypts the body as it arrives into a new blob. Past `max_bytes`: `Err(TooLarge)` and
    /// nothing is left stored; likewise on any other failure, or when the caller drops the
    /// future (the unfinished upload is aborted in the background). Memory stays flat (bounded
    /// chunk buffers), whatever the size.
    pub async fn seal<S, E>(&self, mut body: S, max_bytes: u64) -> Result<SealedBlob, VaultError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let blob_key = new_blob_key();
        let data_key = DataKey::random();
        let (key_id, wrapped_key) = self.keyring().wrap(&data_key, &blob_key)?;
        let path = Path::from(blob_key.as_str());
        let upload = self.store.put_multipart(&path).await.map_err(store_error)?;
        let mut upload = Upload(Some(WriteMultipart::new_with_chunk_size(upload, self.part_bytes)));
        let (mut sealer, header) = Sealer::new(&data_key, &blob_key);
        upload.put(header)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head = BytesMut::new();
        while let Some(piece) = next_piece(&mut body).await {
            let piece = match piece {
                Ok(piece) => piece,
                Err(why) => {
                    upload.abort().await;
                    return Err(VaultError::Body(why));
                }
            };
            size = size.saturating_add(piece.len() as u64);
            if size > max_bytes {
                upload.abort().await;
                return Err(VaultError::TooLarge { limit: max_bytes });
            }
            if head.len() < HEAD_BYTES {
                let take = piece.len().min(HEAD_BYTES - head.len());
                head.extend_from_slice(piece.get(..take).unwrap_or_default());
            }
            // Hashing and sealing work through the piece a chunk at a time, so the runtime
            // thread is never held for long whatever size the body's pieces come in.
            for part in piece.chunks(format::CHUNK) {
                hasher.update(part);
                sealer.push(part);
                while let Some(chunk) = sealer.next_chunk()? {
                    upload.wait_for_capacity().await?;
                    upload.put(chunk)?;
                }
                tokio::task::consume_budget().await;
            }
        }
        let last = sealer.finish()?;
        upload.put(last)?;
        upload.finish().await?;
        Ok(SealedBlob {
            blob_key,
            key_id,
            wrapped_key,
            size,
            sha256: hex::encode(hasher.finalize()),
            head: head.freeze(),
        })
    }

    /// Decrypts as it streams. An altered, truncated, reordered or swapped blob yields
    /// `Err(Integrity)` and never the bytes of a chunk that failed. The first chunk is verified
    /// before this returns, so a small damaged file fails before any answer starts.
    pub async fn open(
        &self,
        blob_key: &str,
        key_id: &str,
        wrapped_key: &[u8],
    ) -> Result<BoxStream<'static, Result<Bytes, VaultError>>, VaultError> {
        if !is_blob_key(blob_key) {
            return Err(VaultError::Integrity);
        }
        let data_key = self.keyring().unwrap(key_id, wrapped_key, blob_key)?;
        let source =
            self.store.get(&Path::from(blob_key)).await.map_err(store_error)?.into_stream();
        let mut reading = Reading {
            source,
            opener: Some(Opener::new(&data_key, blob_key)),
            ready: std::collections::VecDeque::new(),
        };
        drop(data_key);
        let rest = |reading: Reading| {
            futures::stream::unfold(reading, |mut reading| async move {
                reading.advance().await.map(|item| (item, reading))
            })
        };
        match reading.advance().await {
            None => Ok(futures::stream::empty().boxed()),
            Some(Err(err)) => Err(err),
            Some(Ok(first)) => {
                Ok(futures::stream::once(async { Ok(first) }).chain(rest(reading)).boxed())
            }
        }
    }

    /// Removes a blob. An absent one is `Ok`.
    pub async fn delete(&self, blob_key: &str) -> Result<(), VaultError> {
        if !is_blob_key(blob_key) {
            return Ok(());
        }
        match self.store.delete(&Path::from(blob_key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }
}

/// The body's next piece, its error already text when the await returns: the sealing future
/// then holds no `E` and is `Send` whatever `E` is.
fn next_piece<S, E>(
    body: &mut S,
) -> impl std::future::Future<Output = Option<Result<Bytes, String>>> + '_
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    body.next().map(|piece| piece.map(|piece| piece.map_err(|err| err.to_string())))
}

/// A blob being opened: the store's stream, the opener (gone after the end or a failure) and
/// plaintext chunks verified but not yet given out.
struct Reading {
    source: BoxStream<'static, object_store::Result<Bytes>>,
    opener: Option<Opener>,
    ready: std::collections::VecDeque<Bytes>,
}

impl Reading {
    /// The next verified plaintext, a failure (after which nothing more comes), or the end.
    async fn advance(&mut self) -> Option<Result<Bytes, VaultError>> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            let opener = self.opener.as_mut()?;
            match self.source.next().await {
                Some(Ok(sealed)) => {
                    opener.push(&sealed);
                    loop {
                        match opener.next_chunk() {
                            Ok(Some(chunk)) => self.ready.push_back(chunk),
                            Ok(None) => break,
                            Err(err) => return self.fail(err),
                        }
                    }
                }
                Some(Err(err)) => return self.fail(store_error(err)),
                None => {
                    let opener = self.opener.take()?;
                    return match opener.finish() {
                        Ok(last) if last.is_empty() => None,
                        Ok(last) => Some(Ok(last)),
                        Err(err) => self.fail(err),
                    };
                }
            }
        }
    }

    /// Ends the stream with `err`: chunks already verified were given out before it; nothing of
    /// the failed chunk or after it ever is.
    fn fail(&mut self, err: VaultError) -> Option<Result<Bytes, VaultError>> {
        self.opener = None;
        self.ready.clear();
        Some(Err(err))
    }
}

/// An upload in progress: aborted (in the background) if dropped before it finished, so a
/// cancelled upload leaves no blob behind.
struct Upload(Option<WriteMultipart>);

impl Upload {
    fn writer(&mut self) -> Result<&mut WriteMultipart, VaultError> {
        self.0.as_mut().ok_or_else(|| VaultError::Store("the upload is over".into()))
    }

    fn put(&mut self, bytes: Bytes) -> Result<(), VaultError> {
        self.writer()?.put(bytes);
        Ok(())
    }

    async fn wait_for_capacity(&mut self) -> Result<(), VaultError> {
        let result = self.writer()?.wait_for_capacity(PARTS_IN_FLIGHT).await;
        if let Err(err) = result {
            self.abort().await;
            return Err(store_error(err));
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), VaultError> {
        let writer = self.0.take().ok_or_else(|| VaultError::Store("the upload is over".into()))?;
        // `finish` aborts the upload itself when completing it fails.
        writer.finish().await.map(|_| ()).map_err(store_error)
    }

    async fn abort(&mut self) {
        if let Some(writer) = self.0.take() {
            if let Err(err) = writer.abort().await {
                tracing::warn!(error = %err, "aborting an attachment upload failed");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(err) = writer.abort().await {
                        tracing::warn!(error = %err, "aborting a cancelled attachment upload failed");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
