//! Read views: the answers to a board's queries (snapshot, the board with the caller's role,
//! items, members, access), each behind the same role and scope checks as writes.

use std::collections::HashMap;

use boardroom_protocol::Scope;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{BoardQuery, BoardState, Requester};
use crate::domain::{invalid, Board, BoardError, BoardRole, Column, Group, Item, Update};

/// A board's fields as answered.
pub fn board_json(board: &Board) -> Value {
    json!({
        "id": board.id,
        "organization_id": board.organization_id,
        "name": board.name,
        "description": board.description,
        "created_at": board.created_at,
        "updated_at": board.updated_at,
    })
}

pub(super) fn group_json(board: Uuid, group: &Group) -> Value {
    json!({ "id": group.id, "board_id": board, "title": group.title, "color": group.color, "position": group.position })
}

pub(super) fn column_json(board: Uuid, column: &Column) -> Value {
    json!({
        "id": column.id, "board_id": board, "title": column.title, "type": column.kind.as_str(),
        "settings": column.settings, "position": column.position,
    })
}

/// An item as answered.
pub fn item_json(board: Uuid, item: &Item) -> Value {
    json!({
        "id": item.id,
        "board_id": board,
        "group_id": item.group_id,
        "name": item.name,
        "values": item.values,
        "position": item.position,
        "version": item.version,
        "archived": item.archived_at.is_some(),
        "archived_at": item.archived_at,
        "created_by": item.created_by,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    })
}

/// An update as answered.
pub fn update_json(board: Uuid, update: &Update) -> Value {
    json!({
        "id": update.id,
        "board_id": board,
        "item_id": update.item_id,
        "parent_id": update.parent_id,
        "author_id": update.author_id,
        "body": update.body,
        "created_at": update.created_at,
        "edited_at": update.edited_at,
    })
}

impl BoardState {
    fn snapshot(&self, with_items: bool) -> Value {
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
        json!({
            "board": board_json(&self.board),
            "columns": self.columns,
            "groups": self.groups.iter().map(|g| group_json(self.board.id, g)).collect::<Vec<_>>(),
            "items": items.iter().map(|i| item_json(self.board.id, i)).collect::<Vec<_>>(),
            "seq": self.seq,
        })
    }

    pub(super) fn read(
        &self,
        requester: &Requester,
        query: BoardQuery,
    ) -> Result<Value, BoardError> {
        match query {
            BoardQuery::Snapshot => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let with_items =
                    requester.scopes.as_ref().is_none_or(|s| s.contains(&Scope::ItemsRead));
                Ok(self.snapshot(with_items))
            }
            BoardQuery::Board => {
                let role = self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let mut board = board_json(&self.board);
                board["role"] = json!(role.as_str());
                board["seq"] = json!(self.seq);
                Ok(board)
            }
            BoardQuery::Item(id) => {
                self.require(requester, BoardRole::Viewer, Scope::ItemsRead)?;
                Ok(item_json(self.board.id, self.item(id)?))
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
                let page: Vec<Value> = ordered
                    .iter()
                    .skip(start)
                    .take(limit)
                    .map(|i| item_json(self.board.id, i))
                    .collect();
                let next = (start + limit < ordered.len()).then(|| ordered[start + limit - 1].id);
                Ok(json!({ "items": page, "next_cursor": next }))
            }
            BoardQuery::Members => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let mut members: Vec<(&Uuid, &BoardRole)> = self.members.iter().collect();
                members.sort();
                Ok(
                    json!({ "members": members.iter().map(|(u, r)| json!({"user_id": u, "role": r.as_str()})).collect::<Vec<_>>() }),
                )
            }
            BoardQuery::Access(scope) => {
                let role = self.require(requester, BoardRole::Viewer, scope)?;
                Ok(json!({ "role": role.as_str() }))
            }
        }
    }
}
