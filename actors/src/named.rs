//! Actors started on first use under a name, so at most one runs per entity, and stopped after
//! sitting idle. The board and org registries both keep their actors this way.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorRef, ActorStatus, Message, SpawnErr};

/// How often an actor checks whether it has been idle long enough to stop.
pub const IDLE_CHECK_EVERY: Duration = Duration::from_secs(30);

/// The actor registered as `name`, if it is running (or about to).
pub fn running<M: Message>(name: &str) -> Option<ActorRef<M>> {
    ActorRef::<M>::where_is(name).filter(|a| {
        matches!(
            a.get_status(),
            ActorStatus::Running | ActorStatus::Starting | ActorStatus::Upgrading
        )
    })
}

/// Starts `actor` as `name`, linked to `supervisor`. If someone else started it meanwhile,
/// theirs is answered. `None`: the name is still held by an actor that is stopping (after
/// sitting idle); the caller answers "retry", since the entity does exist.
pub async fn start<A: Actor>(
    name: String,
    actor: A,
    args: A::Arguments,
    supervisor: ActorCell,
) -> Result<Option<ActorRef<A::Msg>>, SpawnErr> {
    match Actor::spawn_linked(Some(name.clone()), actor, args, supervisor).await {
        Ok((actor, _)) => Ok(Some(actor)),
        Err(SpawnErr::ActorAlreadyRegistered(_)) => Ok(running(&name)),
        Err(err) => Err(err),
    }
}

/// When an actor was last used, and how long it may sit idle.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    last_active: Instant,
    timeout: Duration,
}

impl Idle {
    /// Schedules `check` on `myself` often enough to notice `timeout` passing.
    pub fn start<M: Message>(myself: &ActorRef<M>, timeout: Duration, check: fn() -> M) -> Idle {
        myself.send_interval(IDLE_CHECK_EVERY.min(timeout), check);
        Idle { last_active: Instant::now(), timeout }
    }

    /// The actor was used now.
    pub fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    /// Whether it has sat idle for its whole timeout.
    pub fn expired(&self) -> bool {
        self.last_active.elapsed() >= self.timeout
    }
}
