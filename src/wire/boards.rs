//! Boards on the wire: a board and what it holds, as REST answers it, events carry it and the
//! snapshot shows it. Domain entities carry no `board_id` (the board holds them); the wire
//! names it in each, so every mapping of a board's entity takes it.

use boardroom_actors::board::{ItemPage, Snapshot};
use boardroom_actors::domain::{self, ColumnKind};
use boardroom_protocol::boards as wire;
use uuid::Uuid;

/// A board's own fields.
pub fn board(board: &domain::Board) -> wire::Board {
    wire::Board {
        id: board.id,
        organization_id: board.organization_id,
        name: board.name.clone(),
        description: board.description.clone(),
        created_at: board.created_at,
        updated_at: board.updated_at,
    }
}

/// A board with the caller's role on it (`GET /orgs/{org}/boards`).
pub fn board_with_role(board: &domain::Board, role: domain::BoardRole) -> wire::BoardWithRole {
    wire::BoardWithRole { board: self::board(board), role: self::role(role) }
}

/// The answer to `POST /orgs/{org}/boards`: the board, its first group, the creator's role
/// (owner) and the `seq` of `board.created`.
pub fn created_board(board: &domain::Board, group: &domain::Group, seq: i64) -> wire::CreatedBoard {
    wire::CreatedBoard {
        board: self::board(board),
        role: wire::BoardRole::Owner,
        seq,
        groups: vec![self::group(board.id, group)],
    }
}

/// A role on a board.
pub const fn role(role: domain::BoardRole) -> wire::BoardRole {
    match role {
        domain::BoardRole::Viewer => wire::BoardRole::Viewer,
        domain::BoardRole::Editor => wire::BoardRole::Editor,
        domain::BoardRole::Owner => wire::BoardRole::Owner,
    }
}

/// A column's type.
pub const fn column_type(kind: ColumnKind) -> wire::ColumnType {
    match kind {
        ColumnKind::Text => wire::ColumnType::Text,
        ColumnKind::LongText => wire::ColumnType::LongText,
        ColumnKind::Number => wire::ColumnType::Number,
        ColumnKind::Status => wire::ColumnType::Status,
        ColumnKind::Date => wire::ColumnType::Date,
        ColumnKind::Person => wire::ColumnType::Person,
        ColumnKind::Checkbox => wire::ColumnType::Checkbox,
        ColumnKind::Dropdown => wire::ColumnType::Dropdown,
        ColumnKind::Link => wire::ColumnType::Link,
    }
}

/// A column of `board`.
pub fn column(board: Uuid, column: &domain::Column) -> wire::Column {
    wire::Column {
        id: column.id,
        board_id: board,
        title: column.title.clone(),
        column_type: column_type(column.kind),
        settings: column.settings.clone(),
        position: column.position.clone(),
    }
}

/// A column inside a snapshot (which names the board once).
pub fn snapshot_column(column: &domain::Column) -> wire::SnapshotColumn {
    wire::SnapshotColumn {
        id: column.id,
        title: column.title.clone(),
        column_type: column_type(column.kind),
        settings: column.settings.clone(),
        position: column.position.clone(),
    }
}

/// A group of `board`.
pub fn group(board: Uuid, group: &domain::Group) -> wire::Group {
    wire::Group {
        id: group.id,
        board_id: board,
        title: group.title.clone(),
        color: group.color.clone(),
        position: group.position.clone(),
    }
}

/// An item of `board`.
pub fn item(board: Uuid, item: &domain::Item) -> wire::Item {
    wire::Item {
        id: item.id,
        board_id: board,
        group_id: item.group_id,
        name: item.name.clone(),
        values: item.values.clone(),
        position: item.position.clone(),
        version: item.version,
        archived: item.archived_at.is_some(),
        archived_at: item.archived_at,
        created_by: item.created_by,
        created_by_name: wire::deleted_author(item.created_by),
        created_at: item.created_at,
        updated_at: item.updated_at,
    }
}

/// An update (comment) on an item of `board`.
pub fn update(board: Uuid, update: &domain::Update) -> wire::Update {
    wire::Update {
        id: update.id,
        board_id: board,
        item_id: update.item_id,
        parent_id: update.parent_id,
        author_id: update.author_id,
        author_name: wire::deleted_author(update.author_id),
        body: update.body.clone(),
        created_at: update.created_at,
        edited_at: update.edited_at,
    }
}

/// A whole board.
pub fn snapshot(snapshot: &Snapshot) -> wire::Snapshot {
    let id = snapshot.board.id;
    wire::Snapshot {
        board: board(&snapshot.board),
        columns: snapshot.columns.iter().map(snapshot_column).collect(),
        groups: snapshot.groups.iter().map(|g| group(id, g)).collect(),
        items: snapshot
            .items
            .iter()
            .map(|i| wire::SnapshotItem {
                item: item(id, i),
                attachment_count: snapshot.attachment_counts.get(&i.id).copied().unwrap_or(0),
            })
            .collect(),
        seq: snapshot.seq,
    }
}

/// A page of the items of `board`.
pub fn item_page(board: Uuid, page: &ItemPage) -> wire::ItemPage {
    wire::ItemPage {
        items: page.items.iter().map(|i| item(board, i)).collect(),
        next_cursor: page.next_cursor,
    }
}

/// A board's members, as the board lists them.
pub fn members(members: &[(Uuid, domain::BoardRole)]) -> wire::BoardMembers {
    wire::BoardMembers {
        members: members
            .iter()
            .map(|(user_id, r)| wire::BoardMember { user_id: *user_id, role: role(*r) })
            .collect(),
    }
}

/// The updates on an item of `board`, oldest first.
pub fn updates(board: Uuid, updates: &[domain::Update]) -> wire::UpdateList {
    wire::UpdateList { updates: updates.iter().map(|u| update(board, u)).collect() }
}
