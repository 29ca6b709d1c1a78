//! The board registry: finds a board's actor, starting it on first use.
//!
//! At most one actor runs per board: actors are registered under the name `board:<id>`, so a
//! second start of the same board finds the first. An actor stops after sitting idle; the next
//! use starts it again from the database. When an actor panics, the supervisor asks the registry
//! to restart it, which reloads the board; the other boards never notice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom_protocol::Scope;
use ractor::{ActorCell, ActorId, ActorRef};
use uuid::Uuid;

use crate::board::{
    BoardActor, BoardArgs, BoardMessage, BoardQuery, BoardStore, BoardView, CommandOutput,
    ItemPage, KeyLookup, LoadedBoard, Requester, Snapshot,
};
use crate::bounds::BoardLimits;
use crate::domain::{BoardCommand, BoardError, BoardRole, Item};
use crate::event_bus::EventBus;
use crate::named;
use crate::org::Orgs;
use crate::remote::{Call, Entity, Leased, Moved, Placement, Reply};

/// How long a command or read may wait for its board.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A board's answer to a message it accepted, to be waited for.
#[must_use = "an answer says whether the command committed"]
pub struct Answer<T>(Waiting<T>);

enum Waiting<T> {
    /// From the board's actor here.
    Here(ractor::concurrency::OneshotReceiver<Result<T, BoardError>>),
    /// From the node that holds the board's lease, as it answered the forwarded call.
    There(crate::remote::Pending, fn(Reply) -> Result<T, BoardError>),
}

impl<T> Answer<T> {
    /// The answer that arrives on `receiver`.
    pub fn on(receiver: ractor::concurrency::OneshotReceiver<Result<T, BoardError>>) -> Self {
        Answer(Waiting::Here(receiver))
    }

    /// Waits for the answer, at most [`CALL_TIMEOUT`].
    pub async fn wait(self) -> Result<T, BoardError> {
        // Unconstrained: a reply that is ready must be seen as ready. Under tokio's budget a
        // ready receiver may answer "pending" and wake itself, which moves it behind answers
        // that came after it, and a connection's replies to one board would leave out of order.
        let answered = match self.0 {
            Waiting::Here(receiver) => {
                tokio::task::unconstrained(tokio::time::timeout(CALL_TIMEOUT, receiver)).await
            }
            Waiting::There(pending, answer) => {
                // The forwarder fails a call it got no answer to in this time itself.
                let reply =
                    tokio::task::unconstrained(tokio::time::timeout(CALL_TIMEOUT, pending)).await;
                return match reply {
                    Ok(Ok(Ok(Reply::Moved))) => Err(unavailable("the board moved to another node")),
                    Ok(Ok(Ok(reply))) => answer(reply),
                    Ok(Ok(Err(err))) => {
                        tracing::warn!(error = %err, "a forwarded board call got no answer");
                        Err(unavailable("the board's node did not answer"))
                    }
                    Ok(Err(_)) | Err(_) => Err(unavailable("the board's node did not answer")),
                };
            }
        };
        match answered {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                Err(BoardError::Unavailable("the board restarted before answering; retry".into()))
            }
            Err(_) => {
                Err(BoardError::Unavailable("the board did not answer in time; retry".into()))
            }
        }
    }
}

/// The registry. One per server.
pub struct Boards {
    store: Arc<dyn BoardStore>,
    /// Board → organization; a board never changes organization, so this never goes stale.
    orgs: dashmap::DashMap<Uuid, Uuid>,
    bus: EventBus,
    org_actors: Arc<Orgs>,
    supervisor: ActorCell,
    idle_timeout: Duration,
    limits: BoardLimits,
    /// Where boards' actors run, with several nodes, and under which leases.
    leased: Leased,
}

type Route = crate::remote::Route<BoardMessage>;

fn unavailable(why: impl std::fmt::Display) -> BoardError {
    BoardError::Unavailable(format!("{why}; retry"))
}

/// A board answered a query with the view of another: a defect, reported as a failure to
/// answer rather than a panic.
fn mismatched(view: BoardView) -> BoardError {
    tracing::error!(?view, "a board answered a query with another view");
    BoardError::Unavailable("the board answered unexpectedly; retry".into())
}

/// Another node answered a board call with the answer to another kind of call: a defect.
fn mismatched_reply(reply: &Reply) -> BoardError {
    tracing::error!(?reply, "a node answered a board call with another kind of answer");
    BoardError::Unavailable("the board's node answered unexpectedly; retry".into())
}

fn actor_name(board: Uuid) -> String {
    format!("board:{board}")
}

/// The board id of an actor named by [`Boards`], if it is one.
pub fn board_of(name: &str) -> Option<Uuid> {
    name.strip_prefix("board:").and_then(|id| Uuid::try_parse(id).ok())
}

impl Boards {
    /// A registry whose actors are supervised by `supervisor`.
    pub fn new(
        store: Arc<dyn BoardStore>,
        org_actors: Arc<Orgs>,
        bus: EventBus,
        supervisor: ActorCell,
        idle_timeout: Duration,
        limits: BoardLimits,
        placement: Option<Arc<dyn Placement>>,
    ) -> Self {
        Boards {
            store,
            orgs: dashmap::DashMap::new(),
            bus,
            org_actors,
            supervisor,
            idle_timeout,
            limits,
            leased: Leased::new(placement),
        }
    }

    /// The organization `board` belongs to (deleted boards included), if it exists.
    pub async fn org_of(&self, board: Uuid) -> anyhow::Result<Option<Uuid>> {
        if let Some(org) = self.orgs.get(&board) {
            return Ok(Some(*org));
        }
        let org = self.store.board_org(board).await?;
        if let Some(org) = org {
            self.orgs.insert(board, org);
        }
        Ok(org)
    }

    /// The event bus the boards publish on.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    fn running(board: Uuid) -> Option<ActorRef<BoardMessage>> {
        named::running(&actor_name(board))
    }

    /// Creates a board in `org`, owned by `requester` (whose organization access the edge
    /// checked), with one group: its actor starts with the board not yet created, and the
    /// creation commits like any other command (event `board.created`, `seq` 1). The answer's
    /// data is [`crate::domain::EventData::BoardCreated`].
    pub async fn create(
        &self,
        org: Uuid,
        requester: Requester,
        name: String,
        description: String,
    ) -> Result<CommandOutput, BoardError> {
        let loaded = LoadedBoard::unborn(org);
        let id = loaded.board.id;
        let epoch = match self.place(id).await? {
            Ok(epoch) => epoch,
            // A new id is nobody's: only a defect or a clash of UUIDv7s gets here.
            Err(node) => return Err(unavailable(format_args!("board {id} is held by {node}"))),
        };
        let actor = self.spawn(loaded, epoch).await?;
        let (tx, rx) = ractor::concurrency::oneshot();
        let command = BoardMessage::Command {
            requester,
            command: BoardCommand::CreateBoard { name, description },
            idempotency_key: None,
            key_lookup: KeyLookup::NotAsked,
            reply: tx.into(),
        };
        if actor.cast(command).is_err() {
            return Err(BoardError::Unavailable("the board could not be created; retry".into()));
        }
        let output = Answer::on(rx).wait().await?;
        self.orgs.insert(id, org);
        Ok(output)
    }

    /// Where `board`'s actor must run: `Ok` here (with the lease's epoch, `None` on one node),
    /// or `Err` with the node holding its lease.
    async fn place(&self, board: Uuid) -> Result<Result<Option<i64>, String>, BoardError> {
        self.leased.place(Entity::Board(board)).await.map_err(|err| {
            tracing::warn!(%board, error = %err, "finding the board's node failed");
            unavailable("the board's node could not be found")
        })
    }

    /// Where `board`'s messages go: its actor here (started if this node may run it), or the
    /// node that holds its lease.
    async fn route(&self, org: Uuid, board: Uuid) -> Result<Route, BoardError> {
        if let Some(actor) = Self::running(board) {
            return Ok(Route::Here(actor));
        }
        let epoch = match self.place(board).await? {
            Ok(epoch) => epoch,
            Err(node) => return Ok(Route::There(node)),
        };
        let loaded = match self.store.load_board(org, board).await {
            Ok(Some(loaded)) if loaded.board.organization_id == org => loaded,
            Ok(_) => {
                self.give_up(board, epoch);
                return Err(BoardError::NotFound("board"));
            }
            Err(e) => {
                tracing::error!(error = ?e, %board, "loading board failed");
                self.give_up(board, epoch);
                return Err(BoardError::Unavailable("storage is unavailable; retry".into()));
            }
        };
        self.spawn(loaded, epoch).await.map(Route::Here)
    }

    /// The actor of `board` in `org` on this node, started if needed. A board of another
    /// organization, or a deleted one, is not found; one whose lease another node holds is
    /// unavailable here.
    pub async fn actor(
        &self,
        org: Uuid,
        board: Uuid,
    ) -> Result<ActorRef<BoardMessage>, BoardError> {
        match self.route(org, board).await? {
            Route::Here(actor) => Ok(actor),
            Route::There(node) => Err(unavailable(format_args!("the board runs on node {node}"))),
        }
    }

    fn give_up(&self, board: Uuid, epoch: Option<i64>) {
        self.leased.give_up(Entity::Board(board), epoch);
    }

    /// A board actor of this registry stopped (the supervisor tells): its lease is given up.
    pub fn stopped(&self, actor: ActorId) {
        self.leased.stopped(actor);
    }

    /// Starts the actor of `loaded` under its board's name, run under the lease at `epoch`.
    async fn spawn(
        &self,
        loaded: LoadedBoard,
        epoch: Option<i64>,
    ) -> Result<ActorRef<BoardMessage>, BoardError> {
        let board = loaded.board.id;
        let args = BoardArgs {
            loaded,
            store: self.store.clone(),
            bus: self.bus.clone(),
            orgs: self.org_actors.clone(),
            idle_timeout: self.idle_timeout,
            limits: self.limits,
        };
        match named::start(actor_name(board), BoardActor, args, self.supervisor.clone()).await {
            Ok(Some(actor)) => {
                self.leased.started(actor.get_id(), Entity::Board(board), epoch);
                Ok(actor)
            }
            Ok(None) => {
                self.give_up(board, epoch);
                Err(BoardError::Unavailable("board is restarting; retry".into()))
            }
            Err(err) => {
                self.give_up(board, epoch);
                tracing::error!(error = %err, %board, "starting board actor failed");
                Err(BoardError::Unavailable("board is unavailable; retry".into()))
            }
        }
    }

    /// Hands a message built by `message` to the board's actor. Only a message that never
    /// reached an actor is retried: one that did may have committed.
    /// `Err(node)`: the board's lease is held by `node`, and nothing was sent.
    async fn send<T: Send + 'static>(
        &self,
        org: Uuid,
        board: Uuid,
        message: impl Fn(ractor::RpcReplyPort<Result<T, BoardError>>) -> BoardMessage,
    ) -> Result<Result<Answer<T>, String>, BoardError> {
        for _ in 0..3 {
            let actor = match self.route(org, board).await? {
                Route::Here(actor) => actor,
                Route::There(node) => return Ok(Err(node)),
            };
            let (tx, rx) = ractor::concurrency::oneshot();
            if actor.cast(message(tx.into())).is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            return Ok(Ok(Answer::on(rx)));
        }
        Err(BoardError::Unavailable("board is restarting; retry".into()))
    }

    /// Sends `call` to `node`, which holds the lease of the board it is for; the answer, when
    /// it comes, is mapped by `answer`. Sent before this returns, so calls handed over in
    /// order reach the node in order.
    async fn forward<T: Send + 'static>(
        &self,
        node: &str,
        call: Call,
        answer: fn(Reply) -> Result<T, BoardError>,
    ) -> Result<Answer<T>, BoardError> {
        let pending = self.leased.send(node, call).await.map_err(|err| {
            tracing::warn!(%node, error = %err, "forwarding to the board's node failed");
            unavailable("the board's node could not be reached")
        })?;
        Ok(Answer(Waiting::There(pending, answer)))
    }

    /// Hands a command to its board. Commands handed to one board are applied in the order
    /// handed; the [`Answer`] arrives once the command's batch has committed. A connection that
    /// pipelines commands hands them here one after another and waits for the answers apart.
    ///
    /// A command with an idempotency key is first looked up in the store here, on the caller's
    /// task, and the actor is told what was found ([`KeyLookup`]): it repeats a stored answer
    /// without asking the store, and for a key the store did not hold it asks only if the
    /// lookup predates what it remembers (see `BoardState::keys_trusted_since`).
    pub async fn submit(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        command: BoardCommand,
        idempotency_key: Option<String>,
    ) -> Result<Answer<CommandOutput>, BoardError> {
        let mut key_lookup = KeyLookup::NotAsked;
        if let Some(key) = &idempotency_key {
            let asked_at = Instant::now();
            match self.store.idempotent_result(org, board, requester.user_id, key).await {
                // Still handed to the actor, which answers 404 for a board deleted meanwhile.
                Ok(Some(output)) => key_lookup = KeyLookup::Found(Box::new(output)),
                Ok(None) => key_lookup = KeyLookup::Absent(asked_at),
                // The actor asks again itself.
                Err(err) => tracing::warn!(error = ?err, "idempotency lookup failed"),
            }
        }
        let sent = self
            .send(org, board, |reply| BoardMessage::Command {
                requester: requester.clone(),
                command: command.clone(),
                idempotency_key: idempotency_key.clone(),
                key_lookup: key_lookup.clone(),
                reply,
            })
            .await?;
        match sent {
            Ok(answer) => Ok(answer),
            Err(node) => {
                let call = Call::BoardCommand { org, board, requester, command, idempotency_key };
                self.forward(&node, call, |reply| match reply {
                    Reply::BoardCommand(result) => result,
                    other => Err(mismatched_reply(&other)),
                })
                .await
            }
        }
    }

    /// [`Self::submit`] for a command another node forwarded here: run here if this node
    /// holds the board's lease (or takes it now), else [`Moved`], and never forwarded again.
    pub async fn submit_here(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        command: BoardCommand,
        idempotency_key: Option<String>,
    ) -> Result<Result<Answer<CommandOutput>, BoardError>, Moved> {
        if let Ok(Route::There(_)) = self.route(org, board).await {
            return Err(Moved);
        }
        Ok(self.submit(org, board, requester, command, idempotency_key).await)
    }

    /// [`Self::read`] for a read another node forwarded here (see [`Self::submit_here`]).
    pub async fn read_here(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        query: BoardQuery,
    ) -> Result<Result<BoardView, BoardError>, Moved> {
        if let Ok(Route::There(_)) = self.route(org, board).await {
            return Err(Moved);
        }
        Ok(self.read(org, board, requester, query).await)
    }

    /// Sends a command to its board and waits for it to commit.
    pub async fn command(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        command: BoardCommand,
        idempotency_key: Option<String>,
    ) -> Result<CommandOutput, BoardError> {
        self.submit(org, board, requester, command, idempotency_key).await?.wait().await
    }

    /// Reads from a board.
    pub async fn read(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        query: BoardQuery,
    ) -> Result<BoardView, BoardError> {
        let sent = self
            .send(org, board, |reply| BoardMessage::Read {
                requester: requester.clone(),
                query: query.clone(),
                reply,
            })
            .await?;
        match sent {
            Ok(answer) => answer.wait().await,
            Err(node) => {
                let call = Call::BoardRead { org, board, requester, query };
                self.forward(&node, call, |reply| match reply {
                    Reply::BoardRead(result) => result,
                    other => Err(mismatched_reply(&other)),
                })
                .await?
                .wait()
                .await
            }
        }
    }

    /// The board whole ([`BoardQuery::Snapshot`]).
    pub async fn snapshot(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
    ) -> Result<Snapshot, BoardError> {
        match self.read(org, board, requester, BoardQuery::Snapshot).await? {
            BoardView::Snapshot(snapshot) => Ok(snapshot),
            other => Err(mismatched(other)),
        }
    }

    /// The `seq` of the board's last event, and the caller's role ([`BoardQuery::Board`]).
    pub async fn seq(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
    ) -> Result<(i64, BoardRole), BoardError> {
        match self.read(org, board, requester, BoardQuery::Board).await? {
            BoardView::Board { seq, role, .. } => Ok((seq, role)),
            other => Err(mismatched(other)),
        }
    }

    /// One item ([`BoardQuery::Item`]).
    pub async fn item(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        item: Uuid,
    ) -> Result<Item, BoardError> {
        match self.read(org, board, requester, BoardQuery::Item(item)).await? {
            BoardView::Item(item) => Ok(item),
            other => Err(mismatched(other)),
        }
    }

    /// A page of items ([`BoardQuery::Items`]).
    pub async fn items(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        query: BoardQuery,
    ) -> Result<ItemPage, BoardError> {
        match self.read(org, board, requester, query).await? {
            BoardView::Items(page) => Ok(page),
            other => Err(mismatched(other)),
        }
    }

    /// The members and their roles, by user id ([`BoardQuery::Members`]).
    pub async fn members(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
    ) -> Result<Vec<(Uuid, BoardRole)>, BoardError> {
        match self.read(org, board, requester, BoardQuery::Members).await? {
            BoardView::Members(members) => Ok(members),
            other => Err(mismatched(other)),
        }
    }

    /// Checks that the caller may read `scope` data on the board; answers their role
    /// ([`BoardQuery::Access`]).
    pub async fn access(
        &self,
        org: Uuid,
        board: Uuid,
        requester: Requester,
        scope: Scope,
    ) -> Result<BoardRole, BoardError> {
        match self.read(org, board, requester, BoardQuery::Access(scope)).await? {
            BoardView::Role(role) => Ok(role),
            other => Err(mismatched(other)),
        }
    }

    /// Restarts a failed board actor from the database (called by the supervisor).
    pub async fn restart(&self, board: Uuid) {
        let org = match self.store_org_of(board).await {
            Some(org) => org,
            None => return,
        };
        if let Err(err) = self.actor(org, board).await {
            tracing::warn!(%board, error = %err, "board not restarted; it starts again on next use");
        }
    }

    async fn store_org_of(&self, board: Uuid) -> Option<Uuid> {
        // A crashed actor's name holds only the board id; its organization comes from the store.
        self.org_of(board).await.ok().flatten()
    }

    /// Whether a board's actor is running now (tests of idle stops).
    #[cfg(feature = "fault-injection")]
    pub fn is_running(&self, board: Uuid) -> bool {
        Self::running(board).is_some()
    }

    /// Crashes a board's actor on purpose (tests of supervision).
    #[cfg(feature = "fault-injection")]
    pub fn inject_panic(&self, board: Uuid) -> bool {
        Self::running(board).is_some_and(|a| a.cast(BoardMessage::InjectPanic).is_ok())
    }

    /// Stops a board's running actor (flushing what it has pending), so its next use loads the
    /// board from the database again: after rows it holds in memory were changed beneath it (an
    /// account's erasure).
    pub async fn reload(&self, board: Uuid) {
        if let Some(actor) = Self::running(board) {
            let stopped = actor.stop_and_wait(Some("reload".into()), Some(Duration::from_secs(5)));
            if stopped.await.is_err() {
                tracing::warn!(%board, "board actor did not stop for a reload");
            }
        }
    }

    /// How many board actors are running (metrics).
    pub fn running_actors(&self) -> usize {
        let children = self.supervisor.get_children();
        children.iter().filter(|c| c.get_name().as_deref().and_then(board_of).is_some()).count()
    }

    /// Stops every running board actor, flushing what each has pending.
    pub async fn stop_all(&self) {
        for cell in self.supervisor.get_children() {
            if cell.get_name().as_deref().and_then(board_of).is_some() {
                let _ =
                    cell.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5))).await;
            }
        }
    }
}
