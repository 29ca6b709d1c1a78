//! `boardroom keys rotate` and `boardroom keys retire`: moving every data key to a new master
//! key without rewriting a blob, and dropping a master key once nothing uses it.
//!
//! Rotation re-wraps each data key (`wrapped_key`, `key_id` of `attachments` and of `exports`,
//! whose zips are sealed the same way) under the keyring's active key, in batches of [`BATCH`] rows, each batch one transaction that changes a row only
//! if it is still under the key it was read under. With the generated keyring, rotation first
//! puts a new key at its head, unless a rotation is already under way (some rows are under an
//! older key): then it only finishes that one, so running it again after an interruption is
//! safe. With `BOARDROOM_MASTER_KEY` the operator introduces the new key by putting it first in
//! the setting (and restarting the servers), then runs `keys rotate`.
//!
//! Running servers notice a changed generated keyring at their next seal or open (it is read
//! again when the file's modification time or size changes), so they seal under the new key and
//! open rows re-wrapped under it without a restart. An upload sealed under the old key while a
//! rotation ran is left under it; `keys retire` refuses while any row is, and counts them, and
//! `keys rotate` again moves them.

use crate::config::Settings;
use crate::secrets::IfMissing;
use crate::storage::{Rewrapped, Sealed, Store};

use super::keyring::{self, KeySource, Keyring};

/// Rows re-wrapped per transaction.
pub const BATCH: i64 = 500;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key put at the head of the generated keyring, if one was.
    pub added: Option<String>,
    /// The active key, which now wraps every data key it could.
    pub active: String,
    /// Data keys re-wrapped.
    pub rewrapped: u64,
    /// Data keys that could not be (their master key is not in the keyring, or they are
    /// damaged): left as they were, and named in the log by attachment or export id.
    pub unreadable: u64,
}

/// What retiring a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// Removed from the generated keyring.
    Removed,
    /// No row uses it; the operator removes it from `BOARDROOM_MASTER_KEY`.
    DropFromSetting,
}

/// Introduces a new master key (generated keyring: when no rotation is under way) and re-wraps
/// every data key under the active key.
pub async fn rotate(settings: &Settings, store: &Store) -> Result<Rotation, String> {
    let mut keyring = Keyring::load(settings, IfMissing::Fail)?;
    let mut added = None;
    if let KeySource::DataDir(path) = keyring.source().clone() {
        let usage = store
            .sealed_key_usage()
            .await
            .map_err(|e| format!("cannot read the attachments: {e}"))?;
        let under_way = usage.iter().any(|(id, n)| id != keyring.active().id() && *n > 0);
        if !under_way {
            let secrets = keyring::read_keyring_file(&path)
                .map_err(|e| format!("cannot read the keyring {}: {e}", path.display()))?;
            let new = crate::secrets::generate_secret();
            let mut next = Vec::with_capacity(secrets.len() + 1);
            next.push(new.clone());
            next.extend(secrets);
            keyring::write_keyring_file(&path, &next)
                .map_err(|e| format!("cannot write the keyring {}: {e}", path.display()))?;
            added = keyring::id_of(&new);
            keyring = Keyring::load(settings, IfMissing::Fail)?;
        }
    }
    let active = keyring.active().id().to_owned();
    let (mut rewrapped, mut unreadable) = (0u64, 0u64);
    for kind in Sealed::ALL {
        let (done, failed) = rewrap_all(store, &keyring, kind).await?;
        rewrapped += done;
        unreadable += failed;
    }
    Ok(Rotation { added, active, rewrapped, unreadable })
}

/// Re-wraps every data key of `kind` not under the active key: (re-wrapped, unreadable).
async fn rewrap_all(store: &Store, keyring: &Keyring, kind: Sealed) -> Result<(u64, u64), String> {
    let active = keyring.active().id();
    let (mut rewrapped, mut unreadable) = (0u64, 0u64);
    let mut after = None;
    loop {
        let rows = store
            .wrapped_keys_not_under(kind, active, after, BATCH)
            .await
            .map_err(|e| format!("cannot read the {}s: {e}", kind.noun()))?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            match keyring::rewrap(keyring, &row.key_id, &row.wrapped_key, &row.blob_key) {
                Ok((key_id, wrapped_key)) => batch.push(Rewrapped {
                    id: row.id,
                    organization_id: row.organization_id,
                    from_key_id: row.key_id,
                    key_id,
                    wrapped_key,
                }),
                Err(err) => {
                    unreadable += 1;
                    tracing::error!(kind = kind.noun(), id = %row.id, key_id = %row.key_id,
                        error = %err, "cannot re-wrap this data key");
                }
            }
        }
        rewrapped += store
            .store_rewrapped(kind, &batch)
            .await
            .map_err(|e| format!("cannot store re-wrapped keys: {e}"))?;
    }
    Ok((rewrapped, unreadable))
}

/// Removes `key_id` from the keyring, if no attachment or export still uses it and it is not the
/// active key. Refusals say why, and how many attachments and exports still use it.
pub async fn retire(settings: &Settings, store: &Store, key_id: &str) -> Result<Retired, String> {
    let keyring = Keyring::load(settings, IfMissing::Fail)?;
    let active = keyring.active().id() == key_id;
    let mut users = Vec::new();
    for kind in Sealed::ALL {
        let n = store
            .sealed_under_key(kind, key_id)
            .await
            .map_err(|e| format!("cannot read the {}s: {e}", kind.noun()))?;
        // Attachments are always counted, so the message names what the key guards.
        if n > 0 || kind == Sealed::Attachments {
            users.push((n, kind));
        }
    }
    if users.iter().any(|(n, _)| *n > 0) {
        let which = if active { ", the active master key" } else { "" };
        let counted: Vec<String> =
            users.iter().map(|(n, kind)| format!("{n} {}(s)", kind.noun())).collect();
        return Err(format!(
            "{} still use {key_id}{which}: run `boardroom keys rotate` first",
            counted.join(" and ")
        ));
    }
    if keyring.get(key_id).is_none() {
        let known: Vec<&str> = keyring.ids().collect();
        return Err(format!("{key_id} is not in the keyring (its keys: {})", known.join(", ")));
    }
    if active {
        return Err(format!(
            "{key_id} is the active master key: run `boardroom keys rotate` first"
        ));
    }
    match keyring.source() {
        KeySource::Setting => Ok(Retired::DropFromSetting),
        KeySource::DataDir(path) => {
            let secrets = keyring::read_keyring_file(path)
                .map_err(|e| format!("cannot read the keyring {}: {e}", path.display()))?;
            let kept: Vec<String> = secrets
                .into_iter()
                .filter(|secret| keyring::id_of(secret).as_deref() != Some(key_id))
                .collect();
            keyring::write_keyring_file(path, &kept)
                .map_err(|e| format!("cannot write the keyring {}: {e}", path.display()))?;
            Ok(Retired::Removed)
        }
    }
}
