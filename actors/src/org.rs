//! The org actor: one per active organization. It owns the organization's authorization state
//! (who is a member, with which role, and its plan), answers role lookups from memory so
//! requests need no database read for them, and serializes membership changes, enforcing that
//! an organization always keeps an admin. Billing events reach the organization through its
//! actor too, one at a time ([`Orgs::apply_billing`]), so the plan it holds follows them.
//!
//! The actor also enforces the plan's limits ([`crate::plans`]): it adds a member only within
//! them, and answers whether one more board, key, webhook or attachment fits
//! ([`Orgs::admit`]). A creation holds its organization's creation turn from that answer until
//! it is written, so two creations at the last slot cannot both pass.
//!
//! [`Orgs`] is the registry: it starts an organization's actor on first use (named `org:<id>`,
//! so at most one runs), and the actor stops after sitting idle.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::billing::{BillingEvent, BillingOutcome, Plan};
use crate::named::{self, Idle};
use crate::plans::{self, PlanLimitExceeded, PlanLimits, PlanTable, Resource, Usage};
use crate::remote::{Call, Entity, Leased, Moved, OrgAnswer, OrgCall, Placement, Reply};
use crate::roles::{check_keeps_an_admin, OrgRole};
use crate::webhook::{Affected, Webhooks};

/// An organization as loaded from the store.
#[derive(Debug, Clone)]
pub struct LoadedOrg {
    /// Billing plan.
    pub plan: String,
    /// Members and roles.
    pub members: HashMap<Uuid, OrgRole>,
}

/// Why a membership change is refused.
// Serde between nodes: `crate::remote`, through a representation with owned names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    /// No such organization, or no such member.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The user is a member already.
    #[error("already a member")]
    AlreadyMember,
    /// The change would leave the organization without an admin.
    #[error("an organization must keep at least one admin")]
    LastAdmin,
    /// The plan allows no more of something; nothing changed.
    #[error("{0}")]
    PlanLimit(PlanLimitExceeded),
    /// Storage failed; nothing changed.
    #[error("{0}")]
    Unavailable(String),
}

/// Where the org actor reads and writes. Implemented by the server's storage.
#[async_trait::async_trait]
pub trait OrgStore: Send + Sync + 'static {
    /// Loads an organization.
    async fn load_org(&self, org: Uuid) -> anyhow::Result<Option<LoadedOrg>>;
    /// Adds a member; `Ok(false)` when they already are one.
    async fn insert_member(&self, org: Uuid, user: Uuid, role: OrgRole) -> anyhow::Result<bool>;
    /// Changes a member's role (`Some`) or removes them and their keys (`None`).
    async fn update_member(
        &self,
        org: Uuid,
        user: Uuid,
        role: Option<OrgRole>,
    ) -> anyhow::Result<()>;
    /// Records `event`'s id and applies it with [`crate::billing::BillingState::apply`] in one
    /// transaction; an id recorded already answers [`BillingOutcome::Duplicate`] and changes
    /// nothing.
    async fn apply_billing(
        &self,
        org: Uuid,
        event: &BillingEvent,
    ) -> anyhow::Result<BillingOutcome>;
    /// What the organization holds now of each resource its plan limits.
    async fn usage(&self, org: Uuid) -> anyhow::Result<Usage>;
}

/// An organization's plan, its limits and what it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanView {
    /// The plan.
    pub plan: Plan,
    /// Its limits.
    pub limits: PlanLimits,
    /// The current use.
    pub usage: Usage,
}

/// A membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberChange {
    /// Add with a role.
    Add(OrgRole),
    /// Change the role.
    SetRole(OrgRole),
    /// Remove.
    Remove,
}

/// Messages of an org actor.
pub enum OrgMessage {
    /// The role of a user, if a member.
    Role(Uuid, RpcReplyPort<Option<OrgRole>>),
    /// Change a membership; answers the previous role.
    Change(Uuid, MemberChange, RpcReplyPort<Result<Option<OrgRole>, OrgError>>),
    /// Apply a verified billing event.
    Billing(Box<BillingEvent>, RpcReplyPort<Result<BillingOutcome, OrgError>>),
    /// The plan in effect.
    Plan(RpcReplyPort<Plan>),
    /// Whether this many more of a resource fit the plan.
    Admit(Resource, u64, RpcReplyPort<Result<(), OrgError>>),
    /// The plan, its limits and the current use.
    View(RpcReplyPort<Result<PlanView, OrgError>>),
    /// Stop if idle.
    IdleCheck,
}

/// The org actor.
pub struct OrgActor;

/// Arguments of an org actor.
pub struct OrgArgs {
    org: Uuid,
    loaded: LoadedOrg,
    store: Arc<dyn OrgStore>,
    idle_timeout: Duration,
    limits: PlanTable,
}

/// State of an org actor.
pub struct OrgState {
    org: Uuid,
    members: HashMap<Uuid, OrgRole>,
    plan: Plan,
    limits: PlanTable,
    store: Arc<dyn OrgStore>,
    idle: Idle,
}

fn unavailable_usage(org: Uuid) -> impl Fn(anyhow::Error) -> OrgError {
    move |e| {
        tracing::error!(error = ?e, %org, "reading the organization's use failed");
        OrgError::Unavailable("storage is unavailable; retry".into())
    }
}

impl OrgState {
    async fn change(
        &mut self,
        user: Uuid,
        change: MemberChange,
    ) -> Result<Option<OrgRole>, OrgError> {
        let unavailable = |e: anyhow::Error| {
            tracing::error!(error = ?e, org = %self.org, "membership change failed");
            OrgError::Unavailable("storage is unavailable; retry".into())
        };
        let current = self.members.get(&user).copied();
        let admins = self.members.values().filter(|r| **r == OrgRole::Admin).count() as i64;
        match change {
            MemberChange::Add(role) => {
                if current.is_some() {
                    return Err(OrgError::AlreadyMember);
                }
                // Members are known in memory: no read needed, and this actor serializes adds.
                let usage = Usage { members: self.members.len() as u64, ..Usage::default() };
                plans::check(self.plan, self.limits.of(self.plan), &usage, Resource::Members, 1)
                    .map_err(OrgError::PlanLimit)?;
                if !self.store.insert_member(self.org, user, role).await.map_err(unavailable)? {
                    return Err(OrgError::AlreadyMember);
                }
                self.members.insert(user, role);
            }
            MemberChange::SetRole(_) | MemberChange::Remove => {
                let current = current.ok_or(OrgError::NotFound("member"))?;
                let next = match change {
                    MemberChange::SetRole(role) => Some(role),
                    _ => None,
                };
                check_keeps_an_admin(current, next, admins).map_err(|_| OrgError::LastAdmin)?;
                self.store.update_member(self.org, user, next).await.map_err(unavailable)?;
                match next {
                    Some(role) => self.members.insert(user, role),
                    None => self.members.remove(&user),
                };
            }
        }
        Ok(current)
    }

    async fn admit(&self, resource: Resource, adding: u64) -> Result<(), OrgError> {
        let limits = self.limits.of(self.plan);
        if limits.get(resource).is_none() {
            return Ok(());
        }
        let usage = self.usage().await?;
        plans::check(self.plan, limits, &usage, resource, adding).map_err(OrgError::PlanLimit)
    }

    async fn usage(&self) -> Result<Usage, OrgError> {
        let mut usage = self.store.usage(self.org).await.map_err(unavailable_usage(self.org))?;
        usage.members = self.members.len() as u64;
        Ok(usage)
    }

    async fn view(&self) -> Result<PlanView, OrgError> {
        Ok(PlanView {
            plan: self.plan,
            limits: *self.limits.of(self.plan),
            usage: self.usage().await?,
        })
    }

    async fn billing(&mut self, event: &BillingEvent) -> Result<BillingOutcome, OrgError> {
        let outcome = self.store.apply_billing(self.org, event).await.map_err(|e| {
            tracing::error!(error = ?e, org = %self.org, event = %event.event_id, "billing event not applied");
            OrgError::Unavailable("storage is unavailable; retry".into())
        })?;
        if let BillingOutcome::Applied { after, .. } = &outcome {
            self.plan = after.plan;
        }
        Ok(outcome)
    }
}

impl Actor for OrgActor {
    type Msg = OrgMessage;
    type State = OrgState;
    type Arguments = OrgArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OrgArgs,
    ) -> Result<OrgState, ActorProcessingErr> {
        let idle = Idle::start(&myself, args.idle_timeout, || OrgMessage::IdleCheck);
        let plan = Plan::parse(&args.loaded.plan).unwrap_or(Plan::Free);
        Ok(OrgState {
            org: args.org,
            members: args.loaded.members,
            plan,
            limits: args.limits,
            store: args.store,
            idle,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: OrgMessage,
        state: &mut OrgState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OrgMessage::Role(user, reply) => {
                state.idle.touch();
                let _ = reply.send(state.members.get(&user).copied());
            }
            OrgMessage::Change(user, change, reply) => {
                state.idle.touch();
                let _ = reply.send(state.change(user, change).await);
            }
            OrgMessage::Billing(event, reply) => {
                state.idle.touch();
                let _ = reply.send(state.billing(&event).await);
            }
            OrgMessage::Plan(reply) => {
                state.idle.touch();
                let _ = reply.send(state.plan);
            }
            OrgMessage::Admit(resource, adding, reply) => {
                state.idle.touch();
                let _ = reply.send(state.admit(resource, adding).await);
            }
            OrgMessage::View(reply) => {
                state.idle.touch();
                let _ = reply.send(state.view().await);
            }
            OrgMessage::IdleCheck => {
                if state.idle.expired() {
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}

/// The org registry. One per server.
pub struct Orgs {
    store: Arc<dyn OrgStore>,
    supervisor: ActorCell,
    idle_timeout: Duration,
    webhooks: Option<Webhooks>,
    limits: PlanTable,
    /// Each organization's creation turn, held from [`Orgs::admit`] until the creation is
    /// written. Weak: an organization nobody is creating in holds no lock.
    creating: dashmap::DashMap<Uuid, Weak<tokio::sync::Mutex<()>>>,
    /// Where organizations' actors run, with several nodes, and under which leases.
    leased: Leased,
}

type Route = crate::remote::Route<OrgMessage>;

fn unavailable_now(why: &str) -> OrgError {
    OrgError::Unavailable(format!("{why}; retry"))
}

/// A creation admitted by the plan: the organization's creation turn, held until dropped.
/// Keep it until the new thing is written, so the next creation counts it.
#[must_use = "the creation is serialized only while this is held"]
pub struct Admission {
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

fn actor_name(org: Uuid) -> String {
    format!("org:{org}")
}

/// How long a membership change may wait for its organization.
const CALL_TIMEOUT_MS: u64 = 15_000;

/// How long a role lookup may wait: answered from memory, it waits only behind a membership
/// change being written.
const ROLE_TIMEOUT_MS: u64 = 5_000;

impl Orgs {
    /// A registry whose actors are supervised by `supervisor`.
    pub fn new(store: Arc<dyn OrgStore>, supervisor: ActorCell, idle_timeout: Duration) -> Self {
        Orgs {
            store,
            supervisor,
            idle_timeout,
            webhooks: None,
            limits: PlanTable::default(),
            creating: dashmap::DashMap::new(),
            leased: Leased::default(),
        }
    }

    /// Runs each organization's actor only on the node `placement` places it on.
    pub fn placed(mut self, placement: Option<Arc<dyn Placement>>) -> Self {
        self.leased = Leased::new(placement);
        self
    }

    /// Enforces `limits` instead of the documented defaults.
    pub fn limiting(mut self, limits: PlanTable) -> Self {
        self.limits = limits;
        self
    }

    /// Tells `webhooks` of every role change and removal, so webhooks whose creator lost
    /// access are disabled (whichever edge made the change).
    pub fn telling(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    fn give_up(&self, org: Uuid, epoch: Option<i64>) {
        self.leased.give_up(Entity::Org(org), epoch);
    }

    /// An org actor of this registry stopped (the supervisor tells): its lease is given up.
    pub fn stopped(&self, actor: ActorId) {
        self.leased.stopped(actor);
    }

    /// Where `org`'s calls go: its actor here (started if this node may run it), or the node
    /// holding its lease; `None` when there is no such organization.
    async fn route(&self, org: Uuid) -> Result<Option<Route>, OrgError> {
        if let Some(actor) = named::running(&actor_name(org)) {
            return Ok(Some(Route::Here(actor)));
        }
        let epoch = match self.leased.place(Entity::Org(org)).await {
            Ok(Ok(epoch)) => epoch,
            Ok(Err(node)) => return Ok(Some(Route::There(node))),
            Err(err) => {
                tracing::warn!(%org, error = %err, "finding the organization's node failed");
                return Err(unavailable_now("the organization's node could not be found"));
            }
        };
        let loaded = match self.store.load_org(org).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => {
                self.give_up(org, epoch);
                return Ok(None);
            }
            Err(e) => {
                self.give_up(org, epoch);
                tracing::error!(error = ?e, %org, "loading organization failed");
                return Err(OrgError::Unavailable("storage is unavailable; retry".into()));
            }
        };
        let args = OrgArgs {
            org,
            loaded,
            store: self.store.clone(),
            idle_timeout: self.idle_timeout,
            limits: self.limits,
        };
        match named::start(actor_name(org), OrgActor, args, self.supervisor.clone()).await {
            Ok(Some(actor)) => {
                self.leased.started(actor.get_id(), Entity::Org(org), epoch);
                Ok(Some(Route::Here(actor)))
            }
            // Its name is still held by an actor stopping after sitting idle.
            Ok(None) => {
                self.give_up(org, epoch);
                Err(OrgError::Unavailable("organization is restarting; retry".into()))
            }
            Err(err) => {
                self.give_up(org, epoch);
                tracing::error!(error = %err, %org, "starting organization actor failed");
                Err(OrgError::Unavailable("organization is unavailable; retry".into()))
            }
        }
    }

    /// Stops `org`'s actor here, if it runs, so its next use loads it again (on whichever
    /// node then holds its lease).
    pub async fn reload(&self, org: Uuid) {
        if let Some(actor) = named::running::<OrgMessage>(&actor_name(org)) {
            let stopped = actor.stop_and_wait(Some("reload".into()), Some(Duration::from_secs(5)));
            if stopped.await.is_err() {
                tracing::warn!(%org, "organization actor did not stop for a reload");
            }
        }
    }

    /// Asks `org`'s actor, wherever it runs; `None` when there is no such organization.
    pub async fn call(&self, org: Uuid, call: OrgCall) -> Result<Option<OrgAnswer>, OrgError> {
        for _ in 0..3 {
            match self.route(org).await? {
                None => return Ok(None),
                Some(Route::Here(actor)) => match ask(&actor, &call).await {
                    Asked::Answer(answer) => return answer.map(Some),
                    // The actor stopped (idle) between lookup and call: start it again.
                    Asked::NotDelivered => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(Route::There(node)) => return self.forward(&node, org, call).await,
            }
        }
        Err(OrgError::Unavailable("organization is restarting; retry".into()))
    }

    /// [`Self::call`] for a call another node forwarded here: run here if this node holds the
    /// organization's lease (or takes it now), else [`Moved`], and never forwarded again.
    pub async fn call_here(
        &self,
        org: Uuid,
        call: OrgCall,
    ) -> Result<Result<Option<OrgAnswer>, OrgError>, Moved> {
        if let Ok(Some(Route::There(_))) = self.route(org).await {
            return Err(Moved);
        }
        Ok(self.call(org, call).await)
    }

    async fn forward(
        &self,
        node: &str,
        org: Uuid,
        call: OrgCall,
    ) -> Result<Option<OrgAnswer>, OrgError> {
        let pending = self.leased.send(node, Call::Org { org, call }).await.map_err(|err| {
            tracing::warn!(%node, error = %err, "forwarding to the organization's node failed");
            unavailable_now("the organization's node could not be reached")
        })?;
        match pending.await {
            Ok(Ok(Reply::Org(result))) => result,
            Ok(Ok(Reply::Moved)) => Err(unavailable_now("the organization moved to another node")),
            Ok(Ok(other)) => {
                tracing::error!(?other, "a node answered an organization call with another answer");
                Err(unavailable_now("the organization's node answered unexpectedly"))
            }
            Ok(Err(err)) => {
                tracing::warn!(%node, error = %err, "a forwarded organization call got no answer");
                Err(unavailable_now("the organization's node did not answer"))
            }
            Err(_) => Err(unavailable_now("the organization's node did not answer")),
        }
    }

    /// The role of `user` in `org`; `None` when either does not exist or they are no member.
    pub async fn role(&self, org: Uuid, user: Uuid) -> Result<Option<OrgRole>, OrgError> {
        match self.call(org, OrgCall::Role(user)).await? {
            None => Ok(None),
            Some(OrgAnswer::Role(role)) => Ok(role),
            Some(other) => Err(mismatched(&other)),
        }
    }

    /// Applies a membership change through the organization's actor; answers the previous role.
    pub async fn change(
        &self,
        org: Uuid,
        user: Uuid,
        change: MemberChange,
    ) -> Result<Option<OrgRole>, OrgError> {
        let previous = match self.call(org, OrgCall::Change(user, change)).await? {
            None => return Err(OrgError::NotFound("organization")),
            Some(OrgAnswer::Changed(previous)) => previous,
            Some(other) => return Err(mismatched(&other)),
        };
        if !matches!(change, MemberChange::Add(_)) {
            if let Some(webhooks) = &self.webhooks {
                webhooks.recheck(Affected::User { org, user });
            }
        }
        Ok(previous)
    }

    /// Applies a verified billing event through the organization's actor, so it is serialized
    /// with every other billing event of the organization.
    pub async fn apply_billing(
        &self,
        org: Uuid,
        event: BillingEvent,
    ) -> Result<BillingOutcome, OrgError> {
        match self.call(org, OrgCall::Billing(Box::new(event))).await? {
            None => Err(OrgError::NotFound("organization")),
            Some(OrgAnswer::Billing(outcome)) => Ok(outcome),
            Some(other) => Err(mismatched(&other)),
        }
    }

    /// The plan `org` is on; `None` when there is no such organization.
    pub async fn plan(&self, org: Uuid) -> Result<Option<Plan>, OrgError> {
        match self.call(org, OrgCall::Plan).await? {
            None => Ok(None),
            Some(OrgAnswer::Plan(plan)) => Ok(Some(plan)),
            Some(other) => Err(mismatched(&other)),
        }
    }

    fn turn(&self, org: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut entry = self.creating.entry(org).or_default();
        if let Some(turn) = entry.upgrade() {
            return turn;
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        *entry = Arc::downgrade(&turn);
        turn
    }

    /// Whether `org` may create `adding` more of `resource` (1 for a board, key, webhook;
    /// a file's size for attachment storage): answered by its actor from its plan and the
    /// current use. On success the caller holds the organization's creation turn until it drops
    /// the [`Admission`], after writing; `402 plan_limit` otherwise ([`OrgError::PlanLimit`]).
    pub async fn admit(
        &self,
        org: Uuid,
        resource: Resource,
        adding: u64,
    ) -> Result<Admission, OrgError> {
        if self.creating.len() > 4096 {
            self.creating.retain(|_, turn| turn.strong_count() > 0);
        }
        let turn = self.turn(org).lock_owned().await;
        match self.call(org, OrgCall::Admit(resource, adding)).await? {
            None => Err(OrgError::NotFound("organization")),
            Some(OrgAnswer::Admitted) => Ok(Admission { _turn: turn }),
            Some(other) => Err(mismatched(&other)),
        }
    }

    /// Attachment storage: whether a file of `bytes` fits `org`'s plan on top of the bytes
    /// it stores already. Hold the [`Admission`] until the attachment's row is written.
    pub async fn admit_storage(&self, org: Uuid, bytes: u64) -> Result<Admission, OrgError> {
        self.admit(org, Resource::StorageBytes, bytes).await
    }

    /// `org`'s plan, its limits and what it holds now; `None` when there is no such
    /// organization.
    pub async fn plan_view(&self, org: Uuid) -> Result<Option<PlanView>, OrgError> {
        match self.call(org, OrgCall::View).await? {
            None => Ok(None),
            Some(OrgAnswer::View(view)) => Ok(Some(view)),
            Some(other) => Err(mismatched(&other)),
        }
    }
}

/// An answer to another kind of call: a defect, reported as unavailability.
fn mismatched(answer: &OrgAnswer) -> OrgError {
    tracing::error!(?answer, "an organization answered a call with another kind of answer");
    OrgError::Unavailable("the organization answered unexpectedly; retry".into())
}

/// What asking an actor here gave.
enum Asked {
    /// Its answer, or why there is none.
    Answer(Result<OrgAnswer, OrgError>),
    /// The call never reached it (it stopped meanwhile): safe to ask again.
    NotDelivered,
}

/// Asks the actor here. A lookup answered from memory waits only behind a membership change
/// being written ([`ROLE_TIMEOUT_MS`]); a write waits up to [`CALL_TIMEOUT_MS`]. A read that
/// fails otherwise is asked again; a write only if it was never delivered, since one that was
/// may have been written.
async fn ask(actor: &ActorRef<OrgMessage>, call: &OrgCall) -> Asked {
    use ractor::RactorErr;
    fn outcome<T>(
        result: Result<T, RactorErr<OrgMessage>>,
        read: bool,
        answer: impl FnOnce(T) -> Result<OrgAnswer, OrgError>,
    ) -> Asked {
        match result {
            Ok(value) => Asked::Answer(answer(value)),
            Err(RactorErr::Timeout) => {
                Asked::Answer(Err(unavailable_now("organization did not answer")))
            }
            Err(RactorErr::Messaging(ractor::MessagingErr::SendErr(_))) => Asked::NotDelivered,
            Err(_) if read => Asked::NotDelivered,
            Err(_) => Asked::Answer(Err(unavailable_now("organization did not answer"))),
        }
    }
    match call {
        OrgCall::Role(user) => outcome(
            ractor::call_t!(actor, OrgMessage::Role, ROLE_TIMEOUT_MS, *user),
            true,
            |role| Ok(OrgAnswer::Role(role)),
        ),
        OrgCall::Change(user, change) => outcome(
            ractor::call_t!(actor, OrgMessage::Change, CALL_TIMEOUT_MS, *user, *change),
            false,
            |changed| changed.map(OrgAnswer::Changed),
        ),
        OrgCall::Billing(event) => outcome(
            ractor::call_t!(actor, OrgMessage::Billing, CALL_TIMEOUT_MS, event.clone()),
            false,
            |applied| applied.map(OrgAnswer::Billing),
        ),
        OrgCall::Plan => {
            outcome(ractor::call_t!(actor, OrgMessage::Plan, ROLE_TIMEOUT_MS), true, |plan| {
                Ok(OrgAnswer::Plan(plan))
            })
        }
        OrgCall::Admit(resource, adding) => outcome(
            ractor::call_t!(actor, OrgMessage::Admit, CALL_TIMEOUT_MS, *resource, *adding),
            false,
            |admitted| admitted.map(|()| OrgAnswer::Admitted),
        ),
        OrgCall::View => {
            outcome(ractor::call_t!(actor, OrgMessage::View, CALL_TIMEOUT_MS), true, |view| {
                view.map(OrgAnswer::View)
            })
        }
    }
}
