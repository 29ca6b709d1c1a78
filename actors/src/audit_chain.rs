//! The hash chain over audit rows, and the signed checkpoints that pin it.
//!
//! Row `n` stores `hash_n = SHA-256(prev_hash ‖ canonical(row_n))` with `prev_hash = hash_{n-1}`
//! (or [`GENESIS`] for the first row ever written). Editing, inserting or deleting a row breaks
//! every later link. A retention purge records the last purged row's hash as the anchor, so the
//! remaining chain still verifies from there.
//!
//! The chain alone cannot tell an honest chain from one recomputed after an edit, nor notice that
//! its newest rows were deleted: anyone who can write the database can recompute it. So the
//! audit actor periodically [`Seal`]s a checkpoint, "row `seq` has hash `h`", with HMAC-SHA256
//! under an [`AuditKey`] kept outside the database, and purges seal their anchor the same way.
//! [`Verifier`] then also requires every seal to match, the row at each checkpoint to still carry
//! the signed hash (else rows up to it were rewritten), and the chain to reach the newest
//! checkpoint (else its tail was cut).
//!
//! The canonical form length-prefixes every field and serializes metadata with sorted keys, so it
//! is identical whether the row was read back from Postgres `jsonb` or SQLite text.
//!
//! # Erasure
//!
//! Rows come in two versions ([`HashVersion`]). A version-1 row's hash covers its fields as
//! stored. A version-2 row's hash ([`row_hash_v2`]) covers, for each field that may hold personal
//! data (actor, target, IP, User-Agent, and each top-level metadata key), a keyed commitment
//! instead: HMAC-SHA256 under the audit key of the field's name and value ([`AuditKey::commit`]).
//! Erasing a person ([`erase_fields`]) takes such fields out of the row and keeps their
//! commitments ([`Erased`]); the hash does not change, so the chain, its checkpoints and anchor
//! still verify, and nothing in the row reveals the value (the commitment is keyed: without the
//! key an email or IP cannot be guessed back from it). The actor's commitment is the person's
//! keyed pseudonym: the same in every row they acted in, so their rows stay linkable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::digest::Update;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::AuditEvent;

/// How a row's hash covers its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashVersion {
    /// Every field as stored ([`row_hash`]): rows written before erasure existed.
    V1,
    /// Personal fields through keyed commitments ([`row_hash_v2`]): erasable.
    V2,
}

impl HashVersion {
    /// The stored number.
    pub const fn number(self) -> i32 {
        match self {
            HashVersion::V1 => 1,
            HashVersion::V2 => 2,
        }
    }

    /// Parses a stored number.
    pub fn parse(number: i32) -> Option<HashVersion> {
        match number {
            1 => Some(HashVersion::V1),
            2 => Some(HashVersion::V2),
            _ => None,
        }
    }
}

/// The commitments (hex) standing in for the fields an erasure took out of a version-2 row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Erased {
    /// The actor's commitment: the person's keyed pseudonym.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The target's commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The IP's commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The User-Agent's commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Commitments of erased top-level metadata keys, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Erased {
    /// Whether nothing was erased.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

/// A field of a version-2 row that an erasure can take out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasableField {
    /// `actor_id`.
    Actor,
    /// `target`.
    Target,
    /// `ip`.
    Ip,
    /// `user_agent`.
    UserAgent,
    /// One top-level metadata key.
    Metadata(String),
}

/// Takes `fields` out of `event` (a version-2 row's content), recording their commitments in
/// `erased`; the row's [`row_hash_v2`] is unchanged. Fields already empty are left alone.
pub fn erase_fields(
    key: &AuditKey,
    event: &mut AuditEvent,
    erased: &mut Erased,
    fields: &[ErasableField],
) {
    for field in fields {
        match field {
            ErasableField::Actor => {
                if let Some(actor) = event.actor_id.take() {
                    erased.actor_id = Some(hex::encode(key.commit("actor_id", actor.as_bytes())));
                }
            }
            ErasableField::Target => {
                if let Some(target) = event.target.take() {
                    erased.target = Some(hex::encode(key.commit("target", target.as_bytes())));
                }
            }
            ErasableField::Ip => {
                if let Some(ip) = event.ip.take() {
                    erased.ip = Some(hex::encode(key.commit("ip", ip.as_bytes())));
                }
            }
            ErasableField::UserAgent => {
                if let Some(agent) = event.user_agent.take() {
                    erased.user_agent =
                        Some(hex::encode(key.commit("user_agent", agent.as_bytes())));
                }
            }
            ErasableField::Metadata(name) => {
                let taken = event.metadata.as_object_mut().and_then(|map| map.remove(name));
                if let Some(value) = taken {
                    let commitment =
                        key.commit(&metadata_field(name), value.to_string().as_bytes());
                    erased.metadata.insert(name.clone(), hex::encode(commitment));
                }
            }
        }
    }
}

/// The keyed pseudonym of `user`: the commitment of a row's actor when they acted.
pub fn pseudonym(key: &AuditKey, user: Uuid) -> String {
    hex::encode(key.commit("actor_id", user.as_bytes()))
}

fn metadata_field(name: &str) -> String {
    format!("metadata.{name}")
}

/// The hash of a version-2 row: like [`row_hash`], but each personal field enters as its keyed
/// commitment (taken from `erased` where an erasure took the field out).
pub fn row_hash_v2(
    key: &AuditKey,
    prev_hash: &[u8],
    seq: i64,
    id: Uuid,
    event: &AuditEvent,
    erased: &Erased,
) -> [u8; 32] {
    let mut hasher = row_head(b"boardroom.audit.v2", prev_hash, seq, id, event);
    let actor = event.actor_id.map(|u| *u.as_bytes());
    committed(&mut hasher, key, "actor_id", actor.as_ref().map(|a| a.as_slice()), &erased.actor_id);
    committed(
        &mut hasher,
        key,
        "target",
        event.target.as_deref().map(str::as_bytes),
        &erased.target,
    );
    committed(&mut hasher, key, "ip", event.ip.as_deref().map(str::as_bytes), &erased.ip);
    let agent = event.user_agent.as_deref().map(str::as_bytes);
    committed(&mut hasher, key, "user_agent", agent, &erased.user_agent);
    field(&mut hasher, &[u8::from(event.bypass)]);
    let present = event.metadata.as_object();
    let mut names: BTreeSet<&str> = erased.metadata.keys().map(String::as_str).collect();
    names.extend(present.into_iter().flat_map(|map| map.keys().map(String::as_str)));
    field(&mut hasher, &(names.len() as u64).to_be_bytes());
    for name in names {
        field(&mut hasher, name.as_bytes());
        let value = present.and_then(|map| map.get(name)).map(|v| v.to_string());
        committed(
            &mut hasher,
            key,
            &metadata_field(name),
            value.as_deref().map(str::as_bytes),
            &erased.metadata.get(name).cloned(),
        );
    }
    if present.is_none() {
        // Sanitized metadata is always an object; anything else enters whole.
        field(&mut hasher, event.metadata.to_string().as_bytes());
    }
    field(&mut hasher, &event.at.timestamp_micros().to_be_bytes());
    hasher.finalize().into()
}

/// A personal field: its erased commitment if there is one, else the commitment of its value.
/// A commitment that is not hex enters as its text, and a field both erased and present (a value
/// put back beside its commitment) enters marked: either can only mismatch.
fn committed(
    hasher: &mut Sha256,
    key: &AuditKey,
    name: &str,
    value: Option<&[u8]>,
    erased: &Option<String>,
) {
    match (erased, value) {
        (Some(commitment), present) => {
            let bytes = hex::decode(commitment).unwrap_or_else(|_| commitment.as_bytes().to_vec());
            if present.is_some() {
                Update::update(hasher, &[2u8]);
            }
            optional(hasher, Some(&bytes));
        }
        (None, Some(value)) => optional(hasher, Some(&key.commit(name, value))),
        (None, None) => optional(hasher, None),
    }
}

/// The `prev_hash` of the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of the row at `seq` with id `id` holding `event`, chained to `prev_hash`.
pub fn row_hash(prev_hash: &[u8], seq: i64, id: Uuid, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = row_head(b"boardroom.audit.v1", prev_hash, seq, id, event);
    optional(&mut hasher, event.actor_id.as_ref().map(|u| u.as_bytes().as_slice()));
    optional(&mut hasher, event.target.as_deref().map(str::as_bytes));
    optional(&mut hasher, event.ip.as_deref().map(str::as_bytes));
    optional(&mut hasher, event.user_agent.as_deref().map(str::as_bytes));
    field(&mut hasher, &[u8::from(event.bypass)]);
    // serde_json's map is ordered by key, so this is canonical for any source of the value.
    field(&mut hasher, event.metadata.to_string().as_bytes());
    field(&mut hasher, &event.at.timestamp_micros().to_be_bytes());
    hasher.finalize().into()
}

/// A row's hash begun: the version's tag, the link, the position, the id, the action and the
/// organization, which both versions cover as stored.
fn row_head(tag: &[u8], prev_hash: &[u8], seq: i64, id: Uuid, event: &AuditEvent) -> Sha256 {
    let mut hasher = Sha256::new();
    Update::update(&mut hasher, tag);
    field(&mut hasher, prev_hash);
    field(&mut hasher, &seq.to_be_bytes());
    field(&mut hasher, id.as_bytes());
    field(&mut hasher, event.action.as_str().as_bytes());
    optional(&mut hasher, event.organization_id.as_ref().map(|u| u.as_bytes().as_slice()));
    hasher
}

fn field(hasher: &mut impl Update, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn optional(hasher: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => Update::update(hasher, &[0u8]),
        Some(bytes) => {
            Update::update(hasher, &[1u8]);
            field(hasher, bytes);
        }
    }
}

/// A stored row, as verification reads it.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Position in the chain.
    pub seq: i64,
    /// Row id.
    pub id: Uuid,
    /// Content (erased fields absent).
    pub event: AuditEvent,
    /// How its hash covers its fields.
    pub version: HashVersion,
    /// Commitments of the fields an erasure took out (version 2 only).
    pub erased: Erased,
    /// Stored link to the previous row.
    pub prev_hash: Vec<u8>,
    /// Stored hash of this row.
    pub hash: Vec<u8>,
}

/// The key that seals checkpoints and purge anchors. It lives outside the database (the
/// `BOARDROOM_AUDIT_KEY` setting or a file in the data dir), so write access to the database
/// alone cannot forge a seal.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key of these bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        AuditKey(bytes)
    }

    /// The keyed commitment to one field of a row: HMAC-SHA256 of its name and value.
    pub fn commit(&self, name: &str, value: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Update::update(&mut mac, b"boardroom.audit.commit.v1");
            field(&mut mac, name.as_bytes());
            field(&mut mac, value);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// The MAC over a seal's fields; `None` only if HMAC refused the key, which it never does
    /// (it takes keys of any length).
    fn mac(
        &self,
        kind: SealKind,
        seq: i64,
        hash: &[u8],
        at: DateTime<Utc>,
    ) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        Update::update(&mut mac, b"boardroom.audit.seal.v1");
        field(&mut mac, kind.tag());
        field(&mut mac, &seq.to_be_bytes());
        field(&mut mac, hash);
        field(&mut mac, &at.timestamp_micros().to_be_bytes());
        Some(mac)
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// What a [`Seal`] vouches for; part of what is signed, so one kind cannot pass for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKind {
    /// A checkpoint: the chain held row `seq` with this hash when it was sealed.
    Checkpoint,
    /// A purge anchor: rows up to `seq` were purged, and the next row links to this hash.
    Anchor,
}

impl SealKind {
    fn tag(self) -> &'static [u8] {
        match self {
            SealKind::Checkpoint => b"checkpoint",
            SealKind::Anchor => b"anchor",
        }
    }

    fn name(self) -> &'static str {
        match self {
            SealKind::Checkpoint => "checkpoint",
            SealKind::Anchor => "purge anchor",
        }
    }
}

/// A signed statement "row `seq` has hash `hash`", made at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The row vouched for.
    pub seq: i64,
    /// Its hash.
    pub hash: Vec<u8>,
    /// When the seal was made (microsecond precision).
    pub at: DateTime<Utc>,
    /// HMAC-SHA256 over the kind and the fields above, under the audit key.
    pub mac: Vec<u8>,
}

impl Seal {
    /// Seals row `seq` with hash `hash` at `at`.
    pub fn sign(
        key: &AuditKey,
        kind: SealKind,
        seq: i64,
        hash: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Seal {
        let mac = key.mac(kind, seq, &hash, at).map(|m| m.finalize().into_bytes().to_vec());
        let mac = mac.unwrap_or_default();
        Seal { seq, hash, at, mac }
    }

    /// Whether the seal was made with `key` for `kind` (compared in constant time).
    pub fn is_authentic(&self, key: &AuditKey, kind: SealKind) -> bool {
        key.mac(kind, self.seq, &self.hash, self.at)
            .is_some_and(|mac| mac.verify_slice(&self.mac).is_ok())
    }
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The row's content does not match its stored hash (it was edited).
    #[error("row {seq}: content does not match its hash (edited)")]
    Edited {
        /// The row.
        seq: i64,
    },
    /// The row's link does not match the previous row's hash (a row was removed or inserted).
    #[error("row {seq}: does not link to the previous row (removed or inserted rows)")]
    Unlinked {
        /// The row.
        seq: i64,
    },
    /// The row's hash is not the one a checkpoint signed: rows up to it were rewritten and the
    /// chain recomputed.
    #[error("row {seq}: differs from the signed checkpoint (rows up to it were rewritten)")]
    Rewritten {
        /// The row.
        seq: i64,
    },
    /// The chain ends before a row a checkpoint vouches for: its newest rows were deleted.
    #[error(
        "the chain ends at row {end}, but a signed checkpoint vouches for row {signed} \
         (rows removed from the end)"
    )]
    Truncated {
        /// The newest row present (or the anchor's, with no rows).
        end: i64,
        /// The newest row a checkpoint vouches for.
        signed: i64,
    },
    /// A checkpoint or the purge anchor does not carry a valid seal.
    #[error(
        "{} at row {seq}: its signature does not match (forged, or not made with this \
         BOARDROOM_AUDIT_KEY)", kind.name()
    )]
    Forged {
        /// Which seal.
        kind: SealKind,
        /// The row it names.
        seq: i64,
    },
}

/// What a verification found, when nothing broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked.
    pub rows: u64,
    /// The newest row present (or the anchor's, with no rows; 0 for an empty log).
    pub end: i64,
    /// The newest row a checkpoint vouches for, if any. Rows after it are only as good as their
    /// links: nothing signed says they were there.
    pub signed_through: Option<i64>,
}

/// Checks a chain row by row, in `seq` order, against its anchor and checkpoints.
#[derive(Debug)]
pub struct Verifier {
    key: AuditKey,
    expected_prev: Vec<u8>,
    end: i64,
    rows: u64,
    /// Checkpoints not yet reached, oldest first.
    ahead: VecDeque<Seal>,
    signed_through: Option<i64>,
}

impl Verifier {
    /// A verifier starting at `anchor` (or [`GENESIS`]), expecting `checkpoints` (in any order).
    /// Fails at once if a seal does not match `key`.
    pub fn new(
        key: &AuditKey,
        anchor: Option<&Seal>,
        mut checkpoints: Vec<Seal>,
    ) -> Result<Verifier, ChainBreak> {
        if let Some(anchor) = anchor {
            if !anchor.is_authentic(key, SealKind::Anchor) {
                return Err(ChainBreak::Forged { kind: SealKind::Anchor, seq: anchor.seq });
            }
        }
        checkpoints.sort_by_key(|c| c.seq);
        if let Some(forged) =
            checkpoints.iter().find(|c| !c.is_authentic(key, SealKind::Checkpoint))
        {
            return Err(ChainBreak::Forged { kind: SealKind::Checkpoint, seq: forged.seq });
        }
        let (start, expected_prev) = match anchor {
            Some(anchor) => (anchor.seq, anchor.hash.clone()),
            None => (0, GENESIS.to_vec()),
        };
        let signed_through = checkpoints.last().map(|c| c.seq).filter(|seq| *seq >= start);
        // Checkpoints at or before the anchor name purged rows; only one at the anchor itself
        // can still be compared, with the anchor's hash.
        let mut ahead = VecDeque::with_capacity(checkpoints.len());
        for checkpoint in checkpoints {
            if checkpoint.seq == start && checkpoint.hash != expected_prev {
                return Err(ChainBreak::Rewritten { seq: start });
            }
            if checkpoint.seq > start {
                ahead.push_back(checkpoint);
            }
        }
        Ok(Verifier { key: key.clone(), expected_prev, end: start, rows: 0, ahead, signed_through })
    }

    /// Checks the next row.
    pub fn check(&mut self, row: StoredRow) -> Result<(), ChainBreak> {
        if row.prev_hash != self.expected_prev {
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        let computed = match row.version {
            HashVersion::V1 if row.erased.is_empty() => {
                row_hash(&row.prev_hash, row.seq, row.id, &row.event)
            }
            // Nothing erases a version-1 row; one that claims so was edited.
            HashVersion::V1 => return Err(ChainBreak::Edited { seq: row.seq }),
            HashVersion::V2 => {
                row_hash_v2(&self.key, &row.prev_hash, row.seq, row.id, &row.event, &row.erased)
            }
        };
        if computed.as_slice() != row.hash.as_slice() {
            return Err(ChainBreak::Edited { seq: row.seq });
        }
        while let Some(checkpoint) = self.ahead.front() {
            if checkpoint.seq > row.seq {
                break;
            }
            // A checkpoint whose row was skipped over names a row this chain does not have.
            if checkpoint.seq < row.seq || checkpoint.hash != row.hash {
                return Err(ChainBreak::Rewritten { seq: checkpoint.seq });
            }
            self.ahead.pop_front();
        }
        self.end = row.seq;
        self.expected_prev = row.hash;
        self.rows += 1;
        Ok(())
    }

    /// Ends the walk: fails if a checkpoint vouches for a row past the end of the chain.
    pub fn finish(self) -> Result<Verified, ChainBreak> {
        if let Some(signed) = self.ahead.back() {
            return Err(ChainBreak::Truncated { end: self.end, signed: signed.seq });
        }
        Ok(Verified { rows: self.rows, end: self.end, signed_through: self.signed_through })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditAction, AuditEvent};

    fn chain(n: i64) -> Vec<StoredRow> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut event = AuditEvent::new(AuditAction::LoginSucceeded);
                event.target = Some(format!("user-{seq}"));
                event.metadata = serde_json::json!({"b": 1, "a": [seq]});
                let id = Uuid::now_v7();
                let hash = row_hash(&prev, seq, id, &event).to_vec();
                let row = StoredRow {
                    seq,
                    id,
                    event,
                    version: HashVersion::V1,
                    erased: Erased::default(),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn key() -> AuditKey {
        AuditKey::new(b"an audit key of thirty-two bytes".to_vec())
    }

    fn checkpoint(rows: &[StoredRow], seq: i64) -> Seal {
        let hash = rows.iter().find(|r| r.seq == seq).map(|r| r.hash.clone()).unwrap_or_default();
        Seal::sign(&key(), SealKind::Checkpoint, seq, hash, Utc::now())
    }

    fn verify(
        anchor: Option<&Seal>,
        checkpoints: Vec<Seal>,
        rows: Vec<StoredRow>,
    ) -> Result<Verified, ChainBreak> {
        let mut verifier = Verifier::new(&key(), anchor, checkpoints)?;
        for row in rows {
            verifier.check(row)?;
        }
        verifier.finish()
    }

    /// The rows as rewritten by someone who edits `seq` and recomputes every later hash.
    fn rewritten(mut rows: Vec<StoredRow>, seq: i64) -> Vec<StoredRow> {
        let mut prev = rows[0].prev_hash.clone();
        for row in &mut rows {
            if row.seq == seq {
                row.event.target = Some("someone-else".into());
            }
            row.prev_hash = prev;
            row.hash = row_hash(&row.prev_hash, row.seq, row.id, &row.event).to_vec();
            prev = row.hash.clone();
        }
        rows
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(5);
        let checkpoints = vec![checkpoint(&rows, 3), checkpoint(&rows, 5)];
        let verified = verify(None, checkpoints, rows).unwrap();
        assert_eq!(verified, Verified { rows: 5, end: 5, signed_through: Some(5) });
        assert_eq!(verify(None, Vec::new(), Vec::new()).unwrap().rows, 0);
    }

    #[test]
    fn edited_row_is_caught() {
        let mut rows = chain(5);
        rows[2].event.target = Some("someone-else".into());
        assert_eq!(verify(None, Vec::new(), rows), Err(ChainBreak::Edited { seq: 3 }));
    }

    #[test]
    fn removed_row_is_caught() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify(None, Vec::new(), rows), Err(ChainBreak::Unlinked { seq: 3 }));
    }

    #[test]
    fn a_recomputed_chain_is_caught_at_the_next_checkpoint() {
        let rows = chain(6);
        let checkpoints = vec![checkpoint(&rows, 2), checkpoint(&rows, 4)];
        // Links and hashes all agree again; only the signed hash of row 4 tells.
        let forged = rewritten(rows, 3);
        assert_eq!(verify(None, checkpoints, forged), Err(ChainBreak::Rewritten { seq: 4 }));
    }

    #[test]
    fn a_rewrite_after_the_newest_checkpoint_goes_unseen() {
        // The documented limit: nothing signed covers rows after the newest checkpoint.
        let rows = chain(6);
        let checkpoints = vec![checkpoint(&rows, 4)];
        let verified = verify(None, checkpoints, rewritten(rows, 5)).unwrap();
        assert_eq!(verified.signed_through, Some(4));
        assert_eq!(verified.end, 6);
    }

    #[test]
    fn a_cut_tail_is_caught() {
        let rows = chain(6);
        let checkpoints = vec![checkpoint(&rows, 2), checkpoint(&rows, 5)];
        let cut: Vec<StoredRow> = rows.into_iter().take(3).collect();
        assert_eq!(
            verify(None, checkpoints, cut),
            Err(ChainBreak::Truncated { end: 3, signed: 5 })
        );
    }

    #[test]
    fn seals_need_the_key_and_their_own_kind() {
        let rows = chain(3);
        let mut forged = checkpoint(&rows, 3);
        forged.seq = 2;
        forged.hash = rows[1].hash.clone();
        assert_eq!(
            verify(None, vec![forged], rows.clone()),
            Err(ChainBreak::Forged { kind: SealKind::Checkpoint, seq: 2 })
        );
        let other_key = AuditKey::new(b"not the audit key, but as long!!".to_vec());
        let foreign =
            Seal::sign(&other_key, SealKind::Checkpoint, 3, rows[2].hash.clone(), Utc::now());
        assert_eq!(
            verify(None, vec![foreign], rows.clone()),
            Err(ChainBreak::Forged { kind: SealKind::Checkpoint, seq: 3 })
        );
        // A checkpoint's seal does not pass for an anchor's.
        let checkpoint_as_anchor = checkpoint(&rows, 1);
        assert_eq!(
            verify(Some(&checkpoint_as_anchor), Vec::new(), rows.into_iter().skip(1).collect()),
            Err(ChainBreak::Forged { kind: SealKind::Anchor, seq: 1 })
        );
    }

    #[test]
    fn purged_prefix_verifies_from_its_sealed_anchor() {
        let rows = chain(5);
        let checkpoints = vec![checkpoint(&rows, 1), checkpoint(&rows, 2), checkpoint(&rows, 4)];
        let anchor = Seal::sign(&key(), SealKind::Anchor, 2, rows[1].hash.clone(), Utc::now());
        let kept: Vec<StoredRow> = rows.into_iter().skip(2).collect();
        let verified = verify(Some(&anchor), checkpoints, kept.clone()).unwrap();
        assert_eq!(verified, Verified { rows: 3, end: 5, signed_through: Some(4) });
        // Dropping more of the oldest rows needs an anchor only the key can seal.
        let mut moved = anchor.clone();
        moved.seq = 3;
        moved.hash = kept[0].hash.clone();
        assert_eq!(
            verify(Some(&moved), Vec::new(), kept.into_iter().skip(1).collect()),
            Err(ChainBreak::Forged { kind: SealKind::Anchor, seq: 3 })
        );
    }

    #[test]
    fn metadata_key_order_does_not_matter() {
        let mut a = AuditEvent::new(AuditAction::Signup);
        a.metadata = serde_json::from_str(r#"{"x":1,"a":2}"#).unwrap();
        let mut b = a.clone();
        b.metadata = serde_json::from_str(r#"{"a":2,"x":1}"#).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(row_hash(&GENESIS, 1, id, &a), row_hash(&GENESIS, 1, id, &b));
    }

    #[test]
    fn erasing_personal_fields_keeps_a_version_2_hash() {
        let key = key();
        let person = Uuid::now_v7();
        let mut event = AuditEvent::new(AuditAction::PasswordChanged);
        event.actor_id = Some(person);
        event.target = Some(person.to_string());
        event.ip = Some("203.0.113.9".into());
        event.user_agent = Some("curl/8".into());
        event.metadata = serde_json::json!({"email": "ann@example.com", "sessions_ended": 2});
        let id = Uuid::now_v7();
        let before = row_hash_v2(&key, &GENESIS, 1, id, &event, &Erased::default());
        let mut erased = Erased::default();
        let fields = [
            ErasableField::Actor,
            ErasableField::Target,
            ErasableField::Ip,
            ErasableField::UserAgent,
            ErasableField::Metadata("email".into()),
        ];
        erase_fields(&key, &mut event, &mut erased, &fields);
        assert_eq!(event.actor_id, None);
        assert_eq!(event.metadata, serde_json::json!({"sessions_ended": 2}));
        assert_eq!(erased.actor_id.as_deref(), Some(pseudonym(&key, person).as_str()));
        assert!(!serde_json::to_string(&erased).unwrap().contains("ann@example.com"));
        assert_eq!(row_hash_v2(&key, &GENESIS, 1, id, &event, &erased), before);
        // A changed commitment, or a kept field changed, no longer matches.
        let mut forged = erased.clone();
        forged.ip = Some(hex::encode(key.commit("ip", b"198.51.100.1")));
        assert_ne!(row_hash_v2(&key, &GENESIS, 1, id, &event, &forged), before);
        let mut edited = event.clone();
        edited.metadata = serde_json::json!({"sessions_ended": 3});
        assert_ne!(row_hash_v2(&key, &GENESIS, 1, id, &edited, &erased), before);
        // A value written back beside its commitment does not pass for the erased row.
        let mut put_back = event.clone();
        put_back.ip = Some("198.51.100.1".into());
        assert_ne!(row_hash_v2(&key, &GENESIS, 1, id, &put_back, &erased), before);
        let mut put_back = event.clone();
        put_back.metadata = serde_json::json!({"sessions_ended": 2, "email": "eve@example.com"});
        assert_ne!(row_hash_v2(&key, &GENESIS, 1, id, &put_back, &erased), before);
        // Another key cannot produce the same commitments.
        let other = AuditKey::new(b"not the audit key, but as long!!".to_vec());
        assert_ne!(pseudonym(&other, person), pseudonym(&key, person));
        // The verifier checks version-2 rows with the key.
        let row = StoredRow {
            seq: 1,
            id,
            event,
            version: HashVersion::V2,
            erased,
            prev_hash: GENESIS.to_vec(),
            hash: before.to_vec(),
        };
        assert_eq!(verify(None, Vec::new(), vec![row.clone()]).unwrap().rows, 1);
        let mut claimed_v1 = row;
        claimed_v1.version = HashVersion::V1;
        assert_eq!(verify(None, Vec::new(), vec![claimed_v1]), Err(ChainBreak::Edited { seq: 1 }));
    }
}
