//! Stores for the crate's own unit tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::audit::{AppendError, AuditEvent, AuditStore, Checkpointed};
use crate::audit_chain::{self, AuditKey, ChainBreak, Seal, SealKind, StoredRow, Verified};

use crate::board::{BoardStore, Change, CommandOutput, IdempotentResult, LoadedBoard};
use crate::domain::{Attachment, BoardEvent, Update};
use crate::org::{LoadedOrg, OrgStore};
use crate::roles::OrgRole;

/// A board store holding at most one board, whose commits fail while `failing` is set.
#[derive(Default)]
pub struct TestBoards {
    /// The board, if any.
    pub board: Option<LoadedBoard>,
    /// Commits fail while set.
    pub failing: AtomicBool,
    /// Idempotency keys of committed commands, in order.
    pub committed_keys: Mutex<Vec<String>>,
}

impl TestBoards {
    /// A store holding `board`.
    pub fn holding(board: LoadedBoard) -> Self {
        TestBoards { board: Some(board), ..TestBoards::default() }
    }
}

#[async_trait::async_trait]
impl BoardStore for TestBoards {
    async fn load_board(&self, _: Uuid, _: Uuid) -> anyhow::Result<Option<LoadedBoard>> {
        Ok(self.board.clone())
    }
    async fn commit(
        &self,
        _: Uuid,
        _: Uuid,
        _: i64,
        _: &[Change],
        _: &[BoardEvent],
        idempotent: &[IdempotentResult],
    ) -> anyhow::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            anyhow::bail!("injected commit failure");
        }
        let mut keys = self.committed_keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.extend(idempotent.iter().map(|i| i.key.clone()));
        Ok(())
    }
    async fn board_org(&self, _: Uuid) -> anyhow::Result<Option<Uuid>> {
        Ok(self.board.as_ref().map(|b| b.board.organization_id))
    }
    async fn update(&self, _: Uuid, _: Uuid, _: Uuid, _: Uuid) -> anyhow::Result<Option<Update>> {
        Ok(None)
    }
    async fn attachment(&self, _: Uuid, _: Uuid, _: Uuid) -> anyhow::Result<Option<Attachment>> {
        Ok(None)
    }
    async fn attachment_count(&self, _: Uuid, _: Uuid, _: Uuid) -> anyhow::Result<u32> {
        Ok(0)
    }
    async fn idempotent_result(
        &self,
        _: Uuid,
        _: Uuid,
        _: Uuid,
        _: &str,
    ) -> anyhow::Result<Option<CommandOutput>> {
        Ok(None)
    }
}

/// An organization store with no organizations.
pub struct NoOrgs;

#[async_trait::async_trait]
impl OrgStore for NoOrgs {
    async fn load_org(&self, _: Uuid) -> anyhow::Result<Option<LoadedOrg>> {
        Ok(None)
    }
    async fn insert_member(&self, _: Uuid, _: Uuid, _: OrgRole) -> anyhow::Result<bool> {
        Ok(false)
    }
    async fn update_member(&self, _: Uuid, _: Uuid, _: Option<OrgRole>) -> anyhow::Result<()> {
        Ok(())
    }
    async fn apply_billing(
        &self,
        _: Uuid,
        _: &crate::billing::BillingEvent,
    ) -> anyhow::Result<crate::billing::BillingOutcome> {
        Ok(crate::billing::BillingOutcome::Duplicate)
    }
    async fn usage(&self, _: Uuid) -> anyhow::Result<crate::plans::Usage> {
        Ok(crate::plans::Usage::default())
    }
}

/// The audit key of unit tests.
pub fn audit_key() -> Arc<AuditKey> {
    Arc::new(AuditKey::new(b"unit-test audit key, 32 bytes ok".to_vec()))
}

/// An audit store keeping the chain in memory. Like a database with a constraint, it refuses
/// any batch holding an entry whose target is in `refused`; while `down` is set, every call
/// fails as an unreachable database would; `panic_next` makes the next append panic, once.
#[derive(Default)]
pub struct TestAudit {
    /// Targets refused.
    pub refused: Vec<String>,
    /// Every call fails while set.
    pub down: AtomicBool,
    /// The next append panics (and clears this).
    pub panic_next: AtomicBool,
    /// The chain.
    pub rows: Mutex<Vec<StoredRow>>,
    /// Entries set aside, with their reasons.
    pub dead_letters: Mutex<Vec<(AuditEvent, String)>>,
    /// Sealed checkpoints.
    pub checkpoints: Mutex<Vec<Seal>>,
}

impl TestAudit {
    /// A store refusing entries with these targets.
    pub fn refusing(targets: &[&str]) -> Self {
        TestAudit { refused: targets.iter().map(|t| (*t).to_owned()).collect(), ..Self::default() }
    }

    /// The targets of the stored rows, in chain order.
    pub fn targets(&self) -> Vec<String> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.iter().filter_map(|r| r.event.target.clone()).collect()
    }

    /// Verifies the chain against its checkpoints.
    pub fn verify(&self) -> Result<Verified, ChainBreak> {
        let checkpoints = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut verifier = audit_chain::Verifier::new(&audit_key(), None, checkpoints)?;
        for row in self.rows.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            verifier.check(row.clone())?;
        }
        verifier.finish()
    }

    fn reachable(&self) -> anyhow::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            anyhow::bail!("injected outage");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl AuditStore for TestAudit {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), AppendError> {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("injected failure");
        }
        self.reachable()?;
        if events.iter().any(|e| e.target.as_ref().is_some_and(|t| self.refused.contains(t))) {
            return Err(AppendError::Refused("target refused by a constraint".into()));
        }
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            let (seq, prev_hash) = match rows.last() {
                Some(last) => (last.seq + 1, last.hash.clone()),
                None => (1, audit_chain::GENESIS.to_vec()),
            };
            let id = Uuid::now_v7();
            let hash = audit_chain::row_hash(&prev_hash, seq, id, event).to_vec();
            rows.push(StoredRow {
                seq,
                id,
                event: event.clone(),
                version: audit_chain::HashVersion::V1,
                erased: audit_chain::Erased::default(),
                prev_hash,
                hash,
            });
        }
        Ok(())
    }

    async fn set_aside(&self, event: &AuditEvent, reason: &str) -> Result<(), AppendError> {
        self.reachable()?;
        let mut dead = self.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
        dead.push((event.clone(), reason.to_owned()));
        Ok(())
    }

    async fn checkpoint(&self, key: &AuditKey, _: Option<&Seal>) -> anyhow::Result<Checkpointed> {
        self.reachable()?;
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let mut checkpoints = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = rows.last() else { return Ok(Checkpointed::default()) };
        if checkpoints.last().is_some_and(|c| c.seq >= last.seq) {
            return Ok(Checkpointed::default());
        }
        let at = chrono::Utc::now();
        let seal = Seal::sign(key, SealKind::Checkpoint, last.seq, last.hash.clone(), at);
        checkpoints.push(seal.clone());
        Ok(Checkpointed { sealed: Some(seal), restored: false })
    }

    async fn purge_older_than(
        &self,
        _: chrono::DateTime<chrono::Utc>,
        _: &AuditKey,
    ) -> anyhow::Result<u64> {
        Ok(0)
    }
}

/// Stands in for the supervisor of an org registry a test does not use.
struct Bystander;

impl ractor::Actor for Bystander {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

/// An org registry over [`NoOrgs`], for board actors whose tests name no other member.
pub async fn unused_orgs() -> Arc<crate::org::Orgs> {
    let (bystander, _) = ractor::Actor::spawn(None, Bystander, ()).await.unwrap();
    Arc::new(crate::org::Orgs::new(
        Arc::new(NoOrgs),
        bystander.get_cell(),
        std::time::Duration::from_secs(60),
    ))
}
