//! Applying commands: each [`BoardCommand`] is checked against the caller's role and scopes and
//! the board's state, and, when it passes, applied to the board in memory, answering the row
//! changes to write and the event to log. A refused command leaves the board as it was.

use std::collections::BTreeMap;

use boardroom_protocol::Scope;
use serde_json::Value;
use uuid::Uuid;

use super::{now, BoardState, Change, Requester};
use crate::domain::{
    invalid, Attachment, BoardCommand, BoardError, BoardRole, Column, EventData, Group, Item,
    Placement, Update,
};
use crate::position;
use crate::values::{self, MAX_LONG_TEXT_CHARS, MAX_NAME_CHARS, MAX_TITLE_CHARS};

/// A position for `moving` (or, with `None`, something new) placed among `siblings` (ids with
/// their keys, in order; `moving` itself is skipped).
fn place_among<'a>(
    siblings: impl Iterator<Item = (Uuid, &'a str)>,
    moving: Option<Uuid>,
    placement: &Placement,
) -> Result<String, BoardError> {
    let siblings: Vec<(Uuid, &str)> = siblings.filter(|(id, _)| Some(*id) != moving).collect();
    place(&siblings, placement)
}

/// A position for something placed among `siblings` (sorted keys with ids).
fn place(siblings: &[(Uuid, &str)], placement: &Placement) -> Result<String, BoardError> {
    let index_of = |id: Uuid| {
        siblings
            .iter()
            .position(|(s, _)| *s == id)
            .ok_or(BoardError::NotFound("sibling to place next to"))
    };
    let (low, high) = match (placement.before, placement.after) {
        (None, None) => (siblings.last().map(|(_, p)| *p), None),
        (Some(before), None) => {
            let i = index_of(before)?;
            (i.checked_sub(1).map(|j| siblings[j].1), Some(siblings[i].1))
        }
        (None, Some(after)) => {
            let i = index_of(after)?;
            (Some(siblings[i].1), siblings.get(i + 1).map(|(_, p)| *p))
        }
        (Some(before), Some(after)) => {
            let (a, b) = (index_of(after)?, index_of(before)?);
            if a + 1 != b {
                return Err(invalid("`after` and `before` must be adjacent, in that order"));
            }
            (Some(siblings[a].1), Some(siblings[b].1))
        }
    };
    let key = position::between(low, high)
        .ok_or_else(|| BoardError::Conflict("cannot place there; reload and retry".into()))?;
    if key.len() > position::MAX_KEY_LEN {
        return Err(BoardError::Conflict(
            "no room is left between those two neighbours; place it elsewhere".into(),
        ));
    }
    Ok(key)
}

impl BoardState {
    /// A position in `group` for `moving` (or, with `None`, a new item) placed as `placement`
    /// says. At the end, the common case for creating and for moving to another group, only the
    /// group's last item matters and is found in one pass: sorting the group made each such
    /// write O(n log n) in the board's items.
    fn item_position(
        &self,
        group: Uuid,
        moving: Option<Uuid>,
        placement: &Placement,
    ) -> Result<String, BoardError> {
        if placement.before.is_none() && placement.after.is_none() {
            let last = self
                .items
                .values()
                .filter(|i| i.group_id == group && Some(i.id) != moving)
                .max_by(super::item_order)
                .map(|i| (i.id, i.position.as_str()));
            return place(last.as_slice(), placement);
        }
        place_among(
            self.items_in(group).iter().map(|i| (i.id, i.position.as_str())),
            moving,
            placement,
        )
    }

    /// Checks and applies one command, returning its row changes and its event's data.
    pub(super) async fn apply(
        &mut self,
        requester: &Requester,
        command: BoardCommand,
    ) -> Result<(Vec<Change>, EventData), BoardError> {
        let board_id = self.board.id;
        let at = now();
        match command {
            BoardCommand::CreateBoard { name, description } => {
                if self.seq != 0 {
                    return Err(BoardError::Conflict("the board exists already".into()));
                }
                // The edge checked the organization; on the board there is no role to check yet.
                if requester.scopes.as_ref().is_some_and(|s| !s.contains(&Scope::BoardsWrite)) {
                    return Err(BoardError::MissingScope(Scope::BoardsWrite.as_str()));
                }
                let mut board = self.board.clone();
                board.name = values::check_text("name", &name, MAX_TITLE_CHARS)?;
                board.description = values::check_description(&description)?;
                board.created_at = at;
                board.updated_at = at;
                let position = place(&[], &Placement::default())?;
                let group =
                    Group { id: Uuid::now_v7(), title: "Group 1".into(), color: None, position };
                let owner = requester.user_id;
                self.board = board.clone();
                self.members.insert(owner, BoardRole::Owner);
                self.groups.push(group.clone());
                let changes = vec![
                    Change::CreateBoard { board: board.clone(), creator: owner },
                    Change::Member(owner, Some(BoardRole::Owner)),
                    Change::Group(group.clone()),
                ];
                Ok((changes, EventData::BoardCreated { board, group, owner }))
            }
            BoardCommand::UpdateBoard { name, description } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                if name.is_none() && description.is_none() {
                    return Err(invalid("nothing to change: give name or description"));
                }
                let mut board = self.board.clone();
                if let Some(name) = name {
                    board.name = values::check_text("name", &name, MAX_TITLE_CHARS)?;
                }
                if let Some(description) = description {
                    board.description = values::check_description(&description)?;
                }
                board.updated_at = at;
                self.board = board.clone();
                Ok((vec![Change::Board(board.clone())], EventData::BoardUpdated(board)))
            }
            BoardCommand::DeleteBoard => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.deleted = true;
                Ok((vec![Change::DeleteBoard], EventData::BoardDeleted))
            }
            BoardCommand::SetMember { user_id, role } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                if !self.is_org_member(user_id).await? {
                    return Err(invalid("that user is not a member of this organization"));
                }
                let previous = self.members.get(&user_id).copied();
                if previous == Some(role) {
                    return Err(BoardError::Conflict(format!(
                        "already a {} of this board",
                        role.as_str()
                    )));
                }
                self.keep_an_owner(user_id, Some(role))?;
                self.members.insert(user_id, role);
                let data = EventData::MemberSet { user_id, role, previous_role: previous };
                Ok((vec![Change::Member(user_id, Some(role))], data))
            }
            BoardCommand::RemoveMember { user_id } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                let previous =
                    *self.members.get(&user_id).ok_or(BoardError::NotFound("board member"))?;
                self.keep_an_owner(user_id, None)?;
                self.members.remove(&user_id);
                let data = EventData::MemberRemoved { user_id, previous_role: previous };
                Ok((vec![Change::Member(user_id, None)], data))
            }
            BoardCommand::CreateColumn { title, kind, settings, placement } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.limits.room_for_column(self.columns.len())?;
                let title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                let settings = values::check_settings(kind, settings.as_ref())?;
                let position = place_among(
                    self.columns.iter().map(|c| (c.id, c.position.as_str())),
                    None,
                    &placement,
                )?;
                let column = Column { id: Uuid::now_v7(), title, kind, settings, position };
                self.columns.push(column.clone());
                self.columns.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((vec![Change::Column(column.clone())], EventData::ColumnCreated(column)))
            }
            BoardCommand::UpdateColumn { column_id, title, kind, settings, placement } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                let mut column = self.column(column_id)?.clone();
                if let Some(title) = title {
                    column.title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                }
                if placement != Placement::default() {
                    column.position = place_among(
                        self.columns.iter().map(|c| (c.id, c.position.as_str())),
                        Some(column_id),
                        &placement,
                    )?;
                }
                let retyped = kind.is_some_and(|kind| kind != column.kind);
                if let Some(kind) = kind {
                    column.kind = kind;
                }
                match &settings {
                    Some(settings) => {
                        column.settings = values::check_settings(column.kind, Some(settings))?;
                    }
                    // A retyped column keeps its labels when the new type takes labels too
                    // (status and dropdown); a type that takes none drops them.
                    None if retyped => {
                        column.settings =
                            values::check_settings(column.kind, Some(&column.settings))
                                .or_else(|_| values::check_settings(column.kind, None))?;
                    }
                    None => {}
                }
                // Nothing below can fail: a refused command must leave the board as it was.
                let mut changes = Vec::new();
                if settings.is_some() || retyped {
                    // Values no longer allowed by the new labels or type are cleared, not left
                    // invalid.
                    for item in self.items.values_mut() {
                        if let Some(value) = item.values.get(&column_id) {
                            if values::check_value(&column, value).is_err() {
                                item.values.remove(&column_id);
                                item.version += 1;
                                item.updated_at = at;
                                changes.push(Change::Item(item.clone()));
                            }
                        }
                    }
                }
                if let Some(slot) = self.columns.iter_mut().find(|c| c.id == column_id) {
                    *slot = column.clone();
                }
                self.columns.sort_by(|a, b| a.position.cmp(&b.position));
                changes.insert(0, Change::Column(column.clone()));
                Ok((changes, EventData::ColumnUpdated(column)))
            }
            BoardCommand::DeleteColumn { column_id } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.column(column_id)?;
                self.columns.retain(|c| c.id != column_id);
                let mut changes = vec![Change::DeleteColumn(column_id)];
                for item in self.items.values_mut() {
                    if item.values.remove(&column_id).is_some() {
                        item.version += 1;
                        item.updated_at = at;
                        changes.push(Change::Item(item.clone()));
                    }
                }
                Ok((changes, EventData::ColumnDeleted { column_id }))
            }
            BoardCommand::CreateGroup { title, color, placement } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                self.limits.room_for_group(self.groups.len())?;
                let title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                let color = color.map(|c| values::check_text("color", &c, 32)).transpose()?;
                let position = place_among(
                    self.groups.iter().map(|g| (g.id, g.position.as_str())),
                    None,
                    &placement,
                )?;
                let group = Group { id: Uuid::now_v7(), title, color, position };
                self.groups.push(group.clone());
                self.groups.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((vec![Change::Group(group.clone())], EventData::GroupCreated(group)))
            }
            BoardCommand::UpdateGroup { group_id, title, color, placement } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                let mut group = self.group(group_id)?.clone();
                if let Some(title) = title {
                    group.title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                }
                if let Some(color) = color {
                    group.color = Some(values::check_text("color", &color, 32)?);
                }
                if placement != Placement::default() {
                    group.position = place_among(
                        self.groups.iter().map(|g| (g.id, g.position.as_str())),
                        Some(group_id),
                        &placement,
                    )?;
                }
                if let Some(slot) = self.groups.iter_mut().find(|g| g.id == group_id) {
                    *slot = group.clone();
                }
                self.groups.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((vec![Change::Group(group.clone())], EventData::GroupUpdated(group)))
            }
            BoardCommand::DeleteGroup { group_id } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                self.group(group_id)?;
                self.groups.retain(|g| g.id != group_id);
                self.items.retain(|_, i| i.group_id != group_id);
                let items = &self.items;
                self.attachment_counts.retain(|item, _| items.contains_key(item));
                Ok((vec![Change::DeleteGroup(group_id)], EventData::GroupDeleted { group_id }))
            }
            BoardCommand::CreateItem { group_id, name, values, placement } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                self.group(group_id)?;
                // Archived items count: they are held, snapshotted and replayed alike.
                self.limits.room_for_item(self.items.len())?;
                let name = values::check_text("name", &name, MAX_NAME_CHARS)?;
                let mut checked = BTreeMap::new();
                for (column_id, value) in values {
                    if let Some(value) = self.check_value(column_id, &value).await? {
                        checked.insert(column_id, value);
                    }
                }
                self.limits.check_item_values(&checked)?;
                let position = self.item_position(group_id, None, &placement)?;
                let item = Item {
                    id: Uuid::now_v7(),
                    group_id,
                    name,
                    values: checked,
                    position,
                    version: 1,
                    archived_at: None,
                    created_by: Some(requester.user_id),
                    created_at: at,
                    updated_at: at,
                };
                self.items.insert(item.id, item.clone());
                Ok((vec![Change::Item(item.clone())], EventData::ItemCreated(item)))
            }
            BoardCommand::UpdateItem { item_id, name, values, expected_version } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                if let Some(expected) = expected_version {
                    if expected != item.version {
                        return Err(BoardError::VersionConflict {
                            current: item.version,
                            expected,
                        });
                    }
                }
                if name.is_none() && values.is_empty() {
                    return Err(invalid("nothing to change: give name or values"));
                }
                if let Some(name) = name {
                    item.name = values::check_text("name", &name, MAX_NAME_CHARS)?;
                }
                let mut changed_values = BTreeMap::new();
                for (column_id, value) in values {
                    match self.check_value(column_id, &value).await? {
                        Some(value) => {
                            item.values.insert(column_id, value.clone());
                            changed_values.insert(column_id, value);
                        }
                        None => {
                            item.values.remove(&column_id);
                            changed_values.insert(column_id, Value::Null);
                        }
                    }
                }
                // The merged values, so many small changes cannot grow an item past the bound.
                self.limits.check_item_values(&item.values)?;
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                Ok((
                    vec![Change::Item(item.clone())],
                    EventData::ItemUpdated { item, changed_values },
                ))
            }
            BoardCommand::MoveItem { item_id, group_id, placement } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                self.group(group_id)?;
                let from_group = item.group_id;
                item.position = self.item_position(group_id, Some(item_id), &placement)?;
                item.group_id = group_id;
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                let data = EventData::ItemMoved { item: item.clone(), from_group_id: from_group };
                Ok((vec![Change::Item(item)], data))
            }
            BoardCommand::ArchiveItem { item_id, archived } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                if item.archived_at.is_some() == archived {
                    return Err(BoardError::Conflict(if archived {
                        "already archived".into()
                    } else {
                        "not archived".into()
                    }));
                }
                item.archived_at = archived.then_some(at);
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                Ok((vec![Change::Item(item.clone())], EventData::ItemArchived(item)))
            }
            BoardCommand::DeleteItem { item_id } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let item = self.items.remove(&item_id).ok_or(BoardError::NotFound("item"))?;
                self.attachment_counts.remove(&item_id);
                let data = EventData::ItemDeleted { item_id, group_id: item.group_id };
                Ok((vec![Change::DeleteItem(item_id)], data))
            }
            BoardCommand::CreateUpdate { item_id, body, parent_id } => {
                self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let body = values::check_long_text("body", &body, MAX_LONG_TEXT_CHARS)?;
                self.limits.check_update_body(&body)?;
                if let Some(parent) = parent_id {
                    let parent = self
                        .update_on_item(board_id, item_id, parent, "parent update on this item")
                        .await?;
                    if parent.parent_id.is_some() {
                        return Err(invalid(
                            "reply to the update itself, not to one of its replies",
                        ));
                    }
                }
                let update = Update {
                    id: Uuid::now_v7(),
                    item_id,
                    parent_id,
                    author_id: Some(requester.user_id),
                    body,
                    created_at: at,
                    edited_at: None,
                };
                Ok((vec![Change::Update(update.clone())], EventData::UpdateCreated(update)))
            }
            BoardCommand::EditUpdate { item_id, update_id, body } => {
                self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let mut update = self
                    .store
                    .update(self.org(), board_id, item_id, update_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(BoardError::NotFound("update"))?;
                if update.author_id != Some(requester.user_id) {
                    return Err(BoardError::Forbidden("author"));
                }
                update.body = values::check_long_text("body", &body, MAX_LONG_TEXT_CHARS)?;
                self.limits.check_update_body(&update.body)?;
                update.edited_at = Some(at);
                Ok((vec![Change::Update(update.clone())], EventData::UpdateEdited(update)))
            }
            BoardCommand::DeleteUpdate { item_id, update_id } => {
                let role = self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let update = self
                    .store
                    .update(self.org(), board_id, item_id, update_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(BoardError::NotFound("update"))?;
                if update.author_id != Some(requester.user_id) && role != BoardRole::Owner {
                    return Err(BoardError::Forbidden("owner (or the update's author)"));
                }
                Ok((
                    vec![Change::DeleteUpdate(update_id)],
                    EventData::UpdateDeleted { update_id, item_id },
                ))
            }
            BoardCommand::AddAttachment {
                item_id,
                update_id,
                name,
                size,
                content_type,
                sha256,
                blob,
            } => {
                self.may_attach(requester, item_id)?;
                if let Some(update_id) = update_id {
                    self.update_on_item(board_id, item_id, update_id, "update on this item")
                        .await?;
                }
                let name = values::check_text("name", &name, MAX_NAME_CHARS)?;
                check_attachment_facts(&content_type, &sha256)?;
                let attachment = Attachment {
                    id: Uuid::now_v7(),
                    item_id,
                    update_id,
                    name,
                    size,
                    content_type,
                    sha256,
                    created_by: Some(requester.user_id),
                    created_at: at,
                };
                *self.attachment_counts.entry(item_id).or_insert(0) += 1;
                Ok((
                    vec![Change::Attachment(attachment.clone(), blob)],
                    EventData::AttachmentAdded(attachment),
                ))
            }
            BoardCommand::DeleteAttachment { attachment_id } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let found = match self.pending_attachment(attachment_id) {
                    Some(pending) => pending,
                    None => self
                        .store
                        .attachment(self.org(), board_id, attachment_id)
                        .await
                        .map_err(unavailable)?,
                };
                // Gone with its item or its comment (in the store, or in the pending batch).
                let attachment = found
                    .filter(|a| self.items.contains_key(&a.item_id))
                    .filter(|a| a.update_id.and_then(|u| self.pending_update(u)) != Some(None))
                    .ok_or(BoardError::NotFound("attachment"))?;
                let item_id = attachment.item_id;
                if let Some(count) = self.attachment_counts.get_mut(&item_id) {
                    *count = count.saturating_sub(1);
                }
                Ok((
                    vec![Change::DeleteAttachment(attachment_id)],
                    EventData::AttachmentDeleted { attachment_id, item_id },
                ))
            }
        }
    }

    /// Whether `requester` may attach one more file to `item` now: an editor (a key with
    /// `items:write`), the item on this board, room for one more. Checked again when the
    /// file's row is added, and before its bytes are read (`BoardQuery::MayAttach`).
    pub(super) fn may_attach(
        &self,
        requester: &Requester,
        item_id: Uuid,
    ) -> Result<BoardRole, BoardError> {
        let role = self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
        self.item(item_id)?;
        let held = self.attachment_counts.get(&item_id).copied().unwrap_or(0);
        self.limits.room_for_attachment(held as usize)?;
        Ok(role)
    }

    /// An attachment as the batch waiting to be written leaves it: `Some(Some(_))` added there,
    /// `Some(None)` deleted there, `None` not touched (the store knows).
    fn pending_attachment(&self, id: Uuid) -> Option<Option<Attachment>> {
        let pending = self.pending.as_ref()?;
        pending.changes.iter().fold(None, |found, change| match change {
            Change::Attachment(attachment, _) if attachment.id == id => {
                Some(Some(attachment.clone()))
            }
            Change::DeleteAttachment(deleted) if *deleted == id => Some(None),
            _ => found,
        })
    }

    /// A board always keeps an explicit owner.
    fn keep_an_owner(&self, user: Uuid, next: Option<BoardRole>) -> Result<(), BoardError> {
        let is_owner = self.members.get(&user) == Some(&BoardRole::Owner);
        let owners = self.members.values().filter(|r| **r == BoardRole::Owner).count();
        if is_owner && next != Some(BoardRole::Owner) && owners <= 1 {
            return Err(BoardError::Conflict("a board must keep at least one owner".into()));
        }
        Ok(())
    }

    /// An update as the batch waiting to be written leaves it: `Some(Some(_))` written there,
    /// `Some(None)` deleted there, `None` not touched (the store knows).
    /// The update `update_id` if it is on `item_id`: as this batch left it, else as stored;
    /// `NotFound(what)` otherwise.
    async fn update_on_item(
        &self,
        board_id: Uuid,
        item_id: Uuid,
        update_id: Uuid,
        what: &'static str,
    ) -> Result<Update, BoardError> {
        let update = match self.pending_update(update_id) {
            Some(pending) => pending,
            None => self
                .store
                .update(self.org(), board_id, item_id, update_id)
                .await
                .map_err(unavailable)?,
        };
        update.filter(|u| u.item_id == item_id).ok_or(BoardError::NotFound(what))
    }

    fn pending_update(&self, id: Uuid) -> Option<Option<Update>> {
        let pending = self.pending.as_ref()?;
        pending.changes.iter().fold(None, |found, change| match change {
            Change::Update(update) if update.id == id => Some(Some(update.clone())),
            Change::DeleteUpdate(deleted) if *deleted == id => Some(None),
            _ => found,
        })
    }

    /// Whether `user` belongs to the board's organization, as its org actor (the owner of
    /// memberships) knows it: from its memory, once it has loaded the organization.
    async fn is_org_member(&self, user: Uuid) -> Result<bool, BoardError> {
        match self.orgs.role(self.org(), user).await {
            Ok(role) => Ok(role.is_some()),
            Err(err) => {
                tracing::error!(error = %err, board = %self.board.id, "organization lookup failed");
                Err(BoardError::Unavailable("organization is unavailable; retry".into()))
            }
        }
    }

    /// Checks a value for a column of this board; `None` clears it.
    async fn check_value(
        &self,
        column_id: Uuid,
        value: &Value,
    ) -> Result<Option<Value>, BoardError> {
        let column = self
            .columns
            .iter()
            .find(|c| c.id == column_id)
            .ok_or_else(|| invalid(format!("no column {column_id} on this board")))?;
        let checked = values::check_value(column, value)?;
        for person in &checked.people {
            if !self.is_org_member(*person).await? {
                return Err(invalid(format!("user {person} is not a member of this organization")));
            }
        }
        Ok((!checked.value.is_null()).then_some(checked.value))
    }
}

/// The facts the edge established about a file: a content type of the form `type/subtype`
/// (printable ASCII, bounded) and a SHA-256 in lowercase hex.
fn check_attachment_facts(content_type: &str, sha256: &str) -> Result<(), BoardError> {
    let printable = |c: char| c.is_ascii_graphic() || c == ' ';
    if content_type.is_empty()
        || content_type.len() > 255
        || !content_type.contains('/')
        || !content_type.chars().all(printable)
    {
        return Err(invalid("content type must be a media type such as text/plain"));
    }
    if sha256.len() != 64 || !sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(invalid("sha256 must be 64 lowercase hex digits"));
    }
    Ok(())
}

fn unavailable(err: anyhow::Error) -> BoardError {
    tracing::error!(error = ?err, "board storage failed");
    BoardError::Unavailable("storage is unavailable; retry".into())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Moving two items back and forth past each other lengthens their keys; placements stop
    /// being accepted at the bound instead of growing keys for ever.
    #[test]
    fn positions_stop_growing_at_the_bound() {
        let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut keys: HashMap<Uuid, String> =
            HashMap::from([(x, "a0".to_owned()), (y, "a1".to_owned()), (z, "a2".to_owned())]);
        let mut refused = None;
        for n in 0..100_000 {
            // Move whichever of x and y is first to just after the other (z stays last).
            let (first, second) = if keys[&x] < keys[&y] { (x, y) } else { (y, x) };
            let mut siblings: Vec<(Uuid, &str)> = keys
                .iter()
                .filter(|(id, _)| **id != first)
                .map(|(id, key)| (*id, key.as_str()))
                .collect();
            siblings.sort_by(|a, b| a.1.cmp(b.1));
            match place(&siblings, &Placement { before: None, after: Some(second) }) {
                Ok(key) => {
                    assert!(key.as_str() > keys[&second].as_str() && key < keys[&z]);
                    keys.insert(first, key);
                }
                Err(err) => {
                    refused = Some((n, err));
                    break;
                }
            }
        }
        let (moves, err) = refused.expect("placements must be refused at some point");
        assert!(matches!(err, BoardError::Conflict(_)), "{err:?}");
        assert!(moves > 500, "only {moves} moves before the bound");
        assert!(keys.values().all(|k| k.len() <= position::MAX_KEY_LEN));
    }

    /// Attachments: editors add them to an item of the board (viewers and keys without
    /// `items:write` are refused, another item is 404), up to the per-item bound, which a
    /// deletion frees again; the snapshot counts them; deleting the item forgets the count.
    #[tokio::test]
    async fn attachments_follow_the_rules() {
        use std::collections::HashMap;
        use std::sync::Arc;
        use std::time::Duration;

        use ractor::{Actor, ActorRef};

        use crate::board::{
            BoardActor, BoardArgs, BoardMessage, BoardQuery, BoardView, CommandOutput, KeyLookup,
            LoadedBoard,
        };
        use crate::bounds::BoardLimits;
        use crate::domain::{Board, StoredBlob};
        use crate::event_bus::EventBus;
        use crate::roles::OrgRole;
        use crate::test_stores::{unused_orgs, TestBoards};

        let (org, board_id, group_id, item_id) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (editor, viewer) = (Uuid::now_v7(), Uuid::now_v7());
        let at = now();
        let item = Item {
            id: item_id,
            group_id,
            name: "i".into(),
            values: BTreeMap::new(),
            position: "a".into(),
            version: 1,
            archived_at: None,
            created_by: None,
            created_at: at,
            updated_at: at,
        };
        let loaded = LoadedBoard {
            board: Board {
                id: board_id,
                organization_id: org,
                name: "b".into(),
                description: String::new(),
                created_at: at,
                updated_at: at,
            },
            seq: 1,
            members: HashMap::from([(editor, BoardRole::Editor), (viewer, BoardRole::Viewer)]),
            columns: Vec::new(),
            groups: vec![Group {
                id: group_id,
                title: "g".into(),
                color: None,
                position: "a".into(),
            }],
            items: vec![item],
            attachment_counts: HashMap::from([(item_id, 1)]),
        };
        let store = Arc::new(TestBoards::holding(loaded.clone()));
        let args = BoardArgs {
            loaded,
            store,
            bus: EventBus::default(),
            orgs: unused_orgs().await,
            idle_timeout: Duration::from_secs(60),
            limits: BoardLimits { attachments_per_item: 2, ..BoardLimits::default() },
        };
        let (actor, _) = Actor::spawn(None, BoardActor, args).await.unwrap();
        let who = |user_id, scopes| Requester { user_id, org_role: OrgRole::Member, scopes };
        async fn send(
            actor: &ActorRef<BoardMessage>,
            requester: Requester,
            command: BoardCommand,
        ) -> Result<CommandOutput, BoardError> {
            let (tx, rx) = ractor::concurrency::oneshot();
            actor
                .cast(BoardMessage::Command {
                    requester,
                    command,
                    idempotency_key: None,
                    key_lookup: KeyLookup::NotAsked,
                    reply: tx.into(),
                })
                .unwrap();
            rx.await.unwrap()
        }
        let add = |item_id, name: &str| BoardCommand::AddAttachment {
            item_id,
            update_id: None,
            name: name.into(),
            size: 3,
            content_type: "text/plain".into(),
            sha256: "0".repeat(64),
            blob: StoredBlob { blob_key: "k".into(), key_id: "mk".into(), wrapped_key: vec![1] },
        };
        let refused = send(&actor, who(viewer, None), add(item_id, "a.txt")).await;
        assert_eq!(refused, Err(BoardError::Forbidden("editor")));
        let refused =
            send(&actor, who(editor, Some(vec![Scope::ItemsRead])), add(item_id, "a.txt")).await;
        assert_eq!(refused, Err(BoardError::MissingScope("items:write")));
        let refused = send(&actor, who(editor, None), add(Uuid::now_v7(), "a.txt")).await;
        assert_eq!(refused, Err(BoardError::NotFound("item")));
        let refused = send(&actor, who(editor, None), add(item_id, " \u{7}")).await;
        assert!(matches!(refused, Err(BoardError::Invalid(_))), "{refused:?}");

        let added = send(&actor, who(editor, None), add(item_id, "a.txt")).await.unwrap();
        let EventData::AttachmentAdded(attachment) = added.data else { panic!("{added:?}") };
        assert_eq!((attachment.item_id, attachment.name.as_str()), (item_id, "a.txt"));
        assert_eq!(attachment.created_by, Some(editor));
        let full = send(&actor, who(editor, None), add(item_id, "b.txt")).await;
        assert!(matches!(full, Err(BoardError::LimitReached(_))), "{full:?}");

        let snapshot = |actor: ActorRef<BoardMessage>| async move {
            let (tx, rx) = ractor::concurrency::oneshot();
            actor
                .cast(BoardMessage::Read {
                    requester: who(viewer, None),
                    query: BoardQuery::Snapshot,
                    reply: tx.into(),
                })
                .unwrap();
            match rx.await.unwrap().unwrap() {
                BoardView::Snapshot(s) => s.attachment_counts,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(snapshot(actor.clone()).await, HashMap::from([(item_id, 2)]));

        let delete = BoardCommand::DeleteAttachment { attachment_id: attachment.id };
        let refused = send(&actor, who(viewer, None), delete.clone()).await;
        assert_eq!(refused, Err(BoardError::Forbidden("editor")));
        let gone = send(&actor, who(editor, None), delete.clone()).await;
        // Its batch has committed (the add was answered), so the store is asked, and this test
        // store holds no attachment rows: 404. The integration tests delete real ones.
        assert_eq!(gone, Err(BoardError::NotFound("attachment")));

        let deleted =
            send(&actor, who(editor, None), BoardCommand::DeleteItem { item_id }).await.unwrap();
        assert!(matches!(deleted.data, EventData::ItemDeleted { .. }));
        assert_eq!(snapshot(actor.clone()).await, HashMap::new());
        actor.stop(None);
    }

    /// A board is created by its own actor, started with the board not yet created: a refused
    /// creation stops the actor (the board never existed); an accepted one commits at seq 1
    /// with the creator as owner and one group.
    #[tokio::test]
    async fn a_board_is_created_by_its_actor() {
        use std::sync::Arc;
        use std::time::Duration;

        use ractor::Actor;

        use crate::board::{
            BoardActor, BoardArgs, BoardMessage, BoardView, KeyLookup, LoadedBoard,
        };
        use crate::bounds::BoardLimits;
        use crate::event_bus::EventBus;
        use crate::roles::OrgRole;
        use crate::test_stores::{unused_orgs, TestBoards};

        let (org, user) = (Uuid::now_v7(), Uuid::now_v7());
        let orgs = unused_orgs().await;
        let start = || async {
            let args = BoardArgs {
                loaded: LoadedBoard::unborn(org),
                store: Arc::new(TestBoards::default()),
                bus: EventBus::default(),
                orgs: orgs.clone(),
                idle_timeout: Duration::from_secs(60),
                limits: BoardLimits::default(),
            };
            Actor::spawn(None, BoardActor, args).await.unwrap()
        };
        let requester = Requester { user_id: user, org_role: OrgRole::Member, scopes: None };
        let create = |name: &str, reply| BoardMessage::Command {
            requester: requester.clone(),
            command: BoardCommand::CreateBoard { name: name.into(), description: String::new() },
            idempotency_key: None,
            key_lookup: KeyLookup::NotAsked,
            reply,
        };

        let (refused, handle) = start().await;
        let (tx, rx) = ractor::concurrency::oneshot();
        refused.cast(create("", tx.into())).unwrap();
        assert!(matches!(rx.await.unwrap(), Err(BoardError::Invalid(_))));
        handle.await.unwrap();

        let (actor, _) = start().await;
        let (tx, rx) = ractor::concurrency::oneshot();
        actor.cast(create("Launch", tx.into())).unwrap();
        let output = rx.await.unwrap().unwrap();
        assert_eq!(output.seq, 1);
        let EventData::BoardCreated { board, group, owner } = output.data else {
            panic!("{:?}", output.data)
        };
        assert_eq!((board.name.as_str(), board.organization_id, owner), ("Launch", org, user));
        assert_eq!(group.title, "Group 1");
        let (tx, rx) = ractor::concurrency::oneshot();
        actor
            .cast(BoardMessage::Read {
                requester: requester.clone(),
                query: crate::board::BoardQuery::Members,
                reply: tx.into(),
            })
            .unwrap();
        assert_eq!(rx.await.unwrap().unwrap(), BoardView::Members(vec![(user, BoardRole::Owner)]));
        let (tx, rx) = ractor::concurrency::oneshot();
        actor.cast(create("Again", tx.into())).unwrap();
        assert!(matches!(rx.await.unwrap(), Err(BoardError::Conflict(_))));
        actor.stop(None);
    }
}
