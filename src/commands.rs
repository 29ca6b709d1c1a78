//! Board writes as the board actor's commands, one function per write, shared by REST and
//! sockets: each turns the write's wire body (`boardroom_protocol::boards`, the one type both
//! edges decode) plus the ids REST carries in its path into a [`BoardCommand`].
//!
//! What is checked here is only what the wire spells that the domain types cannot hold (a role
//! or column type by name, `If-Match` against `expected_version`, a socket's path ids); every
//! other rule (roles, scopes, lengths, values, placements) is the board actor's, so an edge
//! never judges twice.

use boardroom_actors::domain::{BoardCommand, BoardRole, ColumnKind, Placement};
use boardroom_protocol::{boards, ClientMessage};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// An id a socket frame carries where REST has it in the path: a string, so a malformed one
/// is refused naming the field (REST's path answers 404 instead).
pub fn id(field: &str, raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw).map_err(|_| ApiError::validation(format!("{field} is not a valid id")))
}

/// A socket frame's board write: the board it targets and its command, built by the same
/// function as its REST route's; `None` for a frame that is no board write.
pub fn from_message(message: ClientMessage) -> ApiResult<Option<(Uuid, BoardCommand)>> {
    use ClientMessage as M;
    let (board, command) = match message {
        M::Ping {} | M::Auth { .. } | M::Subscribe { .. } | M::Unsubscribe { .. } => {
            return Ok(None)
        }
        M::UpdateBoard { board_id, body } => (board_id, update_board(body)),
        M::DeleteBoard { board_id } => (board_id, delete_board()),
        M::SetMember { board_id, user_id, body } => {
            (board_id, set_member(id("user_id", &user_id)?, body)?)
        }
        M::RemoveMember { board_id, user_id } => {
            (board_id, remove_member(id("user_id", &user_id)?))
        }
        M::CreateColumn { board_id, body } => (board_id, create_column(body)?),
        M::UpdateColumn { board_id, column_id, body } => {
            (board_id, update_column(id("column_id", &column_id)?, body)?)
        }
        M::DeleteColumn { board_id, column_id } => {
            (board_id, delete_column(id("column_id", &column_id)?))
        }
        M::CreateGroup { board_id, body } => (board_id, create_group(body)),
        M::UpdateGroup { board_id, group_id, body } => {
            (board_id, update_group(id("group_id", &group_id)?, body))
        }
        M::DeleteGroup { board_id, group_id } => {
            (board_id, delete_group(id("group_id", &group_id)?))
        }
        M::CreateItem { board_id, body } => (board_id, create_item(body)),
        M::UpdateItem { board_id, item_id, body } => {
            (board_id, update_item(id("item_id", &item_id)?, body, None)?)
        }
        M::MoveItem { board_id, item_id, body } => {
            (board_id, move_item(id("item_id", &item_id)?, body))
        }
        M::ArchiveItem { board_id, item_id, body } => {
            (board_id, archive_item(id("item_id", &item_id)?, body))
        }
        M::DeleteItem { board_id, item_id } => (board_id, delete_item(id("item_id", &item_id)?)),
        M::CreateUpdate { board_id, item_id, body } => {
            (board_id, create_update(id("item_id", &item_id)?, body))
        }
        M::EditUpdate { board_id, item_id, update_id, body } => {
            (board_id, edit_update(id("item_id", &item_id)?, id("update_id", &update_id)?, body))
        }
        M::DeleteUpdate { board_id, item_id, update_id } => {
            (board_id, delete_update(id("item_id", &item_id)?, id("update_id", &update_id)?))
        }
    };
    Ok(Some((id("board_id", &board)?, command)))
}

fn placement(before: Option<Uuid>, after: Option<Uuid>) -> Placement {
    Placement { before, after }
}

/// `PATCH /boards/{board}`; socket `update_board`.
pub fn update_board(body: boards::UpdateBoard) -> BoardCommand {
    BoardCommand::UpdateBoard { name: body.name, description: body.description }
}

/// `DELETE /boards/{board}`; socket `delete_board`.
pub fn delete_board() -> BoardCommand {
    BoardCommand::DeleteBoard
}

/// `PUT /boards/{board}/members/{user}`; socket `set_member`.
pub fn set_member(user_id: Uuid, body: boards::SetMember) -> ApiResult<BoardCommand> {
    let role = BoardRole::parse(&body.role)
        .ok_or_else(|| ApiError::validation("role must be owner, editor or viewer"))?;
    Ok(BoardCommand::SetMember { user_id, role })
}

/// `DELETE /boards/{board}/members/{user}`; socket `remove_member`.
pub fn remove_member(user_id: Uuid) -> BoardCommand {
    BoardCommand::RemoveMember { user_id }
}

/// `POST /boards/{board}/columns`; socket `create_column`.
pub fn create_column(body: boards::CreateColumn) -> ApiResult<BoardCommand> {
    let kind = column_kind(&body.column_type)?;
    Ok(BoardCommand::CreateColumn {
        title: body.title,
        kind,
        settings: body.settings,
        placement: placement(body.before, body.after),
    })
}

/// A column type by name.
fn column_kind(name: &str) -> ApiResult<ColumnKind> {
    ColumnKind::parse(name).ok_or_else(|| {
        // REST spells the field `type`, the socket `column_type` (`type` names the frame).
        ApiError::validation(
            "type (column_type on sockets) must be one of text, long_text, number, status, \
             date, person, checkbox, dropdown, link",
        )
    })
}

/// `PATCH /boards/{board}/columns/{column}`; socket `update_column`.
pub fn update_column(column_id: Uuid, body: boards::UpdateColumn) -> ApiResult<BoardCommand> {
    Ok(BoardCommand::UpdateColumn {
        column_id,
        title: body.title,
        kind: body.column_type.as_deref().map(column_kind).transpose()?,
        settings: body.settings,
        placement: placement(body.before, body.after),
    })
}

/// `DELETE /boards/{board}/columns/{column}`; socket `delete_column`.
pub fn delete_column(column_id: Uuid) -> BoardCommand {
    BoardCommand::DeleteColumn { column_id }
}

/// `POST /boards/{board}/groups`; socket `create_group`.
pub fn create_group(body: boards::CreateGroup) -> BoardCommand {
    BoardCommand::CreateGroup {
        title: body.title,
        color: body.color,
        placement: placement(body.before, body.after),
    }
}

/// `PATCH /boards/{board}/groups/{group}`; socket `update_group`.
pub fn update_group(group_id: Uuid, body: boards::UpdateGroup) -> BoardCommand {
    BoardCommand::UpdateGroup {
        group_id,
        title: body.title,
        color: body.color,
        placement: placement(body.before, body.after),
    }
}

/// `DELETE /boards/{board}/groups/{group}`; socket `delete_group`.
pub fn delete_group(group_id: Uuid) -> BoardCommand {
    BoardCommand::DeleteGroup { group_id }
}

/// `POST /boards/{board}/items`; socket `create_item`.
pub fn create_item(body: boards::CreateItem) -> BoardCommand {
    BoardCommand::CreateItem {
        group_id: body.group_id,
        name: body.name,
        values: body.values,
        placement: placement(body.before, body.after),
    }
}

/// `PATCH /boards/{board}/items/{item}`; socket `update_item`. REST may name the expected
/// version in `If-Match` (`if_match`) as well as in the body; when both do, they must agree.
pub fn update_item(
    item_id: Uuid,
    body: boards::UpdateItem,
    if_match: Option<i64>,
) -> ApiResult<BoardCommand> {
    let expected_version = match (if_match, body.expected_version) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request("If-Match and expected_version disagree"))
        }
        (header, field) => header.or(field),
    };
    Ok(BoardCommand::UpdateItem { item_id, name: body.name, values: body.values, expected_version })
}

/// `POST /boards/{board}/items/{item}/move`; socket `move_item`.
pub fn move_item(item_id: Uuid, body: boards::MoveItem) -> BoardCommand {
    BoardCommand::MoveItem {
        item_id,
        group_id: body.group_id,
        placement: placement(body.before, body.after),
    }
}

/// `POST /boards/{board}/items/{item}/archive`; socket `archive_item`. Archives unless the
/// body says `"archived": false`.
pub fn archive_item(item_id: Uuid, body: boards::ArchiveItem) -> BoardCommand {
    BoardCommand::ArchiveItem { item_id, archived: body.archived.unwrap_or(true) }
}

/// `DELETE /boards/{board}/items/{item}`; socket `delete_item`.
pub fn delete_item(item_id: Uuid) -> BoardCommand {
    BoardCommand::DeleteItem { item_id }
}

/// `POST /boards/{board}/items/{item}/updates`; socket `create_update`.
pub fn create_update(item_id: Uuid, body: boards::CreateUpdate) -> BoardCommand {
    BoardCommand::CreateUpdate { item_id, body: body.body, parent_id: body.parent_id }
}

/// `PATCH /boards/{board}/items/{item}/updates/{update}`; socket `edit_update`.
pub fn edit_update(item_id: Uuid, update_id: Uuid, body: boards::EditUpdate) -> BoardCommand {
    BoardCommand::EditUpdate { item_id, update_id, body: body.body }
}

/// `DELETE /boards/{board}/items/{item}/updates/{update}`; socket `delete_update`.
pub fn delete_update(item_id: Uuid, update_id: Uuid) -> BoardCommand {
    BoardCommand::DeleteUpdate { item_id, update_id }
}

#[cfg(test)]
mod tests {
    use boardroom_protocol::ErrorCode;

    use super::*;

    #[test]
    fn names_the_domain_cannot_hold_are_refused_as_validation_failures() {
        let column = boards::CreateColumn {
            title: "S".into(),
            column_type: "colour".into(),
            settings: None,
            before: None,
            after: None,
        };
        let err = create_column(column).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
        assert!(err.message().contains("column_type"), "{}", err.message());
        let err = set_member(Uuid::nil(), boards::SetMember { role: "boss".into() }).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
    }

    /// A socket write's path ids are strings in the frame: a malformed one is refused naming
    /// it; frames that are no board write are no command.
    #[test]
    fn socket_frames_become_the_same_commands() {
        let board = Uuid::from_u128(1);
        let item = Uuid::from_u128(5);
        let frame = ClientMessage::ArchiveItem {
            board_id: board.to_string(),
            item_id: item.to_string(),
            body: boards::ArchiveItem::default(),
        };
        let (target, command) = from_message(frame).unwrap().unwrap();
        assert_eq!(target, board);
        assert!(matches!(
            command,
            BoardCommand::ArchiveItem { item_id, archived: true } if item_id == item
        ));
        for (frame, field) in [
            (ClientMessage::DeleteBoard { board_id: "b".into() }, "board_id"),
            (
                ClientMessage::DeleteItem { board_id: board.to_string(), item_id: "i".into() },
                "item_id",
            ),
            (
                ClientMessage::EditUpdate {
                    board_id: board.to_string(),
                    item_id: item.to_string(),
                    update_id: "u".into(),
                    body: boards::EditUpdate { body: "x".into() },
                },
                "update_id",
            ),
        ] {
            let err = from_message(frame).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed);
            assert_eq!(err.message(), format!("{field} is not a valid id"));
        }
        assert!(from_message(ClientMessage::Ping {}).unwrap().is_none());
    }

    #[test]
    fn if_match_and_expected_version_must_agree() {
        let body = |v| boards::UpdateItem { expected_version: v, ..Default::default() };
        let version = |command| match command {
            BoardCommand::UpdateItem { expected_version, .. } => expected_version,
            other => panic!("{other:?}"),
        };
        assert_eq!(version(update_item(Uuid::nil(), body(Some(3)), None).unwrap()), Some(3));
        assert_eq!(version(update_item(Uuid::nil(), body(None), Some(4)).unwrap()), Some(4));
        assert_eq!(version(update_item(Uuid::nil(), body(Some(5)), Some(5)).unwrap()), Some(5));
        let err = update_item(Uuid::nil(), body(Some(3)), Some(4)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn archiving_is_the_default() {
        let archived = |body| match archive_item(Uuid::nil(), body) {
            BoardCommand::ArchiveItem { archived, .. } => archived,
            other => panic!("{other:?}"),
        };
        assert!(archived(boards::ArchiveItem::default()));
        assert!(!archived(boards::ArchiveItem { archived: Some(false) }));
    }
}
