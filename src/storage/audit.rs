//! The audit log's rows: appended by the audit actor as a hash chain, read by admins, verified
//! by `boardroom audit verify`, and purged past retention behind a sealed anchor. Also the
//! entries the chain refused (`audit_dead_letters`) and the sealed checkpoints over the chain
//! (`audit_checkpoints`).

use boardroom_actors::audit::{AppendError, AuditAction, AuditEvent, AuditStore, Checkpointed};
use boardroom_actors::audit_chain::{
    AuditKey, ChainBreak, Erased, HashVersion, Seal, SealKind, StoredRow, Verified, Verifier,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{new_id, now, StorageError, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction, write_on_pool};

/// A stored audit row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Position in the chain.
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// Organization, if any.
    pub organization_id: Option<Uuid>,
    /// Who acted.
    pub actor_id: Option<Uuid>,
    /// What happened (stored name).
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client User-Agent.
    pub user_agent: Option<String>,
    /// Whether a superadmin bypass allowed it.
    pub bypass: bool,
    /// Extra detail.
    pub metadata: Json<serde_json::Value>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Link to the previous row.
    pub prev_hash: Vec<u8>,
    /// This row's hash.
    pub hash: Vec<u8>,
    /// How the hash covers the fields (`HashVersion`).
    pub hash_version: i32,
    /// Commitments of the fields an erasure took out (`Erased`), if any.
    pub erased: Option<Json<Erased>>,
}

pub(super) const AUDIT_COLUMNS: &str =
    "seq, id, organization_id, actor_id, action, target, ip, user_agent, \
    bypass, metadata, created_at, prev_hash, hash, hash_version, erased";

impl AuditRow {
    /// The row as the chain sees it. An action name this build does not know is kept as
    /// unverifiable: it is reported as an edit.
    pub(super) fn into_stored(self) -> Result<StoredRow, i64> {
        let action = AuditAction::parse(&self.action).ok_or(self.seq)?;
        let version = HashVersion::parse(self.hash_version).ok_or(self.seq)?;
        Ok(StoredRow {
            seq: self.seq,
            id: self.id,
            event: AuditEvent {
                action,
                organization_id: self.organization_id,
                actor_id: self.actor_id,
                target: self.target,
                ip: self.ip,
                user_agent: self.user_agent,
                bypass: self.bypass,
                metadata: self.metadata.0,
                at: self.created_at,
            },
            version,
            erased: self.erased.map(|e| e.0).unwrap_or_default(),
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Postgres advisory lock serializing appends to the chain: the audit actor and board commits
/// (and several nodes) append in their own transactions, and each row's hash needs the
/// previous row. SQLite transactions begin `IMMEDIATE`, which serializes them already.
pub(super) const CHAIN_LOCK: i64 = 0x4175_6469_7443_6861;

/// Takes the chain's lock (Postgres) and reads its tail on `$conn`: the newest row's `seq` and
/// hash, else the purge anchor's, else `None` for an empty log. Evaluates to
/// `Option<(i64, Vec<u8>)>`. A macro because each backend's connection is its own type.
macro_rules! lock_chain_tail {
    ($backend:expr, $conn:ident) => {{
        if $backend == $crate::storage::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind($crate::storage::audit::CHAIN_LOCK)
                .execute(&mut *$conn)
                .await?;
        }
        let last: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *$conn)
                .await?;
        match last {
            Some(last) => Some(last),
            None => {
                sqlx::query_as::<_, (i64, Vec<u8>)>(
                    "SELECT seq, hash FROM audit_anchor WHERE id = 1",
                )
                .fetch_optional(&mut *$conn)
                .await?
            }
        }
    }};
}
pub(super) use lock_chain_tail;

/// Appends `$events` (an iterator of `&AuditEvent`) to the chain on `$conn`, inside the caller's
/// transaction, so the rows commit or vanish with it. Every entry is bounded by
/// [`AuditEvent::sanitize`] first, whichever path it came by (the audit actor, a board commit,
/// the CLI), and hashed as stored: as a version-2 row (erasable) when `$key` (an
/// `Option<&AuditKey>`, the store's) is there, else as a version-1 row. Written as a macro
/// because each backend's connection is its own type; `transaction!` expands its body once per
/// backend.
macro_rules! append_to_chain {
    ($backend:expr, $conn:ident, $events:expr, $key:expr) => {{
        let (mut seq, mut prev) = $crate::storage::audit::lock_chain_tail!($backend, $conn)
            .unwrap_or((0, boardroom_actors::audit_chain::GENESIS.to_vec()));
        for event in $events {
            let event: &boardroom_actors::audit::AuditEvent = event;
            let event = event.clone().sanitized();
            seq += 1;
            let id = $crate::storage::new_id();
            let (version, hash) = match $key.as_deref() {
                Some(key) => (
                    boardroom_actors::audit_chain::HashVersion::V2,
                    boardroom_actors::audit_chain::row_hash_v2(
                        key,
                        &prev,
                        seq,
                        id,
                        &event,
                        &Default::default(),
                    ),
                ),
                None => (
                    boardroom_actors::audit_chain::HashVersion::V1,
                    boardroom_actors::audit_chain::row_hash(&prev, seq, id, &event),
                ),
            };
            let hash = hash.to_vec();
            sqlx::query(
                "INSERT INTO audit_log (seq, id, organization_id, actor_id, action, target, ip, \
                 user_agent, bypass, metadata, created_at, prev_hash, hash, hash_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(seq)
            .bind(id)
            .bind(event.organization_id)
            .bind(event.actor_id)
            .bind(event.action.as_str())
            .bind(event.target.as_deref())
            .bind(event.ip.as_deref())
            .bind(event.user_agent.as_deref())
            .bind(event.bypass)
            .bind(sqlx::types::Json(&event.metadata))
            .bind(event.at)
            .bind(&prev)
            .bind(&hash)
            .bind(version.number())
            .execute(&mut *$conn)
            .await?;
            prev = hash;
        }
    }};
}
pub(super) use append_to_chain;

/// A failed audit write as the actor needs to see it: the rows refused, or the store down.
fn append_error(err: StorageError) -> AppendError {
    match err.data_refusal() {
        Some(reason) => AppendError::Refused(reason),
        None => AppendError::Unavailable(err.into()),
    }
}

/// What sealing a checkpoint found.
enum Sealed {
    /// A checkpoint now vouches for the newest row (`None`: nothing new to seal).
    Done(Checkpointed),
    /// The chain ends before the newest checkpoint: rows were removed.
    ShorterThan { end: i64, signed: i64, restored: bool },
}

#[async_trait::async_trait]
impl AuditStore for Store {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), AppendError> {
        let backend = self.backend();
        let key = self.audit_key().cloned();
        let appended: StorageResult<()> = async {
            transaction!(self, conn => {
                append_to_chain!(backend, conn, events, key);
                Ok(())
            })
        }
        .await;
        appended.map_err(append_error)
    }

    async fn set_aside(&self, event: &AuditEvent, reason: &str) -> Result<(), AppendError> {
        // As JSON text, not jsonb: the entry is kept whatever the chain refused in it.
        let entry =
            serde_json::to_string(event).map_err(|e| AppendError::Refused(e.to_string()))?;
        write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO audit_dead_letters (id, action, entry, reason, set_aside_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new_id())
            .bind(event.action.as_str())
            .bind(&entry)
            .bind(reason)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|e| append_error(e.into()))
    }

    async fn checkpoint(
        &self,
        key: &AuditKey,
        last: Option<&Seal>,
    ) -> anyhow::Result<Checkpointed> {
        let backend = self.backend();
        let sealed = transaction!(self, conn => {
            let Some((seq, hash)) = lock_chain_tail!(backend, conn) else {
                return Ok(Sealed::Done(Checkpointed::default()));
            };
            let newest: Option<(i64,)> =
                sqlx::query_as("SELECT seq FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            let anchor: Option<(i64,)> = sqlx::query_as("SELECT seq FROM audit_anchor WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await?;
            // Put back the last checkpoint this actor sealed if it is gone and its row was not
            // purged: deleting checkpoints must not make a rewrite or a cut tail pass.
            let purged_through = anchor.map_or(0, |(seq,)| seq);
            let restore = last.filter(|last| last.seq > purged_through);
            let signed = newest.map(|(signed,)| signed).max(restore.map(|last| last.seq));
            let new = match signed {
                Some(signed) if signed >= seq => None,
                _ => Some(Seal::sign(key, SealKind::Checkpoint, seq, hash, now())),
            };
            let mut inserted = Vec::with_capacity(2);
            for seal in restore.into_iter().chain(new.as_ref()) {
                let done = sqlx::query(
                    "INSERT INTO audit_checkpoints (seq, hash, created_at, mac) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING",
                )
                .bind(seal.seq)
                .bind(&seal.hash)
                .bind(seal.at)
                .bind(&seal.mac)
                .execute(&mut *conn)
                .await?;
                inserted.push(done.rows_affected() > 0);
            }
            let restored = restore.is_some() && inserted.first() == Some(&true);
            Ok(match signed {
                Some(signed) if signed > seq => Sealed::ShorterThan { end: seq, signed, restored },
                _ => Sealed::Done(Checkpointed { sealed: new, restored }),
            })
        })?;
        match sealed {
            Sealed::Done(done) => Ok(done),
            // Sealing this shorter chain would not hide the cut (the newer checkpoint stays),
            // but it must be said aloud, every time, until someone looks.
            Sealed::ShorterThan { end, signed, restored } => anyhow::bail!(
                "the audit chain ends at row {end}, before its newest checkpoint (row {signed}{}): \
                 rows were removed; run `boardroom audit verify`",
                if restored { ", which had been deleted and is put back" } else { "" }
            ),
        }
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>, key: &AuditKey) -> anyhow::Result<u64> {
        let backend = self.backend();
        let purged = transaction!(self, conn => {
            // Appends read the anchor when no row is left: purge under the same lock.
            lock_chain_tail!(backend, conn);
            let last_old: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, hash FROM audit_log WHERE created_at < $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(cutoff)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((seq, hash)) = last_old else { return Ok(0) };
            let anchor = Seal::sign(key, SealKind::Anchor, seq, hash, now());
            sqlx::query(
                "INSERT INTO audit_anchor (id, seq, hash, purged_at, mac) VALUES (1, $1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, purged_at = $3, mac = $4",
            )
            .bind(anchor.seq)
            .bind(&anchor.hash)
            .bind(anchor.at)
            .bind(&anchor.mac)
            .execute(&mut *conn)
            .await?;
            let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
                .bind(seq)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            // Checkpoints over purged rows can no longer be compared with anything.
            sqlx::query("DELETE FROM audit_checkpoints WHERE seq < $1")
                .bind(seq)
                .execute(&mut *conn)
                .await?;
            Ok(deleted)
        })?;
        Ok(purged)
    }
}

/// Outcome of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every row links and matches its hash, every seal matches, and the chain reaches its
    /// newest checkpoint.
    Intact(Verified),
    /// The chain breaks here.
    Broken(ChainBreak),
}

type SealRow = (i64, Vec<u8>, DateTime<Utc>, Option<Vec<u8>>);

/// Walks the chain's rows after `start` through `verifier`, a page at a time from `page` (the
/// rows after a `seq`, in order), to its end; the break, if any.
async fn walk_chain(
    mut verifier: Verifier,
    start: i64,
    mut page: impl AsyncFnMut(i64) -> StorageResult<Vec<AuditRow>>,
) -> StorageResult<Result<Verified, ChainBreak>> {
    let mut after = start;
    loop {
        let rows = page(after).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in rows {
            let checked = match row.into_stored() {
                Ok(row) => verifier.check(row),
                Err(seq) => Err(ChainBreak::Edited { seq }),
            };
            if let Err(brk) = checked {
                return Ok(Err(brk));
            }
        }
    }
    Ok(verifier.finish())
}

fn seal_of((seq, hash, at, mac): SealRow) -> Seal {
    Seal { seq, hash, at, mac: mac.unwrap_or_default() }
}

/// What [`Store::reseal_legacy_audit_rows`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resealed {
    /// Every row was erasable already.
    Nothing,
    /// The chain verified, and its version-1 rows were re-hashed as version 2 (with every later
    /// link and the checkpoints over them re-sealed).
    Rows(u64),
    /// The chain does not verify: left as it is (re-sealing would launder the break).
    Broken(ChainBreak),
}

impl Store {
    /// Re-hashes the rows written before erasable rows existed (hash version 1: the hash covers
    /// the raw fields) as version-2 rows (keyed commitments: `audit_chain::row_hash_v2`), so an
    /// erasure can reach them. Only a chain that verifies is re-sealed, in one transaction under
    /// the chain's lock: the rows are re-hashed in order (every later row's link moves with
    /// them), each checkpoint over them is sealed again with the same time, and an
    /// `audit.resealed` row records it. The purge anchor names a purged row and stays. Run at
    /// start; a no-op once every row is version 2.
    pub async fn reseal_legacy_audit_rows(&self, key: &AuditKey) -> StorageResult<Resealed> {
        let backend = self.backend();
        let arc_key = Some(std::sync::Arc::new(key.clone()));
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000");
        transaction!(self, conn => {
            lock_chain_tail!(backend, conn);
            let (legacy,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM audit_log WHERE hash_version = 1")
                    .fetch_one(&mut *conn)
                    .await?;
            if legacy == 0 {
                return Ok(Resealed::Nothing);
            }
            let anchor: Option<SealRow> =
                sqlx::query_as("SELECT seq, hash, purged_at, mac FROM audit_anchor WHERE id = 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            let checkpoints: Vec<SealRow> =
                sqlx::query_as("SELECT seq, hash, created_at, mac FROM audit_checkpoints")
                    .fetch_all(&mut *conn)
                    .await?;
            let anchor = anchor.map(seal_of);
            let checkpoints: Vec<Seal> = checkpoints.into_iter().map(seal_of).collect();
            let start = anchor.as_ref().map_or(0, |a| a.seq);
            let verifier = match Verifier::new(key, anchor.as_ref(), checkpoints.clone()) {
                Ok(verifier) => verifier,
                Err(brk) => return Ok(Resealed::Broken(brk)),
            };
            let walked = walk_chain(verifier, start, async |after| {
                Ok(sqlx::query_as(&sql).bind(after).fetch_all(&mut *conn).await?)
            });
            if let Err(brk) = walked.await? {
                return Ok(Resealed::Broken(brk));
            }
            let mut prev = anchor.as_ref().map_or_else(
                || boardroom_actors::audit_chain::GENESIS.to_vec(),
                |a| a.hash.clone(),
            );
            let mut resealed = 0u64;
            let mut new_hashes = std::collections::HashMap::new();
            let sealed: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
            let mut after = start;
            loop {
                let page: Vec<AuditRow> =
                    sqlx::query_as(&sql).bind(after).fetch_all(&mut *conn).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for row in page {
                    let Ok(stored) = row.into_stored() else {
                        return Err(StorageError::Rule("an audit row changed while re-sealing"));
                    };
                    let hash = boardroom_actors::audit_chain::row_hash_v2(
                        key, &prev, stored.seq, stored.id, &stored.event, &stored.erased,
                    )
                    .to_vec();
                    if stored.version != HashVersion::V2 || stored.prev_hash != prev || stored.hash != hash {
                        sqlx::query(
                            "UPDATE audit_log SET prev_hash = $2, hash = $3, hash_version = 2 \
                             WHERE seq = $1",
                        )
                        .bind(stored.seq)
                        .bind(&prev)
                        .bind(&hash)
                        .execute(&mut *conn)
                        .await?;
                        resealed += 1;
                    }
                    if sealed.contains(&stored.seq) {
                        new_hashes.insert(stored.seq, hash.clone());
                    }
                    prev = hash;
                }
            }
            for checkpoint in checkpoints.iter().filter(|c| c.seq > start) {
                let Some(hash) = new_hashes.remove(&checkpoint.seq) else { continue };
                let seal = Seal::sign(key, SealKind::Checkpoint, checkpoint.seq, hash, checkpoint.at);
                sqlx::query("UPDATE audit_checkpoints SET hash = $2, mac = $3 WHERE seq = $1")
                    .bind(seal.seq)
                    .bind(&seal.hash)
                    .bind(&seal.mac)
                    .execute(&mut *conn)
                    .await?;
            }
            let mut event = AuditEvent::new(AuditAction::AuditResealed);
            event.metadata = serde_json::json!({ "legacy_rows": legacy, "rows_rehashed": resealed });
            append_to_chain!(backend, conn, [&event], arc_key);
            Ok(Resealed::Rows(resealed))
        })
    }

    /// Verifies the whole audit chain, from the purge anchor (or the start) to the newest row,
    /// against the checkpoints sealed with `key`.
    pub async fn verify_audit_chain(&self, key: &AuditKey) -> StorageResult<ChainReport> {
        let anchor: Option<SealRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, hash, purged_at, mac FROM audit_anchor WHERE id = 1")
                .fetch_optional(pool)
                .await
        })?;
        let checkpoints: Vec<SealRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, hash, created_at, mac FROM audit_checkpoints")
                .fetch_all(pool)
                .await
        })?;
        let anchor = anchor.map(seal_of);
        let checkpoints = checkpoints.into_iter().map(seal_of).collect();
        let verifier = match Verifier::new(key, anchor.as_ref(), checkpoints) {
            Ok(verifier) => verifier,
            Err(brk) => return Ok(ChainReport::Broken(brk)),
        };
        let start = anchor.map_or(0, |a| a.seq);
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000");
        let walked = walk_chain(verifier, start, async |after| {
            Ok(on_pool!(self, pool => {
                sqlx::query_as::<_, AuditRow>(&sql).bind(after).fetch_all(pool).await
            })?)
        });
        Ok(match walked.await? {
            Ok(verified) => ChainReport::Intact(verified),
            Err(brk) => ChainReport::Broken(brk),
        })
    }
}

impl TenantStore<'_> {
    /// The organization's audit rows, newest first, before `cursor` (a `seq`), optionally of
    /// one action.
    pub async fn audit_entries(
        &self,
        before: Option<i64>,
        action: Option<&str>,
        limit: i64,
    ) -> StorageResult<Vec<AuditRow>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE organization_id = $1 \
             AND ($2 IS NULL OR seq < $2) AND ($3 IS NULL OR action = $3) \
             ORDER BY seq DESC LIMIT $4"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, AuditRow>(&sql)
                .bind(self.org_id())
                .bind(before)
                .bind(action)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?)
    }
}
