//! The root supervisor.
//!
//! [`Runtime::start`] spawns the root supervisor, which spawns its children linked to it. When
//! a child fails, the supervisor starts a fresh one from the same arguments and points the
//! child's handle at it, so callers holding a handle never notice. [`Runtime::shutdown`] flushes
//! the children (nothing queued is lost) and stops the tree.
//!
//! Children: the audit actor, the org actors (through the [`Orgs`] registry), the board actors
//! (through the [`Boards`] registry) and, when the server provides a backend, the webhook actor,
//! which listens on the same [`EventBus`] the boards publish on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::audit::{AuditActor, AuditArgs, AuditLog, AuditStore};
use crate::audit_chain::AuditKey;
use crate::board::BoardStore;
use crate::boards::{board_of, Boards};
use crate::bounds::BoardLimits;
use crate::event_bus::EventBus;
use crate::org::{OrgStore, Orgs};
use crate::plans::PlanTable;
use crate::remote::Placement;
use crate::webhook::{WebhookActor, WebhookArgs, WebhookBackend, Webhooks};

/// What the supervisor needs to start its children.
#[derive(Clone)]
pub struct Dependencies {
    /// Storage of the audit log.
    pub audit_store: Arc<dyn AuditStore>,
    /// The key that seals the audit log's checkpoints.
    pub audit_key: Arc<AuditKey>,
    /// Storage of boards.
    pub board_store: Arc<dyn BoardStore>,
    /// Storage of organizations' memberships.
    pub org_store: Arc<dyn OrgStore>,
    /// How long a board actor may sit idle before it stops.
    pub board_idle_timeout: std::time::Duration,
    /// How much each board may hold.
    pub board_limits: BoardLimits,
    /// What each plan allows an organization to hold.
    pub plan_limits: PlanTable,
    /// The webhook outbox and deliverer; no webhook actor runs without one.
    pub webhooks: Option<WebhookDependencies>,
    /// Where boards' and organizations' actors run, with several nodes; `None`: all here.
    pub placement: Option<Arc<dyn Placement>>,
}

/// What the webhook actor needs.
#[derive(Clone)]
pub struct WebhookDependencies {
    /// The outbox and deliverer.
    pub backend: Arc<dyn WebhookBackend>,
    /// How often due retries are looked for.
    pub poll_interval: std::time::Duration,
}

/// The root supervisor.
pub struct RootSupervisor;

/// Messages of the root supervisor (it only supervises).
pub enum SupervisorMessage {}

/// State of the root supervisor.
pub struct SupervisorState {
    deps: Dependencies,
    audit_args: AuditArgs,
    audit: AuditLog,
    boards: Arc<Boards>,
    orgs: Arc<Orgs>,
    webhooks: Webhooks,
    restarts: Arc<AtomicU64>,
}

/// What the supervisor hands back once started.
pub struct Started {
    audit: AuditLog,
    boards: Arc<Boards>,
    orgs: Arc<Orgs>,
    webhooks: Webhooks,
    restarts: Arc<AtomicU64>,
}

impl SupervisorState {
    fn webhook_args(&self) -> Option<WebhookArgs> {
        let deps = self.deps.webhooks.as_ref()?;
        Some(WebhookArgs {
            backend: deps.backend.clone(),
            bus: self.boards.bus().clone(),
            audit: self.audit.clone(),
            boards: self.boards.clone(),
            orgs: self.orgs.clone(),
            poll_interval: deps.poll_interval,
        })
    }
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = (Dependencies, tokio::sync::oneshot::Sender<Started>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, ready): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let audit_args = AuditArgs::new(deps.audit_store.clone(), deps.audit_key.clone());
        let (audit_actor, _) =
            Actor::spawn_linked(None, AuditActor, audit_args.clone(), myself.get_cell()).await?;
        let audit = AuditLog::new(audit_actor, audit_args.counters.clone());
        // The handle exists before the actor does: the org registry tells it of shrinking
        // access from the start.
        let webhooks = Webhooks::new(None);
        let orgs = Arc::new(
            Orgs::new(deps.org_store.clone(), myself.get_cell(), deps.board_idle_timeout)
                .telling(webhooks.clone())
                .limiting(deps.plan_limits)
                .placed(deps.placement.clone()),
        );
        let boards = Arc::new(Boards::new(
            deps.board_store.clone(),
            orgs.clone(),
            EventBus::default(),
            myself.get_cell(),
            deps.board_idle_timeout,
            deps.board_limits,
            deps.placement.clone(),
        ));
        let restarts = Arc::default();
        let state = SupervisorState { deps, audit_args, audit, boards, orgs, webhooks, restarts };
        if let Some(args) = state.webhook_args() {
            let (actor, _) =
                Actor::spawn_linked(None, WebhookActor, args, myself.get_cell()).await?;
            state.webhooks.replace(actor);
        }
        let _ = ready.send(Started {
            audit: state.audit.clone(),
            boards: state.boards.clone(),
            orgs: state.orgs.clone(),
            webhooks: state.webhooks.clone(),
            restarts: state.restarts.clone(),
        });
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorTerminated(cell, ..) = &event {
            // An idle stop, a reload or shutdown: the entity's lease, if any, is given up.
            state.boards.stopped(cell.get_id());
            state.orgs.stopped(cell.get_id());
        }
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            state.boards.stopped(cell.get_id());
            state.orgs.stopped(cell.get_id());
            tracing::error!(actor = %cell.get_id(), name = ?cell.get_name(), error = %err, "actor failed; restarting");
            state.restarts.fetch_add(1, Ordering::Relaxed);
            if let Some(board) = cell.get_name().as_deref().and_then(board_of) {
                // Restart in the background: loading the board must not hold up supervision.
                let boards = state.boards.clone();
                tokio::spawn(async move { boards.restart(board).await });
                return Ok(());
            }
            if state.webhooks.is(&cell) {
                if let Some(args) = state.webhook_args() {
                    let (actor, _) =
                        Actor::spawn_linked(None, WebhookActor, args, myself.get_cell()).await?;
                    state.webhooks.replace(actor);
                }
                return Ok(());
            }
            if cell.get_id() != state.audit.actor_id() {
                // An org actor: it reloads on next use, which is as soon as anyone asks.
                return Ok(());
            }
            let (audit_actor, _) =
                Actor::spawn_linked(None, AuditActor, state.audit_args.clone(), myself.get_cell())
                    .await?;
            state.audit.replace(audit_actor);
        }
        Ok(())
    }
}

/// The running actor tree.
pub struct Runtime {
    supervisor: ActorRef<SupervisorMessage>,
    audit: AuditLog,
    boards: Arc<Boards>,
    orgs: Arc<Orgs>,
    webhooks: Webhooks,
    restarts: Arc<AtomicU64>,
}

impl Runtime {
    /// Starts the supervisor and its children.
    pub async fn start(deps: Dependencies) -> anyhow::Result<Runtime> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (supervisor, _) = Actor::spawn(None, RootSupervisor, (deps, ready_tx))
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the root supervisor: {e}"))?;
        let Started { audit, boards, orgs, webhooks, restarts } = ready_rx.await?;
        Ok(Runtime { supervisor, audit, boards, orgs, webhooks, restarts })
    }

    /// The org registry.
    pub fn orgs(&self) -> &Arc<Orgs> {
        &self.orgs
    }

    /// The board registry.
    pub fn boards(&self) -> &Arc<Boards> {
        &self.boards
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The webhook actor.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Children that failed and were restarted so far (metrics).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Flushes every child, then stops the tree. Returns whether the flush completed.
    pub async fn shutdown(&self) -> bool {
        self.boards.stop_all().await;
        // Attempts in flight finish (and may record audit rows) before the audit log closes;
        // it closes last of the children, writing or setting aside everything queued.
        let drained = self.webhooks.drain().await;
        let flushed = self.audit.close().await;
        let _ = self.supervisor.stop_and_wait(None, Some(std::time::Duration::from_secs(5))).await;
        flushed && drained
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::audit::{AuditAction, AuditEvent};
    use crate::test_stores::TestAudit;
    use uuid::Uuid;

    /// Counts catch-ups and looks at single boards; with `flaky`, panics on its first catch-up.
    #[derive(Default)]
    struct FlakyWebhooks {
        flaky: bool,
        catch_ups: AtomicUsize,
        looks: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::webhook::WebhookBackend for FlakyWebhooks {
        async fn enqueue_board(&self, _: Uuid, _: Uuid) -> anyhow::Result<u64> {
            self.looks.fetch_add(1, Ordering::SeqCst);
            Ok(0)
        }
        async fn enqueue_all(&self) -> anyhow::Result<u64> {
            if self.catch_ups.fetch_add(1, Ordering::SeqCst) == 0 && self.flaky {
                panic!("injected failure");
            }
            Ok(0)
        }
        async fn due(&self, _: u32) -> anyhow::Result<Vec<crate::webhook::DueDelivery>> {
            Ok(Vec::new())
        }
        async fn attempt(
            &self,
            _: &crate::webhook::DueDelivery,
        ) -> anyhow::Result<crate::webhook::AttemptOutcome> {
            Ok(crate::webhook::AttemptOutcome::Delivered)
        }
        async fn prune(&self) -> anyhow::Result<u64> {
            Ok(0)
        }
        async fn grants(
            &self,
            _: crate::webhook::Affected,
        ) -> anyhow::Result<Vec<crate::webhook::WebhookGrant>> {
            Ok(Vec::new())
        }
        async fn key_scopes(
            &self,
            _: Uuid,
            _: Uuid,
            _: Uuid,
        ) -> anyhow::Result<Option<Vec<boardroom_protocol::Scope>>> {
            Ok(None)
        }
        async fn disable_for_access(
            &self,
            _: Uuid,
            _: Uuid,
            _: &'static str,
        ) -> anyhow::Result<bool> {
            Ok(false)
        }
    }

    fn with_webhooks(backend: Arc<FlakyWebhooks>) -> Dependencies {
        Dependencies {
            audit_store: Arc::new(TestAudit::default()),
            audit_key: crate::test_stores::audit_key(),
            board_store: Arc::new(crate::test_stores::TestBoards::default()),
            org_store: Arc::new(crate::test_stores::NoOrgs),
            board_idle_timeout: std::time::Duration::from_secs(60),
            board_limits: BoardLimits::default(),
            plan_limits: PlanTable::default(),
            webhooks: Some(WebhookDependencies {
                backend: backend.clone(),
                poll_interval: std::time::Duration::from_millis(20),
            }),
            placement: None,
        }
    }

    #[tokio::test]
    async fn a_crashed_webhook_actor_is_restarted_and_catches_up_again() {
        let backend = Arc::new(FlakyWebhooks { flaky: true, ..FlakyWebhooks::default() });
        let runtime = Runtime::start(with_webhooks(backend.clone())).await.unwrap();
        // The first actor panics in its start-up catch-up; the restarted one catches up again.
        for _ in 0..100 {
            if backend.catch_ups.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            backend.catch_ups.load(Ordering::SeqCst) >= 2,
            "the webhook actor was not restarted"
        );
        assert!(runtime.webhooks().drain().await, "the restarted actor never answered");
        runtime.shutdown().await;
    }

    /// A board committing batch after batch costs the webhook actor one look per
    /// `LOOK_AFTER`, not one per commit; a commit after the look gets a look of its own.
    #[tokio::test]
    async fn a_busy_boards_commits_share_one_webhook_look() {
        let backend = Arc::new(FlakyWebhooks::default());
        let runtime = Runtime::start(with_webhooks(backend.clone())).await.unwrap();
        let bus = runtime.boards().bus().clone();
        let (org, board) = (Uuid::now_v7(), Uuid::now_v7());
        let event = |seq| {
            Arc::new(crate::domain::BoardEvent {
                organization_id: org,
                board_id: board,
                seq,
                actor: None,
                data: crate::domain::EventData::BoardDeleted,
                created_at: chrono::Utc::now(),
            })
        };
        let wait_for_looks = |n: usize| {
            let backend = backend.clone();
            async move {
                for _ in 0..200 {
                    if backend.looks.load(Ordering::SeqCst) >= n {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        };
        // A commit a millisecond, 20 in all, as a hot board commits its batches.
        let started = std::time::Instant::now();
        for seq in 1..=20 {
            bus.publish(event(seq));
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let burst = started.elapsed();
        wait_for_looks(1).await;
        // Time for any further look the burst would have caused.
        tokio::time::sleep(crate::webhook::LOOK_AFTER * 3).await;
        // At most one look per LOOK_AFTER of the burst (however slow the machine made it), and
        // the one that starts it: one look per commit would be 20.
        let allowed =
            (burst.as_millis() / crate::webhook::LOOK_AFTER.as_millis().max(1)) as usize + 1;
        let looks = backend.looks.load(Ordering::SeqCst);
        assert!(looks >= 1 && looks <= allowed, "{looks} looks for a {burst:?} burst");
        bus.publish(event(21));
        wait_for_looks(looks + 1).await;
        assert_eq!(backend.looks.load(Ordering::SeqCst), looks + 1, "a later commit is looked at");
        runtime.shutdown().await;
    }

    #[tokio::test]
    async fn a_crashed_audit_actor_is_restarted_behind_the_same_handle() {
        let store = Arc::new(TestAudit::default());
        store.panic_next.store(true, Ordering::SeqCst);
        let deps = Dependencies {
            audit_store: store.clone(),
            audit_key: crate::test_stores::audit_key(),
            board_store: Arc::new(crate::test_stores::TestBoards::default()),
            org_store: Arc::new(crate::test_stores::NoOrgs),
            board_idle_timeout: std::time::Duration::from_secs(60),
            board_limits: BoardLimits::default(),
            plan_limits: PlanTable::default(),
            webhooks: None,
            placement: None,
        };
        let runtime = Runtime::start(deps).await.unwrap();
        let audit = runtime.audit().clone();
        audit.record(AuditEvent::new(AuditAction::Signup));
        // The first append panics; the flush's reply port is dropped with the actor.
        assert!(!audit.flush().await);
        for _ in 0..50 {
            if !store.panic_next.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The supervisor has put a fresh actor behind the handle.
        let mut flushed = false;
        for _ in 0..50 {
            audit.record(AuditEvent::new(AuditAction::Logout));
            if audit.flush().await {
                flushed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(flushed, "the restarted actor never answered");
        assert!(store.rows.lock().unwrap().iter().any(|r| r.event.action == AuditAction::Logout));
        assert!(runtime.shutdown().await);
    }
}
