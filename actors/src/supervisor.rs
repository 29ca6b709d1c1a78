//! The root supervisor.
//!
//! [`Runtime::start`] spawns the root supervisor, which spawns its children linked to it. When
//! a child fails, the supervisor starts a fresh one from the same arguments and points the
//! child's handle at it, so callers holding a handle never notice. [`Runtime::shutdown`] flushes
//! the children (nothing queued is lost) and stops the tree.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::audit::{AuditActor, AuditLog, AuditStore};

/// What the supervisor needs to start its children.
#[derive(Clone)]
pub struct Dependencies {
    /// Storage of the audit log.
    pub audit_store: Arc<dyn AuditStore>,
}

/// The root supervisor.
pub struct RootSupervisor;

/// Messages of the root supervisor (it only supervises).
pub enum SupervisorMessage {}

/// State of the root supervisor.
pub struct SupervisorState {
    deps: Dependencies,
    audit: AuditLog,
}

impl Actor for RootSupervisor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = (Dependencies, tokio::sync::oneshot::Sender<AuditLog>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, ready): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (audit_actor, _) =
            Actor::spawn_linked(None, AuditActor, deps.audit_store.clone(), myself.get_cell())
                .await?;
        let audit = AuditLog::new(audit_actor);
        let _ = ready.send(audit.clone());
        Ok(SupervisorState { deps, audit })
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
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            tracing::error!(actor = %cell.get_id(), error = %err, "actor failed; restarting");
            let (audit_actor, _) = Actor::spawn_linked(
                None,
                AuditActor,
                state.deps.audit_store.clone(),
                myself.get_cell(),
            )
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
}

impl Runtime {
    /// Starts the supervisor and its children.
    pub async fn start(deps: Dependencies) -> anyhow::Result<Runtime> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (supervisor, _) = Actor::spawn(None, RootSupervisor, (deps, ready_tx))
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the root supervisor: {e}"))?;
        let audit = ready_rx.await?;
        Ok(Runtime { supervisor, audit })
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Flushes every child, then stops the tree. Returns whether the flush completed.
    pub async fn shutdown(&self) -> bool {
        let flushed = self.audit.flush().await;
        let _ = self.supervisor.stop_and_wait(None, Some(std::time::Duration::from_secs(5))).await;
        flushed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::audit::{AuditAction, AuditEvent};

    /// Panics on its first append, then stores.
    #[derive(Default)]
    struct FlakyStore {
        calls: AtomicUsize,
        stored: Mutex<Vec<AuditAction>>,
    }

    #[async_trait::async_trait]
    impl AuditStore for FlakyStore {
        async fn append(&self, events: &[AuditEvent]) -> anyhow::Result<()> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("injected failure");
            }
            self.stored.lock().unwrap().extend(events.iter().map(|e| e.action));
            Ok(())
        }

        async fn purge_older_than(&self, _: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_crashed_audit_actor_is_restarted_behind_the_same_handle() {
        let store = Arc::new(FlakyStore::default());
        let runtime = Runtime::start(Dependencies { audit_store: store.clone() }).await.unwrap();
        let audit = runtime.audit().clone();
        audit.record(AuditEvent::new(AuditAction::Signup));
        // The first append panics; the flush's reply port is dropped with the actor.
        assert!(!audit.flush().await);
        for _ in 0..50 {
            if store.calls.load(Ordering::SeqCst) >= 1 {
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
        assert!(store.stored.lock().unwrap().contains(&AuditAction::Logout));
        assert!(runtime.shutdown().await);
    }
}
