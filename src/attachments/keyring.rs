//! Master keys: the keyring that wraps each attachment's data key, and where it comes from.
//!
//! A master key is a secret of at least 32 bytes, given by `BOARDROOM_MASTER_KEY` (several,
//! comma-separated, the first active) or, when that is unset, read from the file `master-key`
//! in the data dir (generated on first start, with a warning, by the same `load_secret` as the
//! JWT secret; one key a line, the first active). The 256-bit wrapping key and the key's id are
//! both derived from the secret with HMAC-SHA-256 under different labels, so the id (`mk_` and
//! 16 hex digits) names the key without revealing anything of it.
//!
//! A data key is wrapped with XChaCha20-Poly1305 under the active key, with a random nonce and
//! the key id and the blob's name as associated data: a wrapped key copied onto another row (or
//! relabelled with another key id) does not unwrap. Wrapped form: version byte, 24-byte nonce,
//! 48 bytes of ciphertext and tag.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::VaultError;
use crate::config::Settings;
use crate::secrets::{IfMissing, SecretSetting, MIN_SECRET_BYTES};

/// The file in the data dir holding the generated keyring.
pub const KEYRING_FILE: &str = "master-key";

const KEY_LABEL: &[u8] = b"boardroom/attachments/master-key/v1";
const ID_LABEL: &[u8] = b"boardroom/attachments/master-key-id/v1";
const WRAP_LABEL: &[u8] = b"boardroom/attachments/data-key/v1\0";
const WRAP_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Bytes of a wrapped data key.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + 16;

/// A file's own key: random, 256 bits, wiped when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn random() -> DataKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        DataKey(key)
    }

    /// The key's bytes, for the cipher.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// One master key.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// The key derived from `secret` (at least 32 bytes).
    fn derive(secret: &[u8]) -> Result<MasterKey, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "a master key must be at least {MIN_SECRET_BYTES} bytes, got one of {}",
                secret.len()
            ));
        }
        let mac = |label: &[u8]| -> Result<[u8; 32], String> {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .map_err(|_| "a master key cannot key HMAC".to_owned())?;
            mac.update(label);
            Ok(mac.finalize().into_bytes().into())
        };
        let key = Zeroizing::new(mac(KEY_LABEL)?);
        let id_bytes = mac(ID_LABEL)?;
        let id = format!("mk_{}", hex::encode(id_bytes.get(..8).unwrap_or_default()));
        Ok(MasterKey { id, key })
    }

    /// The key's id (`mk_` and 16 hex digits), as stored in `attachments.key_id`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Where the keyring came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `BOARDROOM_MASTER_KEY`: only the operator can change it.
    Setting,
    /// The generated file in the data dir, which `keys rotate` and `keys retire` edit.
    DataDir(PathBuf),
}

/// The master keys, the first active (it wraps new data keys); the others only unwrap.
pub struct Keyring {
    active: MasterKey,
    older: Vec<MasterKey>,
    source: KeySource,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

impl Keyring {
    /// The keyring in `text`: secrets separated by commas or line breaks, the first active.
    pub fn parse(text: &str, source: KeySource) -> Result<Keyring, String> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for secret in text.split([',', '\n', '\r']).map(str::trim).filter(|s| !s.is_empty()) {
            let key = MasterKey::derive(secret.as_bytes())?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(format!("the master key {} is listed twice", key.id));
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let active = keys.next().ok_or_else(|| "no master key given".to_owned())?;
        Ok(Keyring { active, older: keys.collect(), source })
    }

    /// The keyring the settings name: `BOARDROOM_MASTER_KEY`, or the one generated into the data
    /// dir (created on first start under [`IfMissing::Generate`], with a warning).
    pub fn load(settings: &Settings, missing: IfMissing) -> Result<Keyring, String> {
        let configured = settings.master_key.as_ref().map(|s| s.expose());
        let setting = SecretSetting {
            configured,
            env: "BOARDROOM_MASTER_KEY",
            flag: "master-key",
            file: KEYRING_FILE,
        };
        let secret = Zeroizing::new(crate::secrets::load_secret(settings, setting, missing)?);
        let (source, origin) = match configured {
            Some(_) => (KeySource::Setting, "BOARDROOM_MASTER_KEY (--master-key)".to_owned()),
            None => {
                let path = settings.data_dir.join(KEYRING_FILE);
                let origin = format!("BOARDROOM_DATA_DIR (--data-dir): {}", path.display());
                (KeySource::DataDir(path), origin)
            }
        };
        let text = std::str::from_utf8(&secret).map_err(|_| format!("{origin}: not UTF-8"))?;
        Keyring::parse(text, source).map_err(|e| format!("{origin}: {e}"))
    }

    /// The active key.
    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys().find(|k| k.id == id)
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.active).chain(&self.older)
    }

    /// Every key id, the active first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(|k| k.id.as_str())
    }

    /// Where the keyring came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// `data_key` wrapped under the active key for the blob `blob_key`: (key id, wrapped key).
    pub fn wrap(
        &self,
        data_key: &DataKey,
        blob_key: &str,
    ) -> Result<(String, Vec<u8>), VaultError> {
        let master = self.active();
        let wrapped = wrap_with(master, data_key, blob_key)?;
        Ok((master.id.clone(), wrapped))
    }

    /// The data key of the blob `blob_key`, wrapped under the key `key_id`. An unknown key id is
    /// [`VaultError::Key`]; a wrapped key that does not open (altered, or another row's) is
    /// [`VaultError::Integrity`].
    pub fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        blob_key: &str,
    ) -> Result<DataKey, VaultError> {
        let master = self.get(key_id).ok_or_else(|| {
            VaultError::Key(format!("the master key {key_id} is not in the keyring"))
        })?;
        unwrap_with(master, wrapped, blob_key)
    }
}

fn wrap_aad(key_id: &str, blob_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_LABEL.len() + key_id.len() + 1 + blob_key.len());
    aad.extend_from_slice(WRAP_LABEL);
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(blob_key.as_bytes());
    aad
}

fn wrap_with(
    master: &MasterKey,
    data_key: &DataKey,
    blob_key: &str,
) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = wrap_aad(&master.id, blob_key);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: data_key.bytes(), aad: &aad })
        .map_err(|_| VaultError::Key("cannot wrap a data key".into()))?;
    let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
    wrapped.push(WRAP_VERSION);
    wrapped.extend_from_slice(&nonce);
    wrapped.extend_from_slice(&sealed);
    Ok(wrapped)
}

fn unwrap_with(master: &MasterKey, wrapped: &[u8], blob_key: &str) -> Result<DataKey, VaultError> {
    let (version, rest) = wrapped.split_first().ok_or(VaultError::Integrity)?;
    if *version != WRAP_VERSION || wrapped.len() != WRAPPED_LEN {
        return Err(VaultError::Integrity);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let aad = wrap_aad(&master.id, blob_key);
    let plain = Zeroizing::new(
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| VaultError::Integrity)?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if plain.len() != key.len() {
        return Err(VaultError::Integrity);
    }
    key.copy_from_slice(&plain);
    Ok(DataKey(key))
}

/// `wrapped` (the data key of `blob_key` under `from`) wrapped anew under this keyring's active
/// key: (key id, wrapped key). The data key itself never leaves this function.
pub fn rewrap(
    keyring: &Keyring,
    from: &str,
    wrapped: &[u8],
    blob_key: &str,
) -> Result<(String, Vec<u8>), VaultError> {
    let data_key = keyring.unwrap(from, wrapped, blob_key)?;
    keyring.wrap(&data_key, blob_key)
}

/// Writes `keys` (secrets, the first active) as the generated keyring at `path`, replacing it
/// atomically: a new private file renamed over the old one.
pub fn write_keyring_file(path: &Path, secrets: &[String]) -> std::io::Result<()> {
    let staging = path.with_extension("new");
    match std::fs::remove_file(&staging) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut text = Zeroizing::new(secrets.join("\n"));
    text.push('\n');
    crate::secrets::write_private_file(&staging, &text)?;
    std::fs::rename(&staging, path)?;
    if let Some(dir) = path.parent() {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The secrets of the generated keyring at `path`, the first active.
pub fn read_keyring_file(path: &Path) -> std::io::Result<Vec<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    Ok(text
        .split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The id of the key `secret` derives, if it is a valid one.
pub fn id_of(secret: &str) -> Option<String> {
    MasterKey::derive(secret.as_bytes()).ok().map(|k| k.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "first-master-key-first-master-key-0123";
    const B: &str = "second-master-key-second-master-key-45";

    #[test]
    fn ids_are_stable_and_reveal_nothing_of_the_key() {
        let ring = Keyring::parse(&format!("{A},{B}"), KeySource::Setting).unwrap();
        let ids: Vec<&str> = ring.ids().collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0].starts_with("mk_") && ids[0].len() == 19, "{}", ids[0]);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ring.active().id(), ids[0]);
        let again = Keyring::parse(&format!("{A}\n"), KeySource::Setting).unwrap();
        assert_eq!(again.active().id(), ids[0]);
        assert!(!ids[0].contains(&hex::encode(&ring.active().key[..4])));
        assert!(!format!("{ring:?}").contains(A));
    }

    #[test]
    fn short_duplicate_and_empty_keyrings_are_refused() {
        assert!(Keyring::parse("short", KeySource::Setting).unwrap_err().contains("32 bytes"));
        assert!(Keyring::parse(&format!("{A},{A}"), KeySource::Setting)
            .unwrap_err()
            .contains("twice"));
        assert!(Keyring::parse(" , ", KeySource::Setting).is_err());
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_blob_and_key_id() {
        let ring = Keyring::parse(&format!("{A},{B}"), KeySource::Setting).unwrap();
        let key = DataKey::random();
        let (id, wrapped) = ring.wrap(&key, "blob-one").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(ring.unwrap(&id, &wrapped, "blob-one").unwrap().bytes(), key.bytes());
        assert!(matches!(ring.unwrap(&id, &wrapped, "blob-two"), Err(VaultError::Integrity)));
        let other = ring.ids().nth(1).unwrap().to_owned();
        assert!(matches!(ring.unwrap(&other, &wrapped, "blob-one"), Err(VaultError::Integrity)));
        assert!(matches!(ring.unwrap("mk_0000", &wrapped, "blob-one"), Err(VaultError::Key(_))));
        let mut flipped = wrapped.clone();
        flipped[30] ^= 1;
        assert!(matches!(ring.unwrap(&id, &flipped, "blob-one"), Err(VaultError::Integrity)));
        assert!(matches!(ring.unwrap(&id, &wrapped[..40], "blob-one"), Err(VaultError::Integrity)));
    }

    #[test]
    fn rewrapping_moves_a_key_to_the_active_master_key() {
        let old = Keyring::parse(B, KeySource::Setting).unwrap();
        let key = DataKey::random();
        let (old_id, wrapped) = old.wrap(&key, "blob").unwrap();
        let both = Keyring::parse(&format!("{A},{B}"), KeySource::Setting).unwrap();
        let (new_id, rewrapped) = rewrap(&both, &old_id, &wrapped, "blob").unwrap();
        assert_eq!(new_id, both.active().id());
        let only_new = Keyring::parse(A, KeySource::Setting).unwrap();
        assert_eq!(only_new.unwrap(&new_id, &rewrapped, "blob").unwrap().bytes(), key.bytes());
    }
}
