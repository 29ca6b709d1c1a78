//! Item-only batches of many boards, written together.
//!
//! A board actor commits its batch in one transaction (group commit per board). When many
//! boards each write a little, every batch is a transaction of its own, and the cost per
//! transaction (a round trip, executor start-up, a WAL flush) is paid per board. Board actors
//! therefore hand their item-only batches (the common kind: item edits, moves, creations) to
//! this collector, which writes whatever batches are waiting together:
//!
//! - **Postgres**: with **one statement**. It moves each board's `seq` from where the batch
//!   started (compare-and-set), appends the events and upserts the items, all rows passed as
//!   arrays so the statement is prepared once whatever the number of boards and rows. The
//!   statement ends in a check that every board's `seq` moved and every item row was written;
//!   if not (another writer moved a board's log, or an item id is not that board's), the check
//!   fails the statement, so nothing of it is written. At most [`STATEMENTS_IN_FLIGHT`] run at
//!   once.
//! - **SQLite**: in **one transaction** (SQLite has one writer at a time, so one in flight),
//!   the same statements as a board's own commit, board after board; any refusal rolls all back.
//!
//! Each batch keeps its own result: when the shared write fails for any reason, every batch of
//! it is written again on its own, so only the board at fault fails. Batches arriving while a
//! write runs gather for the next one. A board never has two batches here at once (its actor
//! waits for its commit), so a write holds at most one batch per board.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use boardroom_actors::domain::{BoardEvent, Item};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use uuid::Uuid;

use super::boards::{
    all_written, append_to_log, upsert_items, upsert_within_board, ITEM_SET, NOT_APPLIED,
    ROWS_PER_STATEMENT,
};
use super::{JsonText, Pool, StorageError, StorageResult};
use crate::transaction;

/// Postgres statements writing batches at the same time. Fewer means bigger statements (64
/// boards over REST: 9,740 updates/s with 4, 10,889 with 2, 11,648 with 1); more than one keeps
/// a slow statement (a lock wait, say) from stalling every board's writes.
pub const STATEMENTS_IN_FLIGHT: usize = 2;

/// Most boards' batches in one write (statement or transaction).
pub const MAX_BOARDS_PER_WRITE: usize = 256;

/// The statement. Its last line fails it (casting the refusal's text to a number) unless every
/// board's `seq` moved and every item row was written, so it applies all or nothing. The arrays
/// are unnested in select lists, not in `FROM`: a set-returning function in `FROM` first copies
/// all its rows into a tuplestore, one in a select list hands them over one at a time (all the
/// arrays of one source have the same length, so they stay row for row either way).
static WRITE_BATCHES: LazyLock<String> = LazyLock::new(|| {
    let upsert = upsert_within_board("items", ITEM_SET);
    let fenced = super::cluster::fence_condition("input.id", "$28", "input.epoch");
    format!(
        "WITH input AS ( \
             SELECT unnest($1::uuid[]) AS org, unnest($2::uuid[]) AS id, \
                 unnest($3::bigint[]) AS from_seq, unnest($4::bigint[]) AS to_seq, \
                 unnest($27::bigint[]) AS epoch \
         ), moved AS ( \
             UPDATE boards SET seq = input.to_seq FROM input \
             WHERE boards.organization_id = input.org AND boards.id = input.id \
                 AND boards.seq = input.from_seq \
                 AND (input.epoch IS NULL OR {fenced}) \
             RETURNING boards.id \
         ), appended AS ( \
             INSERT INTO board_events (organization_id, board_id, seq, kind, actor, payload, created_at) \
             SELECT unnest($5::uuid[]), unnest($6::uuid[]), unnest($7::bigint[]), \
                 unnest($8::text[]), unnest($9::uuid[]), unnest($10::json[]), \
                 unnest($11::timestamptz[]) \
         ), upserted AS ( \
             INSERT INTO items (id, organization_id, board_id, group_id, name, column_values, position, \
                 version, archived_at, created_by, created_at, updated_at) \
             SELECT unnest($12::uuid[]), unnest($13::uuid[]), unnest($14::uuid[]), \
                 unnest($15::uuid[]), unnest($16::text[]), unnest($17::jsonb[]), \
                 unnest($18::text[]), unnest($19::bigint[]), unnest($20::timestamptz[]), \
                 unnest($21::uuid[]), unnest($22::timestamptz[]), unnest($23::timestamptz[]) \
             {upsert} \
             RETURNING 1 \
         ) \
         SELECT CAST(CASE WHEN (SELECT count(*) FROM moved) = $24 \
             AND (SELECT count(*) FROM upserted) = $25 THEN '0' ELSE $26 END AS integer)"
    )
});

/// One board's item-only batch, owned so it can wait for a statement.
pub struct ItemBatch {
    /// The board's organization.
    pub org: Uuid,
    /// The board.
    pub board: Uuid,
    /// The board's stored `seq` the batch starts from.
    pub from_seq: i64,
    /// The batch's last event's `seq`.
    pub to_seq: i64,
    /// The batch's events.
    pub events: Vec<BoardEvent>,
    /// Each item's final state.
    pub items: Vec<Item>,
}

struct Job {
    batch: ItemBatch,
    done: oneshot::Sender<StorageResult<()>>,
}

/// Where the collector writes: the store's pool, and its SQLite write turn (what
/// [`transaction!`] needs of a store).
#[derive(Clone, Debug)]
pub struct Writer {
    pool: Pool,
    turn: Arc<Mutex<()>>,
    fence: super::cluster::FenceCell,
}

impl Writer {
    /// The writer of a store with `pool`, SQLite write turn `turn` and (with several nodes)
    /// board leases `fence`.
    pub fn new(pool: Pool, turn: Arc<Mutex<()>>, fence: super::cluster::FenceCell) -> Self {
        Writer { pool, turn, fence }
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn sqlite_write_turn(&self) -> &Mutex<()> {
        &self.turn
    }
}

/// The collector's handle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ItemBatches {
    jobs: mpsc::UnboundedSender<Job>,
    writer: Writer,
}

impl ItemBatches {
    /// Starts the collector; it ends when the last handle is dropped.
    pub fn start(writer: Writer) -> ItemBatches {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(collect(writer.clone(), rx));
        ItemBatches { jobs, writer }
    }

    /// Writes `batch`, together with other boards' batches waiting at the same time.
    pub async fn commit(&self, batch: ItemBatch) -> StorageResult<()> {
        let (done, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { batch, done }) {
            // The collector is gone (shutting down): write alone.
            return write(&self.writer, std::slice::from_ref(&job.batch)).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StorageError::Transient("the batch writer stopped before answering".into()))
        })
    }
}

async fn collect(writer: Writer, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let in_flight = match writer.pool() {
        Pool::Postgres(_) => STATEMENTS_IN_FLIGHT,
        // One writer at a time anyway.
        Pool::Sqlite(_) => 1,
    };
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = jobs.recv().await {
        // Wait for a free slot before gathering, so batches pile up while statements run.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut gathered = vec![first];
        while gathered.len() < MAX_BOARDS_PER_WRITE {
            match jobs.try_recv() {
                Ok(job) => gathered.push(job),
                Err(_) => break,
            }
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            run(&writer, gathered).await;
            drop(slot);
        });
    }
}

/// Writes the gathered batches together, or each alone if that fails.
async fn run(writer: &Writer, jobs: Vec<Job>) {
    let (batches, answers): (Vec<ItemBatch>, Vec<_>) =
        jobs.into_iter().map(|job| (job.batch, job.done)).unzip();
    if batches.len() > 1 && write(writer, &batches).await.is_ok() {
        for answer in answers {
            let _ = answer.send(Ok(()));
        }
        return;
    }
    for (batch, answer) in batches.iter().zip(answers) {
        let _ = answer.send(write(writer, std::slice::from_ref(batch)).await);
    }
}

/// Writes `batches`: all of them or nothing. Postgres: one statement; SQLite: one
/// transaction, each batch written as a board's own commit writes it.
async fn write(writer: &Writer, batches: &[ItemBatch]) -> StorageResult<()> {
    match writer.pool() {
        Pool::Postgres(pool) => write_postgres(pool, batches, writer.fence.get()).await,
        Pool::Sqlite(_) => transaction!(writer, conn => {
            for batch in batches {
                // SQLite is one node: never fenced.
                append_to_log!(conn, batch.org, batch.board, batch.from_seq, batch.to_seq, &batch.events, None);
                let items: Vec<&Item> = batch.items.iter().collect();
                upsert_items!(conn, batch.org, batch.board, &items);
            }
            Ok(())
        }),
    }
}

/// Column arrays of the statement's parameters: one entry per board, per event, per item.
#[derive(Default)]
struct Columns<'a> {
    board_org: Vec<Uuid>,
    board_id: Vec<Uuid>,
    board_from_seq: Vec<i64>,
    board_to_seq: Vec<i64>,
    event_org: Vec<Uuid>,
    event_board: Vec<Uuid>,
    event_seq: Vec<i64>,
    event_kind: Vec<&'a str>,
    event_actor: Vec<Option<Uuid>>,
    event_data: Vec<JsonText>,
    event_at: Vec<DateTime<Utc>>,
    item_id: Vec<Uuid>,
    item_org: Vec<Uuid>,
    item_board: Vec<Uuid>,
    item_group: Vec<Uuid>,
    item_name: Vec<&'a str>,
    item_values: Vec<Json<&'a BTreeMap<Uuid, Value>>>,
    item_position: Vec<&'a str>,
    item_version: Vec<i64>,
    item_archived_at: Vec<Option<DateTime<Utc>>>,
    item_created_by: Vec<Option<Uuid>>,
    item_created_at: Vec<DateTime<Utc>>,
    item_updated_at: Vec<DateTime<Utc>>,
}

impl<'a> Columns<'a> {
    fn of(batches: &'a [ItemBatch]) -> Self {
        let mut c = Columns::default();
        for b in batches {
            c.board_org.push(b.org);
            c.board_id.push(b.board);
            c.board_from_seq.push(b.from_seq);
            c.board_to_seq.push(b.to_seq);
            for e in &b.events {
                c.event_org.push(b.org);
                c.event_board.push(b.board);
                c.event_seq.push(e.seq);
                c.event_kind.push(e.kind().as_str());
                c.event_actor.push(e.actor);
                c.event_data
                    .push(JsonText::new(crate::wire::events::payload_json(e.board_id, &e.data)));
                c.event_at.push(e.created_at);
            }
            for i in &b.items {
                c.item_id.push(i.id);
                c.item_org.push(b.org);
                c.item_board.push(b.board);
                c.item_group.push(i.group_id);
                c.item_name.push(&i.name);
                c.item_values.push(Json(&i.values));
                c.item_position.push(&i.position);
                c.item_version.push(i.version);
                c.item_archived_at.push(i.archived_at);
                c.item_created_by.push(i.created_by);
                c.item_created_at.push(i.created_at);
                c.item_updated_at.push(i.updated_at);
            }
        }
        c
    }
}

/// One statement for `batches`: all of them or nothing. Every tenant row carries its
/// `organization_id`, and a board's `seq` moves only where organization and board both match.
async fn write_postgres(
    pool: &PgPool,
    batches: &[ItemBatch],
    fence: Option<&Arc<super::cluster::Fence>>,
) -> StorageResult<()> {
    let c = Columns::of(batches);
    // A board this node holds no lease on gets an epoch no lease has, so its batch fails.
    let epochs: Vec<Option<i64>> =
        batches.iter().map(|b| fence.map(|f| f.boards.get(&b.board).map_or(-1, |e| *e))).collect();
    let node = fence.map(|f| f.node_id.as_str());
    let result = sqlx::query(&WRITE_BATCHES)
        .bind(&c.board_org)
        .bind(&c.board_id)
        .bind(&c.board_from_seq)
        .bind(&c.board_to_seq)
        .bind(&c.event_org)
        .bind(&c.event_board)
        .bind(&c.event_seq)
        .bind(&c.event_kind)
        .bind(&c.event_actor)
        .bind(&c.event_data)
        .bind(&c.event_at)
        .bind(&c.item_id)
        .bind(&c.item_org)
        .bind(&c.item_board)
        .bind(&c.item_group)
        .bind(&c.item_name)
        .bind(&c.item_values)
        .bind(&c.item_position)
        .bind(&c.item_version)
        .bind(&c.item_archived_at)
        .bind(&c.item_created_by)
        .bind(&c.item_created_at)
        .bind(&c.item_updated_at)
        .bind(i64::try_from(batches.len()).unwrap_or(i64::MAX))
        .bind(i64::try_from(c.item_id.len()).unwrap_or(i64::MAX))
        .bind(NOT_APPLIED)
        .bind(&epochs)
        .bind(node)
        .execute(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.to_string().contains(NOT_APPLIED) => Err(StorageError::Rule(NOT_APPLIED)),
        Err(err) => Err(StorageError::from(err)),
    }
}
