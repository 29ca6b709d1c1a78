//! The audit log's rows: appended by the audit actor as a hash chain, read by admins, verified
//! by `boardroom audit verify`, and purged past retention behind a stored anchor.

use boardroom_actors::audit::{AuditAction, AuditEvent, AuditStore};
use boardroom_actors::audit_chain::{self, ChainBreak, StoredRow, GENESIS};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{now, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction};

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
}

const AUDIT_COLUMNS: &str = "seq, id, organization_id, actor_id, action, target, ip, user_agent, \
    bypass, metadata, created_at, prev_hash, hash";

impl AuditRow {
    /// The row as the chain sees it. An action name this build does not know is kept as
    /// unverifiable: it is reported as an edit.
    fn into_stored(self) -> Result<StoredRow, i64> {
        let action = AuditAction::parse(&self.action).ok_or(self.seq)?;
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
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Postgres advisory lock serializing appends to the chain: the audit actor and board commits
/// (and several nodes) append in their own transactions, and each row's hash needs the
/// previous row. SQLite transactions begin `IMMEDIATE`, which serializes them already.
pub(super) const CHAIN_LOCK: i64 = 0x4175_6469_7443_6861;

/// Appends `$events` (an iterator of `&AuditEvent`) to the chain on `$conn`, inside the caller's
/// transaction, so the rows commit or vanish with it. Written as a macro because each backend's
/// connection is its own type; `transaction!` expands its body once per backend.
macro_rules! append_to_chain {
    ($backend:expr, $conn:ident, $events:expr) => {{
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
        let (mut seq, mut prev) = match last {
            Some(last) => last,
            None => sqlx::query_as::<_, (i64, Vec<u8>)>(
                "SELECT seq, hash FROM audit_anchor WHERE id = 1",
            )
            .fetch_optional(&mut *$conn)
            .await?
            .unwrap_or((0, boardroom_actors::audit_chain::GENESIS.to_vec())),
        };
        for event in $events {
            let event: &boardroom_actors::audit::AuditEvent = event;
            seq += 1;
            let id = $crate::storage::new_id();
            let hash = boardroom_actors::audit_chain::row_hash(&prev, seq, id, event).to_vec();
            sqlx::query(
                "INSERT INTO audit_log (seq, id, organization_id, actor_id, action, target, ip, \
                 user_agent, bypass, metadata, created_at, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
            .execute(&mut *$conn)
            .await?;
            prev = hash;
        }
    }};
}
pub(super) use append_to_chain;

#[async_trait::async_trait]
impl AuditStore for Store {
    async fn append(&self, events: &[AuditEvent]) -> anyhow::Result<()> {
        let backend = self.backend();
        transaction!(self, conn => {
            append_to_chain!(backend, conn, events);
            Ok(())
        })?;
        Ok(())
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        let purged = transaction!(self, conn => {
            let last_old: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, hash FROM audit_log WHERE created_at < $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(cutoff)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((seq, hash)) = last_old else { return Ok(0) };
            sqlx::query(
                "INSERT INTO audit_anchor (id, seq, hash, purged_at) VALUES (1, $1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, purged_at = $3",
            )
            .bind(seq)
            .bind(&hash)
            .bind(now())
            .execute(&mut *conn)
            .await?;
            let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
                .bind(seq)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(deleted)
        })?;
        Ok(purged)
    }
}

/// Outcome of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every row links and matches its hash.
    Intact {
        /// Rows checked.
        rows: u64,
    },
    /// The chain breaks here.
    Broken(ChainBreak),
}

impl Store {
    /// Verifies the whole audit chain, from the purge anchor (or the start) to the newest row.
    pub async fn verify_audit_chain(&self) -> StorageResult<ChainReport> {
        let anchor: Option<(i64, Vec<u8>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                .fetch_optional(pool)
                .await
        })?;
        let (mut after, mut expected_prev) = anchor.unwrap_or((0, GENESIS.to_vec()));
        let mut total = 0;
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000");
        loop {
            let page: Vec<AuditRow> = on_pool!(self, pool => {
                sqlx::query_as::<_, AuditRow>(&sql).bind(after).fetch_all(pool).await
            })?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let mut rows = Vec::with_capacity(page.len());
            for row in page {
                match row.into_stored() {
                    Ok(row) => rows.push(row),
                    Err(seq) => return Ok(ChainReport::Broken(ChainBreak::Edited { seq })),
                }
            }
            let next_prev = rows.last().map(|r| r.hash.clone()).unwrap_or_default();
            match audit_chain::verify(&expected_prev, rows) {
                Ok(n) => total += n,
                Err(brk) => return Ok(ChainReport::Broken(brk)),
            }
            expected_prev = next_prev;
        }
        Ok(ChainReport::Intact { rows: total })
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
