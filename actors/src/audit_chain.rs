//! The hash chain over audit rows.
//!
//! Row `n` stores `hash_n = SHA-256(prev_hash ‖ canonical(row_n))` with `prev_hash = hash_{n-1}`
//! (or [`GENESIS`] for the first row ever written). Editing, inserting or deleting a row breaks
//! every later link. A retention purge records the last purged row's hash as the anchor, so the
//! remaining chain still verifies from there.
//!
//! The canonical form length-prefixes every field and serializes metadata with sorted keys, so it
//! is identical whether the row was read back from Postgres `jsonb` or SQLite text.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::AuditEvent;

/// The `prev_hash` of the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash of the row at `seq` with id `id` holding `event`, chained to `prev_hash`.
pub fn row_hash(prev_hash: &[u8], seq: i64, id: Uuid, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"boardroom.audit.v1");
    field(&mut hasher, prev_hash);
    field(&mut hasher, &seq.to_be_bytes());
    field(&mut hasher, id.as_bytes());
    field(&mut hasher, event.action.as_str().as_bytes());
    optional(&mut hasher, event.organization_id.as_ref().map(|u| u.as_bytes().as_slice()));
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

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn optional(hasher: &mut Sha256, bytes: Option<&[u8]>) {
    match bytes {
        None => hasher.update([0u8]),
        Some(bytes) => {
            hasher.update([1u8]);
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
    /// Content.
    pub event: AuditEvent,
    /// Stored link to the previous row.
    pub prev_hash: Vec<u8>,
    /// Stored hash of this row.
    pub hash: Vec<u8>,
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
}

/// Checks `rows` (in `seq` order) from `anchor`: the hash the first row must link to.
/// Returns the number of rows checked.
pub fn verify<I>(anchor: &[u8], rows: I) -> Result<u64, ChainBreak>
where
    I: IntoIterator<Item = StoredRow>,
{
    let mut expected_prev = anchor.to_vec();
    let mut checked = 0;
    for row in rows {
        if row.prev_hash != expected_prev {
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        let computed = row_hash(&row.prev_hash, row.seq, row.id, &row.event);
        if computed.as_slice() != row.hash.as_slice() {
            return Err(ChainBreak::Edited { seq: row.seq });
        }
        expected_prev = row.hash;
        checked += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditAction;

    fn chain(n: i64) -> Vec<StoredRow> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let mut event = AuditEvent::new(AuditAction::LoginSucceeded);
                event.target = Some(format!("user-{seq}"));
                event.metadata = serde_json::json!({"b": 1, "a": [seq]});
                let id = Uuid::now_v7();
                let hash = row_hash(&prev, seq, id, &event).to_vec();
                let row = StoredRow { seq, id, event, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                row
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&GENESIS, chain(5)), Ok(5));
    }

    #[test]
    fn edited_row_is_caught() {
        let mut rows = chain(5);
        rows[2].event.target = Some("someone-else".into());
        assert_eq!(verify(&GENESIS, rows), Err(ChainBreak::Edited { seq: 3 }));
    }

    #[test]
    fn removed_row_is_caught() {
        let mut rows = chain(5);
        rows.remove(1);
        assert_eq!(verify(&GENESIS, rows), Err(ChainBreak::Unlinked { seq: 3 }));
    }

    #[test]
    fn purged_prefix_verifies_from_its_anchor() {
        let rows = chain(5);
        let anchor = rows[1].hash.clone();
        assert_eq!(verify(&anchor, rows.into_iter().skip(2)), Ok(3));
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
}
