//! Stores for the crate's own unit tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

use crate::board::{BoardStore, Change, CommandOutput, IdempotentResult, LoadedBoard};
use crate::domain::{BoardEvent, Update};
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
}
