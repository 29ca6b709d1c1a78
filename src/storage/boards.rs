//! Boards and their contents: the board actor's [`BoardStore`], board creation and listing, and
//! the reads served straight from the database (the event log, updates).
//!
//! Every statement on tenant tables carries `organization_id`. The one exception is
//! [`BoardStore::board_org`], which a supervisor uses to restart a crashed actor that knows only
//! its board id.

use std::collections::{BTreeMap, HashMap};

use boardroom_actors::audit::AuditEvent;
use boardroom_actors::board::{BoardStore, Change, CommandOutput, IdempotentResult, LoadedBoard};
use boardroom_actors::domain::{
    Attachment, Board, BoardEvent, BoardRole, Column, ColumnKind, Group, Item, StoredBlob, Update,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::attachments::insert_attachments;
use super::audit::append_to_chain;
use super::{now, StorageError, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction, write_on_pool};

#[derive(sqlx::FromRow)]
struct BoardRow {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    description: String,
    seq: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl BoardRow {
    fn board(&self) -> Board {
        Board {
            id: self.id,
            organization_id: self.organization_id,
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ColumnRow {
    id: Uuid,
    title: String,
    kind: String,
    settings: Json<Value>,
    position: String,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: Uuid,
    title: String,
    color: Option<String>,
    position: String,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: Uuid,
    group_id: Uuid,
    name: String,
    column_values: Json<BTreeMap<Uuid, Value>>,
    position: String,
    version: i64,
    archived_at: Option<DateTime<Utc>>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UpdateRow {
    id: Uuid,
    item_id: Uuid,
    parent_id: Option<Uuid>,
    author_id: Option<Uuid>,
    body: String,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
}

impl From<UpdateRow> for Update {
    fn from(r: UpdateRow) -> Self {
        Update {
            id: r.id,
            item_id: r.item_id,
            parent_id: r.parent_id,
            author_id: r.author_id,
            body: r.body,
            created_at: r.created_at,
            edited_at: r.edited_at,
        }
    }
}

/// A stored event of a board's log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Position in the log.
    pub seq: i64,
    /// Kind (dotted name).
    pub kind: String,
    /// Who.
    pub actor: Option<Uuid>,
    /// Data.
    pub payload: Json<Value>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Bytes counted for each event of a page besides its data: its other fields as the wire carries
/// them (`seq`, `kind`, `actor`, `created_at`; on sockets also `type` and `board_id`: at most
/// about 230 bytes of JSON) and its share of the page's envelope. So a page of events counted
/// within a bound is, on the wire, within it too.
pub const EVENT_OVERHEAD_BYTES: i64 = 256;

/// A page of a board's log ([`TenantStore::board_events_page`]).
#[derive(Debug)]
pub struct EventPage {
    /// The events, in order.
    pub rows: Vec<EventRow>,
    /// Whether more may follow: the page was cut by count or by bytes.
    pub more: bool,
}

/// An event's `seq` and kind, without its data.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventKindRow {
    /// Position in the log.
    pub seq: i64,
    /// Kind (dotted name).
    pub kind: String,
}

/// A board in a listing, with the caller's role on it.
#[derive(Debug, Clone)]
pub struct BoardListing {
    /// The board.
    pub board: Board,
    /// The caller's role (owner for org admins).
    pub role: BoardRole,
}

/// Rows per multi-row statement: 12 columns each stays far below both backends' parameter
/// limits (SQLite 32,766; Postgres 65,535).
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

/// A batch's changes reduced to each row's final state, so one statement per table can apply
/// them (a row may appear once per statement).
#[derive(Default)]
struct Coalesced<'a> {
    created: Option<(&'a Board, Uuid)>,
    board: Option<&'a Board>,
    delete_board: bool,
    members: HashMap<Uuid, Option<BoardRole>>,
    columns: HashMap<Uuid, &'a Column>,
    groups: HashMap<Uuid, &'a Group>,
    items: HashMap<Uuid, &'a Item>,
    updates: HashMap<Uuid, &'a Update>,
    deleted_columns: Vec<Uuid>,
    deleted_groups: Vec<Uuid>,
    deleted_items: Vec<Uuid>,
    deleted_updates: Vec<Uuid>,
    attachments: Vec<(&'a Attachment, &'a StoredBlob)>,
    deleted_attachments: Vec<Uuid>,
}

impl<'a> Coalesced<'a> {
    fn of(changes: &'a [Change]) -> Self {
        let mut c = Coalesced::default();
        for change in changes {
            match change {
                Change::CreateBoard { board, creator } => c.created = Some((board, *creator)),
                Change::Board(b) => c.board = Some(b),
                Change::DeleteBoard => c.delete_board = true,
                Change::Member(user, role) => {
                    c.members.insert(*user, *role);
                }
                Change::Column(col) => {
                    c.columns.insert(col.id, col);
                }
                Change::DeleteColumn(id) => {
                    c.columns.remove(id);
                    c.deleted_columns.push(*id);
                }
                Change::Group(g) => {
                    c.groups.insert(g.id, g);
                }
                Change::DeleteGroup(id) => {
                    c.groups.remove(id);
                    c.deleted_groups.push(*id);
                }
                Change::Item(i) => {
                    c.items.insert(i.id, i);
                }
                Change::DeleteItem(id) => {
                    c.items.remove(id);
                    c.deleted_items.push(*id);
                }
                Change::Update(u) => {
                    c.updates.insert(u.id, u);
                }
                Change::DeleteUpdate(id) => {
                    c.updates.remove(id);
                    c.deleted_updates.push(*id);
                }
                Change::Attachment(a, blob) => c.attachments.push((a, blob)),
                Change::DeleteAttachment(id) => {
                    // Added and deleted in one batch: never written.
                    let before = c.attachments.len();
                    c.attachments.retain(|(a, _)| a.id != *id);
                    if c.attachments.len() == before {
                        c.deleted_attachments.push(*id);
                    }
                }
            }
        }
        c
    }
}

impl Coalesced<'_> {
    /// Whether the batch only writes items (the common case: item edits, moves, creations).
    fn items_only(&self, idempotent: &[IdempotentResult]) -> bool {
        self.created.is_none()
            && self.board.is_none()
            && !self.delete_board
            && self.members.is_empty()
            && self.columns.is_empty()
            && self.groups.is_empty()
            && self.updates.is_empty()
            && self.deleted_columns.is_empty()
            && self.deleted_groups.is_empty()
            && self.deleted_items.is_empty()
            && self.deleted_updates.is_empty()
            && self.attachments.is_empty()
            && self.deleted_attachments.is_empty()
            && idempotent.is_empty()
    }
}

/// The columns an item row's upsert sets.
pub(super) const ITEM_SET: &str = "group_id = excluded.group_id, name = excluded.name, \
    column_values = excluded.column_values, position = excluded.position, \
    version = excluded.version, archived_at = excluded.archived_at, updated_at = excluded.updated_at";

/// Moves board `$board`'s stored `seq` from `$from` to `$to` (refusing the batch with
/// [`NOT_APPLIED`] if it is elsewhere: another writer moved it; or, with `$fence`, if this
/// node's lease on the board at that epoch lapsed) and appends `$events`, on
/// `$conn` inside the caller's transaction. A macro because each backend's connection is its
/// own type; `transaction!` expands its body once per backend.
macro_rules! append_to_log {
    ($conn:ident, $org:expr, $board:expr, $from:expr, $to:expr, $events:expr, $fence:expr) => {{
        let (org, board): (Uuid, Uuid) = ($org, $board);
        let fence: Option<(&str, i64)> = $fence;
        let moved = match fence {
            None => sqlx::query(
                "UPDATE boards SET seq = $3 WHERE organization_id = $1 AND id = $2 AND seq = $4",
            )
            .bind(org)
            .bind(board)
            .bind($to)
            .bind($from),
            // Several nodes: only while this node's lease on the board, at the epoch its actor
            // runs under, is unexpired (`storage::cluster`).
            Some((node, epoch)) => sqlx::query(&super::cluster::FENCED_SEQ_MOVE)
                .bind(org)
                .bind(board)
                .bind($to)
                .bind($from)
                .bind(node)
                .bind(epoch),
        }
        .execute(&mut *$conn)
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(StorageError::Rule(NOT_APPLIED));
        }
        let events: &[BoardEvent] = $events;
        // Logged as the wire carries each event's data (`crate::wire::events::payload`).
        let logged: Vec<(&BoardEvent, crate::storage::JsonText)> = events
            .iter()
            .map(|e| (e, crate::storage::JsonText::new(crate::wire::events::payload_json(board, &e.data))))
            .collect();
        for chunk in logged.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO board_events (organization_id, board_id, seq, kind, actor, payload, created_at) ",
            );
            q.push_values(chunk, |mut row, (e, payload)| {
                row.push_bind(org)
                    .push_bind(board)
                    .push_bind(e.seq)
                    .push_bind(e.kind().as_str())
                    .push_bind(e.actor)
                    .push_bind(payload)
                    .push_bind(e.created_at);
            });
            q.build().execute(&mut *$conn).await?;
        }
    }};
}
pub(super) use append_to_log;

/// Writes each of `$items` (`&[&Item]`) of board `$board` as it is now, on `$conn` inside the
/// caller's transaction; refuses the batch if any is not that board's ([`upsert_within_board`]).
macro_rules! upsert_items {
    ($conn:ident, $org:expr, $board:expr, $items:expr) => {{
        let (org, board): (Uuid, Uuid) = ($org, $board);
        let items: &[&Item] = $items;
        for chunk in items.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO items (id, organization_id, board_id, group_id, name, column_values, position, \
                 version, archived_at, created_by, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut row, i| {
                row.push_bind(i.id)
                    .push_bind(org)
                    .push_bind(board)
                    .push_bind(i.group_id)
                    .push_bind(&i.name)
                    .push_bind(Json(&i.values))
                    .push_bind(&i.position)
                    .push_bind(i.version)
                    .push_bind(i.archived_at)
                    .push_bind(i.created_by)
                    .push_bind(i.created_at)
                    .push_bind(i.updated_at);
            });
            q.push(upsert_within_board("items", ITEM_SET));
            all_written(q.build().execute(&mut *$conn).await?.rows_affected(), chunk.len())?;
        }
    }};
}
pub(super) use upsert_items;

/// One statement deleting the rows of `table` whose `key` is one of `ids`, within one
/// organization's board.
fn delete_within_board<'a, DB: sqlx::Database>(
    table: &str,
    key: &str,
    org: Uuid,
    board: Uuid,
    ids: &'a [Uuid],
) -> sqlx::QueryBuilder<'a, DB>
where
    Uuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::new(format!("DELETE FROM {table} WHERE organization_id = "));
    q.push_bind(org).push(" AND board_id = ").push_bind(board).push(format!(" AND {key} IN ("));
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
    q
}

/// How a board's row (item, column, group, update) is written: inserted, or updated in place
/// only where the stored row is of the same organization and board, so an id of anyone else's
/// row updates nothing (and [`all_written`] then refuses the batch).
pub(super) fn upsert_within_board(table: &str, set: &str) -> String {
    format!(
        " ON CONFLICT (id) DO UPDATE SET {set} WHERE {table}.organization_id = excluded.organization_id \
         AND {table}.board_id = excluded.board_id"
    )
}

/// Refuses a batch in which a statement wrote fewer rows than it was given.
pub(super) fn all_written(written: u64, rows: usize) -> StorageResult<()> {
    if written == rows as u64 {
        Ok(())
    } else {
        Err(StorageError::Rule(NOT_APPLIED))
    }
}

/// Why a batch was refused as a whole.
pub(super) const NOT_APPLIED: &str =
    "the batch did not apply: the board's log moved underneath this writer, or an item is not the board's";

const BOARD_COLUMNS: &str = "id, organization_id, name, description, seq, created_at, updated_at";
const ITEM_COLUMNS: &str = "id, group_id, name, column_values, position, version, archived_at, \
    created_by, created_at, updated_at";
const UPDATE_COLUMNS: &str = "id, item_id, parent_id, author_id, body, created_at, edited_at";

impl TenantStore<'_> {
    /// The live boards `user` can see: every board for org admins, else those they are on.
    pub async fn boards_for(&self, user: Uuid, admin: bool) -> StorageResult<Vec<BoardListing>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            board: BoardRow,
            role: Option<String>,
        }
        const SQL: &str = "SELECT b.id, b.organization_id, b.name, b.description, b.seq, \
             b.created_at, b.updated_at, m.role \
             FROM boards b LEFT JOIN board_members m ON m.board_id = b.id AND m.user_id = $2 \
             AND m.organization_id = $1 \
             WHERE b.organization_id = $1 AND b.deleted_at IS NULL AND ($3 OR m.role IS NOT NULL) \
             ORDER BY b.id";
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as::<_, Row>(SQL).bind(self.org_id()).bind(user).bind(admin).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| BoardListing {
                board: r.board.board(),
                role: if admin {
                    BoardRole::Owner
                } else {
                    r.role.as_deref().and_then(BoardRole::parse).unwrap_or(BoardRole::Viewer)
                },
            })
            .collect())
    }

    /// A page of the events of `board` after `after`, in order: at most `limit` events, and at
    /// most `max_bytes` counted as [`EVENT_OVERHEAD_BYTES`] plus each event's data as stored
    /// (`payload_bytes`), except that the first event always comes, however large, so paging
    /// never stalls. The sizes are read first and the data only of the events that fit, so a
    /// log of large events is never read whole.
    pub async fn board_events_page(
        &self,
        board: Uuid,
        after: i64,
        limit: i64,
        max_bytes: i64,
    ) -> StorageResult<EventPage> {
        let sizes: Vec<(i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT seq, payload_bytes FROM board_events \
                 WHERE organization_id = $1 AND board_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(self.org_id()).bind(board).bind(after).bind(limit)
            .fetch_all(pool).await
        })?;
        let (mut upto, mut total, mut cut) = (after, 0i64, false);
        for (seq, bytes) in &sizes {
            let size = bytes + EVENT_OVERHEAD_BYTES;
            if upto > after && total + size > max_bytes {
                cut = true;
                break;
            }
            total += size;
            upto = *seq;
        }
        let more = cut || sizes.len() as i64 >= limit;
        if upto == after {
            return Ok(EventPage { rows: Vec::new(), more });
        }
        // Events are never changed once logged, so these are the events just measured.
        let rows = on_pool!(self, pool => {
            sqlx::query_as::<_, EventRow>(
                "SELECT seq, kind, actor, payload, created_at FROM board_events \
                 WHERE organization_id = $1 AND board_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq",
            )
            .bind(self.org_id()).bind(board).bind(after).bind(upto)
            .fetch_all(pool).await
        })?;
        Ok(EventPage { rows, more })
    }

    /// The `seq` and kind of the events of `board` after `after`, in order, at most `limit`:
    /// what filling a webhook outbox needs, without reading the events' data.
    pub async fn board_event_kinds(
        &self,
        board: Uuid,
        after: i64,
        limit: i64,
    ) -> StorageResult<Vec<EventKindRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, EventKindRow>(
                "SELECT seq, kind FROM board_events \
                 WHERE organization_id = $1 AND board_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(self.org_id()).bind(board).bind(after).bind(limit)
            .fetch_all(pool).await
        })?)
    }

    /// How many events of `board` the log holds in `(after, upto]`; the log is whole there when
    /// it is `upto - after`.
    pub async fn board_events_held(
        &self,
        board: Uuid,
        after: i64,
        upto: i64,
    ) -> StorageResult<i64> {
        let (count,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM board_events \
                 WHERE organization_id = $1 AND board_id = $2 AND seq > $3 AND seq <= $4",
            )
            .bind(self.org_id()).bind(board).bind(after).bind(upto)
            .fetch_one(pool).await
        })?;
        Ok(count)
    }

    /// Updates on `item` of `board`, oldest first.
    pub async fn updates(&self, board: Uuid, item: Uuid) -> StorageResult<Vec<Update>> {
        self.updates_on(board, Some(item)).await
    }

    /// Every update on `board` (replies included), oldest first: an organization export's.
    pub async fn board_updates(&self, board: Uuid) -> StorageResult<Vec<Update>> {
        self.updates_on(board, None).await
    }

    async fn updates_on(&self, board: Uuid, item: Option<Uuid>) -> StorageResult<Vec<Update>> {
        let sql = format!(
            "SELECT {UPDATE_COLUMNS} FROM updates WHERE organization_id = $1 AND board_id = $2 \
             AND ($3 IS NULL OR item_id = $3) ORDER BY id"
        );
        let rows: Vec<UpdateRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, UpdateRow>(&sql).bind(self.org_id()).bind(board).bind(item).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(Update::from).collect())
    }

    /// The recorded answer to an organization-level create sent with an idempotency key.
    pub async fn idempotent_create(&self, user: Uuid, key: &str) -> StorageResult<Option<Value>> {
        let row: Option<(Json<Value>,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT response FROM idempotency_keys WHERE organization_id = $1 AND scope_id = $1 \
                 AND user_id = $2 AND key = $3",
            )
            .bind(self.org_id()).bind(user).bind(key)
            .fetch_optional(pool).await
        })?;
        Ok(row.map(|(r,)| r.0))
    }

    /// Records the answer to an organization-level create; false if the key was taken meanwhile.
    pub async fn record_idempotent_create(
        &self,
        user: Uuid,
        key: &str,
        response: &Value,
    ) -> StorageResult<bool> {
        let result = write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO idempotency_keys (organization_id, scope_id, user_id, key, seq, response, created_at) \
                 VALUES ($1, $1, $2, $3, 0, $4, $5)",
            )
            .bind(self.org_id()).bind(user).bind(key).bind(Json(response)).bind(now())
            .execute(pool).await
            .map(|r| r.rows_affected())
        });
        match result.map_err(StorageError::from) {
            Ok(_) => Ok(true),
            Err(StorageError::Unique(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

impl Store {
    /// The stored `seq` of each of `boards` (organization, board), deleted boards included: what
    /// a node of a cluster compares with the last event its sockets were sent
    /// (`cluster::events`). Each board is matched with its organization. One statement on
    /// Postgres, where clusters run; a statement per board on SQLite.
    pub async fn board_seqs(&self, boards: &[(Uuid, Uuid)]) -> StorageResult<Vec<(Uuid, i64)>> {
        match self.pool() {
            super::Pool::Postgres(pool) => {
                let (orgs, ids): (Vec<Uuid>, Vec<Uuid>) = boards.iter().copied().unzip();
                Ok(sqlx::query_as(
                    "SELECT b.id, b.seq FROM boards b \
                     JOIN UNNEST($1::uuid[], $2::uuid[]) AS w(org, id) \
                     ON b.organization_id = w.org AND b.id = w.id",
                )
                .bind(orgs)
                .bind(ids)
                .fetch_all(pool)
                .await?)
            }
            super::Pool::Sqlite(pool) => {
                let mut seqs = Vec::with_capacity(boards.len());
                for (org, board) in boards {
                    let seq: Option<(i64,)> = sqlx::query_as(
                        "SELECT seq FROM boards WHERE organization_id = $1 AND id = $2",
                    )
                    .bind(org)
                    .bind(board)
                    .fetch_optional(pool)
                    .await?;
                    seqs.extend(seq.map(|(seq,)| (*board, seq)));
                }
                Ok(seqs)
            }
        }
    }

    /// Forgets idempotency records older than `before`.
    pub async fn prune_idempotency(&self, before: DateTime<Utc>) -> StorageResult<u64> {
        Ok(write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before).execute(pool).await.map(|r| r.rows_affected())
        })?)
    }
}

#[async_trait::async_trait]
impl BoardStore for Store {
    async fn load_board(&self, org: Uuid, board: Uuid) -> anyhow::Result<Option<LoadedBoard>> {
        let sql = format!(
            "SELECT {BOARD_COLUMNS} FROM boards WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row: Option<BoardRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, BoardRow>(&sql).bind(org).bind(board).fetch_optional(pool).await
        })?;
        let Some(row) = row else { return Ok(None) };
        let members: Vec<(Uuid, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT user_id, role FROM board_members WHERE organization_id = $1 AND board_id = $2")
                .bind(org).bind(board).fetch_all(pool).await
        })?;
        let columns: Vec<ColumnRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, ColumnRow>(
                "SELECT id, title, kind, settings, position FROM columns WHERE organization_id = $1 AND board_id = $2",
            )
            .bind(org).bind(board).fetch_all(pool).await
        })?;
        let groups: Vec<GroupRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, GroupRow>(
                "SELECT id, title, color, position FROM groups WHERE organization_id = $1 AND board_id = $2",
            )
            .bind(org).bind(board).fetch_all(pool).await
        })?;
        let item_sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE organization_id = $1 AND board_id = $2"
        );
        let items: Vec<ItemRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, ItemRow>(&item_sql).bind(org).bind(board).fetch_all(pool).await
        })?;
        let members: HashMap<Uuid, BoardRole> = members
            .into_iter()
            .filter_map(|(user, role)| BoardRole::parse(&role).map(|r| (user, r)))
            .collect();
        let columns = columns
            .into_iter()
            .filter_map(|c| {
                Some(Column {
                    id: c.id,
                    title: c.title,
                    kind: ColumnKind::parse(&c.kind)?,
                    settings: c.settings.0,
                    position: c.position,
                })
            })
            .collect();
        let groups = groups
            .into_iter()
            .map(|g| Group { id: g.id, title: g.title, color: g.color, position: g.position })
            .collect();
        let items = items
            .into_iter()
            .map(|i| Item {
                id: i.id,
                group_id: i.group_id,
                name: i.name,
                values: i.column_values.0,
                position: i.position,
                version: i.version,
                archived_at: i.archived_at,
                created_by: i.created_by,
                created_at: i.created_at,
                updated_at: i.updated_at,
            })
            .collect();
        let attachment_counts = self.board_attachment_counts(org, board).await?;
        Ok(Some(LoadedBoard {
            board: row.board(),
            seq: row.seq,
            members,
            columns,
            groups,
            items,
            attachment_counts,
        }))
    }

    async fn commit(
        &self,
        org: Uuid,
        board: Uuid,
        from_seq: i64,
        changes: &[Change],
        events: &[BoardEvent],
        idempotent: &[IdempotentResult],
    ) -> anyhow::Result<()> {
        let Some(to_seq) = events.last().map(|e| e.seq) else { return Ok(()) };
        let _timed = crate::metrics::commit_started(events.len());
        let at = now();
        let batch = Coalesced::of(changes);
        // Access changes and deletions are audited in the commit's own transaction: the audit
        // row exists exactly when the change does.
        let audited: Vec<AuditEvent> =
            events.iter().filter_map(AuditEvent::from_board_event).collect();
        if batch.items_only(idempotent) && audited.is_empty() {
            let batch = super::item_batches::ItemBatch {
                org,
                board,
                from_seq,
                to_seq,
                events: events.to_vec(),
                items: batch.items.values().map(|item| (*item).clone()).collect(),
            };
            return Ok(self.item_batches.commit(batch).await?);
        }
        let backend = self.backend();
        let audit_key = self.audit_key().cloned();
        let fence = self.fence_of(board)?;
        transaction!(self, conn => {
            // One multi-row statement per table and kind of change: a batch of n commands costs
            // a handful of round trips, not n of them.
            if let Some((b, creator)) = batch.created {
                // At the batch's starting seq (0), which its first event moves on.
                sqlx::query(
                    "INSERT INTO boards (id, organization_id, name, description, seq, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(board).bind(org).bind(&b.name).bind(&b.description).bind(from_seq).bind(creator)
                .bind(b.created_at).bind(b.updated_at)
                .execute(&mut *conn).await?;
            }
            append_to_log!(conn, org, board, from_seq, to_seq, events, fence);
            if let Some(b) = batch.board {
                sqlx::query("UPDATE boards SET name = $3, description = $4, updated_at = $5 WHERE organization_id = $1 AND id = $2")
                    .bind(org).bind(board).bind(&b.name).bind(&b.description).bind(b.updated_at)
                    .execute(&mut *conn).await?;
            }
            let granted: Vec<(&Uuid, BoardRole)> =
                batch.members.iter().filter_map(|(user, role)| role.map(|role| (user, role))).collect();
            for chunk in granted.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO board_members (organization_id, board_id, user_id, role, created_at) ",
                );
                q.push_values(chunk, |mut row, (user, role)| {
                    row.push_bind(org).push_bind(board).push_bind(*user).push_bind(role.as_str()).push_bind(at);
                });
                q.push(" ON CONFLICT (board_id, user_id) DO UPDATE SET role = excluded.role");
                q.build().execute(&mut *conn).await?;
            }
            let removed: Vec<Uuid> =
                batch.members.iter().filter(|(_, role)| role.is_none()).map(|(user, _)| *user).collect();
            for chunk in removed.chunks(ROWS_PER_STATEMENT) {
                delete_within_board("board_members", "user_id", org, board, chunk).build().execute(&mut *conn).await?;
            }
            let columns: Vec<&Column> = batch.columns.values().copied().collect();
            for chunk in columns.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO columns (id, organization_id, board_id, title, kind, settings, position, created_at) ",
                );
                q.push_values(chunk, |mut row, c| {
                    row.push_bind(c.id).push_bind(org).push_bind(board).push_bind(&c.title)
                        .push_bind(c.kind.as_str()).push_bind(Json(&c.settings)).push_bind(&c.position).push_bind(at);
                });
                q.push(upsert_within_board("columns", "title = excluded.title, kind = excluded.kind, settings = excluded.settings, position = excluded.position"));
                all_written(q.build().execute(&mut *conn).await?.rows_affected(), chunk.len())?;
            }
            let groups: Vec<&Group> = batch.groups.values().copied().collect();
            for chunk in groups.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO groups (id, organization_id, board_id, title, color, position, created_at) ",
                );
                q.push_values(chunk, |mut row, g| {
                    row.push_bind(g.id).push_bind(org).push_bind(board).push_bind(&g.title)
                        .push_bind(&g.color).push_bind(&g.position).push_bind(at);
                });
                q.push(upsert_within_board("groups", "title = excluded.title, color = excluded.color, position = excluded.position"));
                all_written(q.build().execute(&mut *conn).await?.rows_affected(), chunk.len())?;
            }
            let items: Vec<&Item> = batch.items.values().copied().collect();
            upsert_items!(conn, org, board, &items);
            let updates: Vec<&Update> = batch.updates.values().copied().collect();
            for chunk in updates.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO updates (id, organization_id, board_id, item_id, parent_id, author_id, body, created_at, edited_at) ",
                );
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(u.id).push_bind(org).push_bind(board).push_bind(u.item_id).push_bind(u.parent_id)
                        .push_bind(u.author_id).push_bind(&u.body).push_bind(u.created_at).push_bind(u.edited_at);
                });
                q.push(upsert_within_board("updates", "body = excluded.body, edited_at = excluded.edited_at"));
                all_written(q.build().execute(&mut *conn).await?.rows_affected(), chunk.len())?;
            }
            // After items and updates: a file may be attached to a comment of this batch.
            insert_attachments!(conn, org, board, &batch.attachments);
            // Deletions last, children first: what a batch created and then removed is gone.
            for (table, ids) in [
                ("attachments", &batch.deleted_attachments),
                ("updates", &batch.deleted_updates),
                ("items", &batch.deleted_items),
                ("groups", &batch.deleted_groups),
                ("columns", &batch.deleted_columns),
            ] {
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    delete_within_board(table, "id", org, board, chunk).build().execute(&mut *conn).await?;
                }
            }
            if batch.delete_board {
                sqlx::query("UPDATE boards SET deleted_at = $3 WHERE organization_id = $1 AND id = $2")
                    .bind(org).bind(board).bind(at)
                    .execute(&mut *conn).await?;
            }
            for chunk in idempotent.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO idempotency_keys (organization_id, scope_id, user_id, key, seq, response, created_at) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(org).push_bind(board).push_bind(r.user_id).push_bind(&r.key)
                        .push_bind(r.output.seq)
                        .push_bind(Json(crate::wire::events::payload(board, &r.output.data)))
                        .push_bind(at);
                });
                q.build().execute(&mut *conn).await?;
            }
            if !audited.is_empty() {
                append_to_chain!(backend, conn, &audited, audit_key);
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn board_org(&self, board: Uuid) -> anyhow::Result<Option<Uuid>> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT organization_id FROM boards WHERE id = $1").bind(board).fetch_optional(pool).await
        })?;
        Ok(row.map(|(o,)| o))
    }

    async fn update(
        &self,
        org: Uuid,
        board: Uuid,
        item: Uuid,
        update: Uuid,
    ) -> anyhow::Result<Option<Update>> {
        let sql = format!(
            "SELECT {UPDATE_COLUMNS} FROM updates WHERE organization_id = $1 AND board_id = $2 AND item_id = $3 AND id = $4"
        );
        let row: Option<UpdateRow> = on_pool!(self, pool => {
            sqlx::query_as::<_, UpdateRow>(&sql).bind(org).bind(board).bind(item).bind(update).fetch_optional(pool).await
        })?;
        Ok(row.map(Update::from))
    }

    async fn attachment(
        &self,
        org: Uuid,
        board: Uuid,
        attachment: Uuid,
    ) -> anyhow::Result<Option<Attachment>> {
        Ok(self.board_attachment(org, board, attachment).await?)
    }

    async fn attachment_count(&self, org: Uuid, board: Uuid, item: Uuid) -> anyhow::Result<u32> {
        Ok(self.item_attachment_count(org, board, item).await?)
    }

    async fn idempotent_result(
        &self,
        org: Uuid,
        board: Uuid,
        user: Uuid,
        key: &str,
    ) -> anyhow::Result<Option<CommandOutput>> {
        // The answer is its event's data; the event's kind says how to read it.
        let row: Option<(i64, String, Json<Value>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT k.seq, e.kind, k.response FROM idempotency_keys k \
                 JOIN board_events e ON e.organization_id = k.organization_id \
                 AND e.board_id = k.scope_id AND e.seq = k.seq \
                 WHERE k.organization_id = $1 AND k.scope_id = $2 AND k.user_id = $3 AND k.key = $4",
            )
            .bind(org).bind(board).bind(user).bind(key)
            .fetch_optional(pool).await
        })?;
        let Some((seq, kind, response)) = row else { return Ok(None) };
        let data = crate::wire::events::decode(&kind, response.0)
            .ok()
            .and_then(crate::wire::events::to_domain)
            .ok_or_else(|| {
                anyhow::anyhow!("the recorded answer to key {key:?} does not read as {kind}")
            })?;
        Ok(Some(CommandOutput { seq, data }))
    }
}
