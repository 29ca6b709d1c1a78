//! The vault against a real directory store: round trips at every chunk boundary, every kind of
//! damage refused without giving out a damaged chunk, and nothing left behind by a refused,
//! failed or cancelled upload.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::format::{CHUNK, HEADER_LEN, TAG};
use super::keyring::{KeySource, Keyring};
use super::*;

const KEYS: &str = "vault-test-key-vault-test-key-vault-test-1";

fn vault(dir: &std::path::Path) -> Vault {
    let store = LocalFileSystem::new_with_prefix(dir).unwrap();
    let keyring = Keyring::parse(KEYS, KeySource::Setting).unwrap();
    // Parts of one chunk, so even a small file goes up in several parts.
    Vault::new(keyring, Arc::new(store), CHUNK)
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

/// `data` as a body arriving in pieces of `piece` bytes.
fn body(
    data: &[u8],
    piece: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Unpin {
    let pieces: Vec<Result<Bytes, Infallible>> =
        data.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    stream::iter(pieces)
}

/// Everything the opened stream gives before it ends, and how it ended.
async fn read_all(
    mut opened: BoxStream<'static, Result<Bytes, VaultError>>,
) -> (Vec<u8>, Option<VaultError>) {
    let mut out = Vec::new();
    while let Some(item) = opened.next().await {
        match item {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(err) => {
                assert!(opened.next().await.is_none(), "nothing after a failure");
                return (out, Some(err));
            }
        }
    }
    (out, None)
}

/// Every file under `dir`, staging files of unfinished uploads included.
fn files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn stored(vault: &Vault, blob: &SealedBlob) -> Vec<u8> {
    vault
        .store()
        .get(&Path::from(blob.blob_key.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn replace(vault: &Vault, blob_key: &str, bytes: Vec<u8>) {
    vault.store().put(&Path::from(blob_key), PutPayload::from(bytes)).await.unwrap();
}

#[tokio::test]
async fn sealed_files_open_to_the_same_bytes_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * 1024 * 1024 + 3] {
        let data = plain(len);
        let blob = vault.seal(body(&data, 7 * 1024 + 5), u64::MAX).await.unwrap();
        assert_eq!(blob.size, len as u64);
        assert_eq!(blob.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(blob.head[..], data[..len.min(HEAD_BYTES)]);
        assert!(is_blob_key(&blob.blob_key), "{}", blob.blob_key);
        assert_eq!(blob.key_id, vault.keyring().active().id());
        let sealed = stored(&vault, &blob).await;
        assert_eq!(sealed.len(), HEADER_LEN + len + len.div_ceil(CHUNK).max(1) * TAG);
        let opened = vault.open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await.unwrap();
        let (out, end) = read_all(opened).await;
        assert!(end.is_none(), "len {len}: {end:?}");
        assert!(out == data, "len {len}: the bytes differ");
    }
    // Each file has its own blob, and each blob its own key.
    let a = vault.seal(body(b"same", 4), 100).await.unwrap();
    let b = vault.seal(body(b"same", 4), 100).await.unwrap();
    assert_ne!(a.blob_key, b.blob_key);
    assert_ne!(a.wrapped_key, b.wrapped_key);
    assert_ne!(stored(&vault, &a).await, stored(&vault, &b).await);
}

#[tokio::test]
async fn the_plaintext_is_nowhere_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let marker = b"MARKER-7f3a-plaintext-never-stored";
    let data = marker.repeat(5000);
    let blob = vault.seal(body(&data, 4096), u64::MAX).await.unwrap();
    let sealed = stored(&vault, &blob).await;
    assert!(!sealed.windows(marker.len()).any(|w| w == marker));
    assert!(!sealed.windows(8).any(|w| w == &marker[..8]));
}

/// Damage within the first chunk: `open` itself refuses, before anything could be answered.
#[tokio::test]
async fn a_damaged_small_file_fails_before_any_byte() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let data = plain(1000);
    let blob = vault.seal(body(&data, 100), u64::MAX).await.unwrap();
    let sealed = stored(&vault, &blob).await;

    let mut flipped = sealed.clone();
    flipped[HEADER_LEN + 500] ^= 0x04;
    replace(&vault, &blob.blob_key, flipped).await;
    let err = vault.open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "{err:?}");

    replace(&vault, &blob.blob_key, sealed[..sealed.len() - 1].to_vec()).await;
    let err = vault.open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "truncated: {err:?}");

    replace(&vault, &blob.blob_key, sealed[..HEADER_LEN].to_vec()).await;
    let err = vault.open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "no chunk at all: {err:?}");
}

/// Damage further in: the chunks before it come out, then `Integrity`, never the damaged
/// chunk's bytes or anything after it.
#[tokio::test]
async fn a_damaged_large_file_stops_before_the_damaged_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let data = plain(4 * CHUNK + 10);
    let blob = vault.seal(body(&data, 50_000), u64::MAX).await.unwrap();
    let sealed = stored(&vault, &blob).await;
    let at = |chunk: usize| HEADER_LEN + chunk * (CHUNK + TAG);
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        (
            "flipped byte",
            {
                let mut s = sealed.clone();
                s[at(2) + 77] ^= 0x10;
                s
            },
            2,
        ),
        ("truncated at a chunk boundary", sealed[..at(3)].to_vec(), 2),
        ("chunk removed", [&sealed[..at(1)], &sealed[at(2)..]].concat(), 1),
        (
            "chunks swapped",
            [&sealed[..at(1)], &sealed[at(2)..at(3)], &sealed[at(1)..at(2)], &sealed[at(3)..]]
                .concat(),
            1,
        ),
    ];
    for (what, damaged, good_chunks) in cases {
        replace(&vault, &blob.blob_key, damaged).await;
        let opened = vault.open(&blob.blob_key, &blob.key_id, &blob.wrapped_key).await.unwrap();
        let (out, end) = read_all(opened).await;
        assert!(matches!(end, Some(VaultError::Integrity)), "{what}: {end:?}");
        assert_eq!(out.len(), good_chunks * CHUNK, "{what}");
        assert!(out[..] == data[..good_chunks * CHUNK], "{what}");
    }
}

#[tokio::test]
async fn a_blob_under_another_name_or_another_rows_key_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let one = vault.seal(body(b"first file", 3), 100).await.unwrap();
    let two = vault.seal(body(b"second file", 3), 100).await.unwrap();

    // Another row's wrapped key.
    let err = vault.open(&one.blob_key, &two.key_id, &two.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "{err:?}");

    // The blob renamed (copied under the other blob's name, the row's key kept).
    replace(&vault, &two.blob_key, stored(&vault, &one).await).await;
    let err = vault.open(&two.blob_key, &one.key_id, &one.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "{err:?}");
    let err = vault.open(&two.blob_key, &two.key_id, &two.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "{err:?}");

    // An unknown master key; a missing blob; a name the vault could not have made.
    let err = vault.open(&one.blob_key, "mk_0000000000000000", &one.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Key(_))), "{err:?}");
    vault.delete(&one.blob_key).await.unwrap();
    let err = vault.open(&one.blob_key, &one.key_id, &one.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::NotFound)), "{err:?}");
    let err = vault.open("../../etc/passwd", &one.key_id, &one.wrapped_key).await.err();
    assert!(matches!(err, Some(VaultError::Integrity)), "{err:?}");
}

#[tokio::test]
async fn too_large_leaves_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let data = plain(3 * CHUNK);
    let err = vault.seal(body(&data, 10_000), 2 * CHUNK as u64).await.unwrap_err();
    assert!(matches!(err, VaultError::TooLarge { limit } if limit == 2 * CHUNK as u64), "{err:?}");
    assert_eq!(files(dir.path()), Vec::<String>::new());
    // Exactly the limit is fine.
    let blob = vault.seal(body(&data[..2 * CHUNK], 10_000), 2 * CHUNK as u64).await.unwrap();
    assert_eq!(files(dir.path()), vec![blob.blob_key]);
}

#[tokio::test]
async fn a_failing_body_leaves_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let pieces: Vec<Result<Bytes, String>> =
        vec![Ok(Bytes::from(plain(3 * CHUNK))), Err("connection reset".to_owned())];
    let err = vault.seal(stream::iter(pieces), u64::MAX).await.unwrap_err();
    assert!(matches!(&err, VaultError::Body(why) if why == "connection reset"), "{err:?}");
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_cancelled_upload_is_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    // A body that sends three chunks and then never ends.
    let first = stream::iter(vec![Ok::<_, Infallible>(Bytes::from(plain(3 * CHUNK)))]);
    let body = first.chain(stream::pending());
    let sealing = vault.seal(body, u64::MAX);
    tokio::select! {
        _ = sealing => panic!("the body never ends"),
        () = async {
            // Wait until the upload has written something, then drop it.
            while files(dir.path()).is_empty() {
                tokio::task::yield_now().await;
            }
        } => {}
    }
    // The abort runs in the background: give it up to ten seconds.
    for _ in 0..10_000 {
        if files(dir.path()).is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the cancelled upload left {:?}", files(dir.path()));
}

#[tokio::test]
async fn deleting_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let blob = vault.seal(body(b"bye", 3), 100).await.unwrap();
    vault.delete(&blob.blob_key).await.unwrap();
    assert_eq!(files(dir.path()), Vec::<String>::new());
    vault.delete(&blob.blob_key).await.unwrap();
    vault.delete("not-a-blob-key").await.unwrap();
}

/// The futures and streams an axum handler holds must be `Send`, for any body stream that is.
#[test]
fn sealing_and_opening_are_send() {
    fn send<T: Send>(_: &T) {}
    let vault = vault(tempfile::tempdir().unwrap().path());
    // A body whose error is not `Send` (the stream itself is).
    let body = stream::poll_fn(|_| {
        std::task::Poll::Ready(Some(Err::<Bytes, _>(std::rc::Rc::new("not Send"))))
    });
    send(&vault.seal(body, 1));
    send(&vault.open("", "", &[]));
    send(&vault.delete(""));
}
