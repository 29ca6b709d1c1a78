//! Actors on several nodes: where an entity's actor runs, and calls to one on another node.
//!
//! With a [`Placement`] (the server's cluster, when it runs with NATS), the board and org
//! registries run an entity's actor only on the node that holds its lease, and hand a call
//! for an entity held elsewhere to that node ([`Placement::call`]), which runs it as a local
//! call and answers. The calls and answers are this module's serde types, so the transport
//! is the server's affair. Without a placement (one node) every actor runs here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::billing::{BillingEvent, BillingOutcome, Plan};
use crate::board::{BoardQuery, BoardView, CommandOutput, Requester};
use crate::domain::{BoardCommand, BoardError};
use crate::org::{MemberChange, OrgError, PlanView};
use crate::plans::{PlanLimitExceeded, Resource};
use crate::roles::OrgRole;

/// What a lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entity {
    /// A board's actor.
    Board(Uuid),
    /// An organization's actor.
    Org(Uuid),
}

/// Where an entity's actor runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Here: this node holds its lease, taken at this epoch.
    Here {
        /// The lease's epoch (released with it when the actor stops).
        epoch: i64,
    },
    /// On another node, which holds its lease.
    At(String),
}

/// A call to an entity's actor on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Call {
    /// [`crate::boards::Boards::submit`], answered once committed.
    BoardCommand {
        /// Organization.
        org: Uuid,
        /// Board.
        board: Uuid,
        /// Who, as the calling node's edge established it.
        requester: Requester,
        /// What.
        command: BoardCommand,
        /// Its idempotency key.
        idempotency_key: Option<String>,
    },
    /// [`crate::boards::Boards::read`].
    BoardRead {
        /// Organization.
        org: Uuid,
        /// Board.
        board: Uuid,
        /// Who.
        requester: Requester,
        /// What.
        query: BoardQuery,
    },
    /// A call to an organization's actor.
    Org {
        /// Organization.
        org: Uuid,
        /// What.
        call: OrgCall,
    },
}

impl Call {
    /// The entity whose actor answers it.
    pub fn entity(&self) -> Entity {
        match self {
            Call::BoardCommand { board, .. } | Call::BoardRead { board, .. } => {
                Entity::Board(*board)
            }
            Call::Org { org, .. } => Entity::Org(*org),
        }
    }
}

/// What an organization's actor is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OrgCall {
    /// A member's role.
    Role(Uuid),
    /// A membership change.
    Change(Uuid, MemberChange),
    /// A verified billing event.
    Billing(Box<BillingEvent>),
    /// The plan.
    Plan,
    /// Whether this many more of a resource fit the plan (the creation turn stays with the
    /// caller's node).
    Admit(Resource, u64),
    /// The plan, limits and use.
    View,
}

/// An organization's actor's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OrgAnswer {
    /// To [`OrgCall::Role`].
    Role(Option<OrgRole>),
    /// To [`OrgCall::Change`]: the previous role.
    Changed(Option<OrgRole>),
    /// To [`OrgCall::Billing`].
    Billing(BillingOutcome),
    /// To [`OrgCall::Plan`].
    Plan(Plan),
    /// To [`OrgCall::Admit`].
    Admitted,
    /// To [`OrgCall::View`].
    View(PlanView),
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// A board command's outcome.
    BoardCommand(Result<CommandOutput, BoardError>),
    /// A board read's outcome.
    BoardRead(Result<BoardView, BoardError>),
    /// An organization call's outcome; `None` when there is no such organization.
    Org(Result<Option<OrgAnswer>, OrgError>),
    /// The node no longer (or not yet) holds the entity's lease: look its holder up again.
    Moved,
}

/// Where actors run, and the way to the other nodes. Implemented by the server's cluster.
#[async_trait::async_trait]
pub trait Placement: Send + Sync + 'static {
    /// Where `entity`'s actor runs: here when this node holds its lease, taking it (with a new
    /// epoch) if it is free, expired or already this node's; or the node that holds it.
    async fn place(&self, entity: Entity) -> Result<Place, String>;

    /// This node's actor of `entity`, started under the lease at `epoch`, stopped: give that
    /// lease up (a later one is untouched).
    fn stopped(&self, entity: Entity, epoch: i64);

    /// Sends `call` to `node`; the answer arrives on the returned receiver. Sent when this
    /// returns, so calls sent one after another reach the node in that order. The answer is
    /// `Err` when it could not be had (no answer in time, no such node): the caller answers
    /// "unavailable, retry", since the call may or may not have run.
    async fn send(&self, node: &str, call: Call) -> Result<Pending, String>;
}

/// Where an entity's messages go.
pub enum Route<M: ractor::Message> {
    /// To its actor here.
    Here(ractor::ActorRef<M>),
    /// To the node holding its lease.
    There(String),
}

/// A call that reached this node from another, for an entity whose lease it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved;

/// A registry's side of placement: the [`Placement`] (none on one node) and the lease epoch each
/// of its running actors started under, so that an actor's stop gives up exactly its own lease.
/// Shared by the board and org registries.
#[derive(Default)]
pub struct Leased {
    placement: Option<Arc<dyn Placement>>,
    incarnations: dashmap::DashMap<ractor::ActorId, (Entity, i64)>,
}

impl Leased {
    /// Placed by `placement`; `None`: every actor runs here.
    pub fn new(placement: Option<Arc<dyn Placement>>) -> Leased {
        Leased { placement, incarnations: dashmap::DashMap::new() }
    }

    /// Where `entity`'s actor must run: `Ok(Ok(epoch))` here (the lease's epoch, `None` on one
    /// node), `Ok(Err(node))` on `node`, `Err` when that could not be found out.
    pub async fn place(&self, entity: Entity) -> Result<Result<Option<i64>, String>, String> {
        let Some(placement) = &self.placement else { return Ok(Ok(None)) };
        match placement.place(entity).await? {
            Place::Here { epoch } => Ok(Ok(Some(epoch))),
            Place::At(node) => Ok(Err(node)),
        }
    }

    /// `actor` started under the lease at `epoch`.
    pub fn started(&self, actor: ractor::ActorId, entity: Entity, epoch: Option<i64>) {
        if let Some(epoch) = epoch {
            self.incarnations.insert(actor, (entity, epoch));
        }
    }

    /// Gives up a lease taken for an actor that did not start.
    pub fn give_up(&self, entity: Entity, epoch: Option<i64>) {
        if let (Some(placement), Some(epoch)) = (&self.placement, epoch) {
            placement.stopped(entity, epoch);
        }
    }

    /// `actor` stopped (the supervisor tells): its lease is given up.
    pub fn stopped(&self, actor: ractor::ActorId) {
        if let Some((_, (entity, epoch))) = self.incarnations.remove(&actor) {
            self.give_up(entity, Some(epoch));
        }
    }

    /// Sends `call` to `node` ([`Placement::send`]).
    pub async fn send(&self, node: &str, call: Call) -> Result<Pending, String> {
        match &self.placement {
            Some(placement) => placement.send(node, call).await,
            None => Err("this node is in no cluster".into()),
        }
    }
}

/// The answer to a [`Call`] sent to another node, to be waited for.
pub type Pending = tokio::sync::oneshot::Receiver<Result<Reply, String>>;

/// [`BoardError`] between nodes: its static names (what was not found, which role or scope is
/// needed) as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)] // mirrors BoardError
pub enum BoardErrorRepr {
    NotFound(String),
    Forbidden(String),
    MissingScope(String),
    Invalid(String),
    VersionConflict { current: i64, expected: i64 },
    Conflict(String),
    LimitReached(String),
    TooLarge(String),
    Unavailable(String),
}

impl From<BoardError> for BoardErrorRepr {
    fn from(error: BoardError) -> Self {
        match error {
            BoardError::NotFound(name) => BoardErrorRepr::NotFound(name.into()),
            BoardError::Forbidden(name) => BoardErrorRepr::Forbidden(name.into()),
            BoardError::MissingScope(name) => BoardErrorRepr::MissingScope(name.into()),
            BoardError::Invalid(text) => BoardErrorRepr::Invalid(text),
            BoardError::VersionConflict { current, expected } => {
                BoardErrorRepr::VersionConflict { current, expected }
            }
            BoardError::Conflict(text) => BoardErrorRepr::Conflict(text),
            BoardError::LimitReached(text) => BoardErrorRepr::LimitReached(text),
            BoardError::TooLarge(text) => BoardErrorRepr::TooLarge(text),
            BoardError::Unavailable(text) => BoardErrorRepr::Unavailable(text),
        }
    }
}

impl From<BoardErrorRepr> for BoardError {
    fn from(repr: BoardErrorRepr) -> Self {
        match repr {
            BoardErrorRepr::NotFound(name) => BoardError::NotFound(static_name(&name)),
            BoardErrorRepr::Forbidden(name) => BoardError::Forbidden(static_name(&name)),
            BoardErrorRepr::MissingScope(name) => BoardError::MissingScope(static_name(&name)),
            BoardErrorRepr::Invalid(text) => BoardError::Invalid(text),
            BoardErrorRepr::VersionConflict { current, expected } => {
                BoardError::VersionConflict { current, expected }
            }
            BoardErrorRepr::Conflict(text) => BoardError::Conflict(text),
            BoardErrorRepr::LimitReached(text) => BoardError::LimitReached(text),
            BoardErrorRepr::TooLarge(text) => BoardError::TooLarge(text),
            BoardErrorRepr::Unavailable(text) => BoardError::Unavailable(text),
        }
    }
}

/// [`OrgError`] between nodes (see [`BoardErrorRepr`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)] // mirrors OrgError
pub enum OrgErrorRepr {
    NotFound(String),
    AlreadyMember,
    LastAdmin,
    PlanLimit(PlanLimitExceeded),
    Unavailable(String),
}

impl From<OrgError> for OrgErrorRepr {
    fn from(error: OrgError) -> Self {
        match error {
            OrgError::NotFound(name) => OrgErrorRepr::NotFound(name.into()),
            OrgError::AlreadyMember => OrgErrorRepr::AlreadyMember,
            OrgError::LastAdmin => OrgErrorRepr::LastAdmin,
            OrgError::PlanLimit(limit) => OrgErrorRepr::PlanLimit(limit),
            OrgError::Unavailable(text) => OrgErrorRepr::Unavailable(text),
        }
    }
}

impl From<OrgErrorRepr> for OrgError {
    fn from(repr: OrgErrorRepr) -> Self {
        match repr {
            OrgErrorRepr::NotFound(name) => OrgError::NotFound(static_name(&name)),
            OrgErrorRepr::AlreadyMember => OrgError::AlreadyMember,
            OrgErrorRepr::LastAdmin => OrgError::LastAdmin,
            OrgErrorRepr::PlanLimit(limit) => OrgError::PlanLimit(limit),
            OrgErrorRepr::Unavailable(text) => OrgError::Unavailable(text),
        }
    }
}

macro_rules! serde_through {
    ($error:ty, $repr:ty) => {
        impl Serialize for $error {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$repr>::from(self.clone()).serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $error {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <$repr>::deserialize(deserializer).map(Into::into)
            }
        }
    };
}

serde_through!(BoardError, BoardErrorRepr);
serde_through!(OrgError, OrgErrorRepr);

/// The names errors carry, as this build spells them: a name read back from another node
/// becomes the same static name, or a generic one for a name this build does not know.
const KNOWN_NAMES: &[&str] = &[
    "board",
    "item",
    "organization",
    "editor",
    "update",
    "member",
    "attachment",
    "sibling to place next to",
    "group",
    "column",
    "board member",
    "owner",
    "owner (or the update's author)",
    "author",
];

fn static_name(text: &str) -> &'static str {
    if let Some(known) = KNOWN_NAMES.iter().find(|k| **k == text) {
        return known;
    }
    if let Some(scope) = boardroom_protocol::Scope::parse(text) {
        return scope.as_str();
    }
    "resource"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_json<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
        serde_json::from_slice(&serde_json::to_vec(value).unwrap()).unwrap()
    }

    #[test]
    fn errors_keep_their_names_between_nodes() {
        for error in [
            BoardError::NotFound("board"),
            BoardError::Forbidden("owner (or the update's author)"),
            BoardError::MissingScope(boardroom_protocol::Scope::ItemsWrite.as_str()),
            BoardError::VersionConflict { current: 3, expected: 2 },
            BoardError::Unavailable("retry".into()),
        ] {
            assert_eq!(through_json(&error), error);
        }
        assert_eq!(through_json(&OrgError::NotFound("member")), OrgError::NotFound("member"));
        assert_eq!(through_json(&OrgError::LastAdmin), OrgError::LastAdmin);
    }

    #[test]
    fn a_name_this_build_does_not_know_reads_back_as_a_generic_one() {
        let json = serde_json::json!({"NotFound": "flux capacitor"});
        let error: BoardError = serde_json::from_value(json).unwrap();
        assert_eq!(error, BoardError::NotFound("resource"));
    }
}
