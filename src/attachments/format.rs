//! The sealed blob format, and sealing and opening it a chunk at a time.
//!
//! ```text
//! header   "BRAB" · version 1 · 19-byte STREAM nonce prefix            (24 bytes)
//! chunk 0  XChaCha20-Poly1305(64 KiB of plaintext) · tag                (65 552 bytes)
//! …
//! last     XChaCha20-Poly1305(0..=64 KiB of plaintext) · tag, sealed as the last chunk
//! ```
//!
//! The chunks are the STREAM construction (RustCrypto's `EncryptorBE32`): each chunk's nonce is
//! the prefix, a 32-bit counter and a last-chunk flag, so a chunk moved elsewhere fails its tag
//! (reordering), and a blob cut at any point fails, because the chunk it now ends with was not
//! sealed as the last one (truncation). Every chunk's associated data names the blob's key, so a
//! blob copied under another name does not open. A file of exactly n × 64 KiB ends in a full
//! last chunk; an empty file is a header and one empty last chunk.
//!
//! Both halves hold at most one chunk beyond the input they were just given, whatever the
//! file's size.

use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;

use super::keyring::DataKey;
use super::VaultError;

/// Plaintext bytes in every chunk but the last.
pub const CHUNK: usize = 64 * 1024;
/// Bytes the AEAD adds to a chunk.
pub const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"BRAB";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 19;
/// Bytes of the header.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + PREFIX_LEN;
const AAD_LABEL: &[u8] = b"boardroom/attachments/blob/v1\0";

fn aad(blob_key: &str) -> Vec<u8> {
    [AAD_LABEL, blob_key.as_bytes()].concat()
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.bytes().into())
}

/// Seals plaintext pushed in pieces of any size into the blob format.
pub struct Sealer {
    stream: EncryptorBE32<XChaCha20Poly1305>,
    aad: Vec<u8>,
    pending: BytesMut,
}

impl Sealer {
    /// A sealer for the blob `blob_key` under `key`, and the header the blob starts with.
    pub fn new(key: &DataKey, blob_key: &str) -> (Sealer, Bytes) {
        let mut prefix = [0u8; PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let stream = EncryptorBE32::from_aead(cipher(key), prefix.as_ref().into());
        let mut header = BytesMut::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&[VERSION]);
        header.extend_from_slice(&prefix);
        let sealer = Sealer { stream, aad: aad(blob_key), pending: BytesMut::new() };
        (sealer, header.freeze())
    }

    /// Takes more plaintext; [`Self::next_chunk`] then gives what is ready.
    pub fn push(&mut self, plain: &[u8]) {
        self.pending.extend_from_slice(plain);
    }

    /// The next sealed chunk, once more than a chunk's worth is pending (the last chunk is only
    /// known at the end).
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, VaultError> {
        if self.pending.len() <= CHUNK {
            return Ok(None);
        }
        let mut chunk = Vec::with_capacity(CHUNK + TAG);
        chunk.extend_from_slice(&self.pending.split_to(CHUNK));
        self.stream
            .encrypt_next_in_place(&self.aad, &mut chunk)
            .map_err(|_| VaultError::Store("the blob is too long to seal".into()))?;
        Ok(Some(chunk.into()))
    }

    /// The last chunk, sealed as such.
    pub fn finish(self) -> Result<Bytes, VaultError> {
        let mut chunk = Vec::with_capacity(self.pending.len() + TAG);
        chunk.extend_from_slice(&self.pending);
        self.stream
            .encrypt_last_in_place(&self.aad, &mut chunk)
            .map_err(|_| VaultError::Store("the blob is too long to seal".into()))?;
        Ok(chunk.into())
    }
}

/// Opens a blob pushed in pieces of any size, giving plaintext only from chunks that verified.
pub struct Opener {
    stream: Option<DecryptorBE32<XChaCha20Poly1305>>,
    cipher: Option<XChaCha20Poly1305>,
    aad: Vec<u8>,
    pending: BytesMut,
}

impl Opener {
    /// An opener for the blob `blob_key` under `key`.
    pub fn new(key: &DataKey, blob_key: &str) -> Opener {
        Opener {
            stream: None,
            cipher: Some(cipher(key)),
            aad: aad(blob_key),
            pending: BytesMut::new(),
        }
    }

    /// Takes more of the blob; [`Self::next_chunk`] then gives what is ready.
    pub fn push(&mut self, sealed: &[u8]) {
        self.pending.extend_from_slice(sealed);
    }

    fn start(&mut self) -> Result<bool, VaultError> {
        if self.stream.is_some() {
            return Ok(true);
        }
        if self.pending.len() < HEADER_LEN {
            return Ok(false);
        }
        let header = self.pending.split_to(HEADER_LEN);
        let (magic, rest) = header.split_at(MAGIC.len());
        let (version, prefix) = rest.split_first().ok_or(VaultError::Integrity)?;
        if magic != MAGIC || *version != VERSION {
            return Err(VaultError::Integrity);
        }
        let cipher = self.cipher.take().ok_or(VaultError::Integrity)?;
        self.stream = Some(DecryptorBE32::from_aead(cipher, prefix.into()));
        Ok(true)
    }

    /// The plaintext of the next chunk, once it verified and is known not to be the last one.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, VaultError> {
        if !self.start()? || self.pending.len() <= CHUNK + TAG {
            return Ok(None);
        }
        let stream = self.stream.as_mut().ok_or(VaultError::Integrity)?;
        let mut chunk = self.pending.split_to(CHUNK + TAG).to_vec();
        stream.decrypt_next_in_place(&self.aad, &mut chunk).map_err(|_| VaultError::Integrity)?;
        Ok(Some(chunk.into()))
    }

    /// The plaintext of the last chunk, at the end of the blob: it must verify as the last one.
    pub fn finish(mut self) -> Result<Bytes, VaultError> {
        if !self.start()? || self.pending.len() > CHUNK + TAG || self.pending.len() < TAG {
            return Err(VaultError::Integrity);
        }
        let stream = self.stream.take().ok_or(VaultError::Integrity)?;
        let mut chunk = self.pending.to_vec();
        stream.decrypt_last_in_place(&self.aad, &mut chunk).map_err(|_| VaultError::Integrity)?;
        Ok(chunk.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &DataKey, blob_key: &str, plain: &[u8], piece: usize) -> Vec<u8> {
        let (mut sealer, header) = Sealer::new(key, blob_key);
        let mut out = header.to_vec();
        for part in plain.chunks(piece.max(1)) {
            sealer.push(part);
            while let Some(chunk) = sealer.next_chunk().unwrap() {
                out.extend_from_slice(&chunk);
            }
        }
        out.extend_from_slice(&sealer.finish().unwrap());
        out
    }

    /// Everything the opener gives before it stops, and how it stopped.
    fn open(
        key: &DataKey,
        blob_key: &str,
        sealed: &[u8],
        piece: usize,
    ) -> (Vec<u8>, Result<(), VaultError>) {
        let mut opener = Opener::new(key, blob_key);
        let mut out = Vec::new();
        for part in sealed.chunks(piece.max(1)) {
            opener.push(part);
            loop {
                match opener.next_chunk() {
                    Ok(Some(chunk)) => out.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(err) => return (out, Err(err)),
                }
            }
        }
        match opener.finish() {
            Ok(last) => {
                out.extend_from_slice(&last);
                (out, Ok(()))
            }
            Err(err) => (out, Err(err)),
        }
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_boundary_and_piece_size() {
        let key = DataKey::random();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * 1024 * 1024 + 17] {
            let plain = plain(len);
            for piece in [1000, 8192, CHUNK + TAG, 1 << 20] {
                let sealed = seal(&key, "k", &plain, piece);
                let chunks = len.div_ceil(CHUNK).max(1);
                assert_eq!(sealed.len(), HEADER_LEN + len + chunks * TAG, "len {len}");
                let (opened, end) = open(&key, "k", &sealed, piece);
                assert!(end.is_ok(), "len {len} piece {piece}");
                assert_eq!(opened, plain, "len {len} piece {piece}");
            }
        }
    }

    /// Damage in chunk `bad` (0-based): nothing of it or after it comes out, and opening fails.
    fn assert_fails_at(key: &DataKey, blob_key: &str, sealed: &[u8], plain: &[u8], bad: usize) {
        let (opened, end) = open(key, blob_key, sealed, 4096);
        assert!(matches!(end, Err(VaultError::Integrity)), "{end:?}");
        assert_eq!(opened.len(), bad * CHUNK, "only the chunks before the damage");
        assert_eq!(opened[..], plain[..bad * CHUNK]);
    }

    #[test]
    fn damage_is_detected_and_never_yields_the_damaged_chunk() {
        let key = DataKey::random();
        let plain = plain(3 * CHUNK + 100);
        let sealed = seal(&key, "k", &plain, 1 << 20);
        let at = |chunk: usize| HEADER_LEN + chunk * (CHUNK + TAG);

        let mut flipped = sealed.clone();
        flipped[at(1) + 10] ^= 0x01;
        assert_fails_at(&key, "k", &flipped, &plain, 1);

        let mut tag_flipped = sealed.clone();
        tag_flipped[at(1) - 1] ^= 0x80;
        assert_fails_at(&key, "k", &tag_flipped, &plain, 0);

        // Cut at a chunk boundary: the chunk it now ends with was not sealed as the last.
        assert_fails_at(&key, "k", &sealed[..at(2)], &plain, 1);
        // Cut inside a chunk, and cut inside the header.
        assert_fails_at(&key, "k", &sealed[..at(2) + 5], &plain, 2);
        assert_fails_at(&key, "k", &sealed[..HEADER_LEN - 1], &plain, 0);
        assert_fails_at(&key, "k", &sealed[..HEADER_LEN], &plain, 0);

        // A chunk removed.
        let removed = [&sealed[..at(1)], &sealed[at(2)..]].concat();
        assert_fails_at(&key, "k", &removed, &plain, 1);

        // Two chunks swapped.
        let swapped =
            [&sealed[..at(1)], &sealed[at(2)..at(3)], &sealed[at(1)..at(2)], &sealed[at(3)..]]
                .concat();
        assert_fails_at(&key, "k", &swapped, &plain, 1);

        // The same blob under another name, or under another key.
        assert_fails_at(&key, "other", &sealed, &plain, 0);
        assert_fails_at(&DataKey::random(), "k", &sealed, &plain, 0);

        // A damaged header: magic, version, nonce prefix.
        for byte in [0, 4, 10] {
            let mut header = sealed.clone();
            header[byte] ^= 0x01;
            assert_fails_at(&key, "k", &header, &plain, 0);
        }

        // Bytes appended after the last chunk.
        let appended = [&sealed[..], &[0u8; 3]].concat();
        assert_fails_at(&key, "k", &appended, &plain, 3);
    }

    #[test]
    fn an_empty_file_is_a_header_and_one_tag() {
        let key = DataKey::random();
        let sealed = seal(&key, "k", b"", 10);
        assert_eq!(sealed.len(), HEADER_LEN + TAG);
        assert_eq!(open(&key, "k", &sealed, 10).0, b"");
        assert!(matches!(
            open(&key, "k", &sealed[..HEADER_LEN + TAG - 1], 10).1,
            Err(VaultError::Integrity)
        ));
    }
}
