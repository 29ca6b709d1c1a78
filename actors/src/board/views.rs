//! Read views: the answers to a board's queries (snapshot, the board with the caller's role,
//! items, members, access), each behind the same role and scope checks as writes.

use std::collections::HashMap;

use boardroom_protocol::Scope;
use uuid::Uuid;

use super::{BoardQuery, BoardState, Requester};
use crate::domain::{invalid, Board, BoardError, BoardRole, Column, Group, Item};

/// A whole board, read at one instant: `GET /boards/{board}` and a socket's starting point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The board's fields.
    pub board: Board,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// Its groups, in order.
    pub groups: Vec<Group>,
    /// Its items (archived ones too) by group and position; none for a key without
    /// `items:read`.
    pub items: Vec<Item>,
    /// How many files are attached to each of those items (absent: none).
    pub attachment_counts: HashMap<Uuid, u32>,
    /// The `seq` of the last event it includes.
    pub seq: i64,
}

/// One page of a board's items.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ItemPage {
    /// The items, by group and position.
    pub items: Vec<Item>,
    /// The last item of the page when more follow: the cursor of the next page.
    pub next_cursor: Option<Uuid>,
}

/// The answer to a [`BoardQuery`], one variant per query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BoardView {
    /// [`BoardQuery::Snapshot`].
    Snapshot(Snapshot),
    /// [`BoardQuery::Board`]: the board's fields, the caller's role, and the board's `seq`.
    Board {
        /// The board's fields.
        board: Board,
        /// The caller's role.
        role: BoardRole,
        /// The `seq` of its last event.
        seq: i64,
    },
    /// [`BoardQuery::Item`].
    Item(Item),
    /// [`BoardQuery::Items`].
    Items(ItemPage),
    /// [`BoardQuery::Members`]: members and roles, by user id.
    Members(Vec<(Uuid, BoardRole)>),
    /// [`BoardQuery::Access`]: the caller's role.
    Role(BoardRole),
}

impl BoardState {
    fn snapshot(&self, with_items: bool) -> Snapshot {
        let mut items: Vec<&Item> =
            if with_items { self.items.values().collect() } else { Vec::new() };
        let group_rank: HashMap<Uuid, usize> =
            self.groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
        items.sort_by(|a, b| {
            group_rank
                .get(&a.group_id)
                .cmp(&group_rank.get(&b.group_id))
                .then(a.position.cmp(&b.position))
                .then(a.id.cmp(&b.id))
        });
        Snapshot {
            board: self.board.clone(),
            columns: self.columns.clone(),
            groups: self.groups.clone(),
            attachment_counts: items
                .iter()
                .filter_map(|i| Some((i.id, *self.attachment_counts.get(&i.id)?)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            items: items.into_iter().cloned().collect(),
            seq: self.seq,
        }
    }

    pub(super) fn read(
        &self,
        requester: &Requester,
        query: BoardQuery,
    ) -> Result<BoardView, BoardError> {
        match query {
            BoardQuery::Snapshot => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let with_items =
                    requester.scopes.as_ref().is_none_or(|s| s.contains(&Scope::ItemsRead));
                Ok(BoardView::Snapshot(self.snapshot(with_items)))
            }
            BoardQuery::Board => {
                let role = self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                Ok(BoardView::Board { board: self.board.clone(), role, seq: self.seq })
            }
            BoardQuery::Item(id) => {
                self.require(requester, BoardRole::Viewer, Scope::ItemsRead)?;
                Ok(BoardView::Item(self.item(id)?.clone()))
            }
            BoardQuery::Items { group_id, after, limit } => {
                self.require(requester, BoardRole::Viewer, Scope::ItemsRead)?;
                let limit = limit.max(1);
                let groups: Vec<Uuid> = match group_id {
                    Some(g) => vec![self.group(g)?.id],
                    None => self.groups.iter().map(|g| g.id).collect(),
                };
                let ordered: Vec<&Item> = groups.iter().flat_map(|g| self.items_in(*g)).collect();
                let start = match after {
                    Some(after) => ordered
                        .iter()
                        .position(|i| i.id == after)
                        .map(|p| p + 1)
                        .ok_or_else(|| invalid("cursor names no item here"))?,
                    None => 0,
                };
                let items: Vec<Item> =
                    ordered.iter().skip(start).take(limit).map(|i| (*i).clone()).collect();
                let next = (start + limit < ordered.len()).then(|| ordered[start + limit - 1].id);
                Ok(BoardView::Items(ItemPage { items, next_cursor: next }))
            }
            BoardQuery::Members => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let mut members: Vec<(Uuid, BoardRole)> =
                    self.members.iter().map(|(user, role)| (*user, *role)).collect();
                members.sort();
                Ok(BoardView::Members(members))
            }
            BoardQuery::Access(scope) => {
                let role = self.require(requester, BoardRole::Viewer, scope)?;
                Ok(BoardView::Role(role))
            }
            BoardQuery::MayAttach(item) => Ok(BoardView::Role(self.may_attach(requester, item)?)),
        }
    }
}
