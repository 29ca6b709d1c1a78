//! Board events on the wire: each event's `data` from the domain's [`EventData`], the form
//! `board_events.payload` and idempotent answers keep it in (that `data` as JSON, unchanged
//! from before the types), and the way back from a stored form.

use boardroom_actors::domain::{self, BoardEvent, ColumnKind, EventData};
use boardroom_protocol::boards as wire_boards;
use boardroom_protocol::events as wire;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::boards;

/// The wire form of an event's data on `board`.
pub fn data(board: Uuid, data: &EventData) -> wire::EventData {
    let deleted = |id| wire::Deleted { id, board_id: board };
    match data {
        EventData::BoardCreated { board: created, group, owner } => {
            wire::EventData::BoardCreated(wire::BoardCreated {
                board: boards::board(created),
                groups: vec![boards::group(board, group)],
                members: vec![wire_boards::BoardMember {
                    user_id: *owner,
                    role: wire_boards::BoardRole::Owner,
                }],
            })
        }
        EventData::BoardUpdated(b) => wire::EventData::BoardUpdated(boards::board(b)),
        EventData::BoardDeleted => wire::EventData::BoardDeleted(wire::BoardDeleted { id: board }),
        EventData::MemberSet { user_id, role, previous_role } => {
            let changed = wire::MemberChanged {
                user_id: *user_id,
                role: boards::role(*role),
                previous_role: previous_role.map(boards::role),
            };
            match previous_role {
                None => wire::EventData::MemberAdded(changed),
                Some(_) => wire::EventData::MemberRoleChanged(changed),
            }
        }
        EventData::MemberRemoved { user_id, previous_role } => {
            wire::EventData::MemberRemoved(wire::MemberRemoved {
                user_id: *user_id,
                previous_role: boards::role(*previous_role),
            })
        }
        EventData::ColumnCreated(c) => wire::EventData::ColumnCreated(boards::column(board, c)),
        EventData::ColumnUpdated(c) => wire::EventData::ColumnUpdated(boards::column(board, c)),
        EventData::ColumnDeleted { column_id } => {
            wire::EventData::ColumnDeleted(deleted(*column_id))
        }
        EventData::GroupCreated(g) => wire::EventData::GroupCreated(boards::group(board, g)),
        EventData::GroupUpdated(g) => wire::EventData::GroupUpdated(boards::group(board, g)),
        EventData::GroupDeleted { group_id } => wire::EventData::GroupDeleted(deleted(*group_id)),
        EventData::ItemCreated(i) => wire::EventData::ItemCreated(boards::item(board, i)),
        EventData::ItemUpdated { item, changed_values } => {
            wire::EventData::ItemUpdated(wire::ItemUpdated {
                item: boards::item(board, item),
                changed_values: changed_values.clone(),
            })
        }
        EventData::ItemMoved { item, from_group_id } => {
            wire::EventData::ItemMoved(wire::ItemMoved {
                item: boards::item(board, item),
                from_group_id: *from_group_id,
            })
        }
        EventData::ItemArchived(i) => wire::EventData::ItemArchived(boards::item(board, i)),
        EventData::ItemDeleted { item_id, group_id } => {
            wire::EventData::ItemDeleted(wire::ItemDeleted {
                id: *item_id,
                board_id: board,
                group_id: *group_id,
            })
        }
        EventData::UpdateCreated(u) => wire::EventData::UpdateCreated(boards::update(board, u)),
        EventData::UpdateEdited(u) => wire::EventData::UpdateEdited(boards::update(board, u)),
        EventData::UpdateDeleted { update_id, item_id } => {
            wire::EventData::UpdateDeleted(wire::UpdateDeleted {
                id: *update_id,
                item_id: *item_id,
                board_id: board,
            })
        }
        EventData::AttachmentAdded(a) => {
            wire::EventData::AttachmentAdded(super::attachments::attachment(a))
        }
        EventData::AttachmentDeleted { attachment_id, item_id } => {
            wire::EventData::AttachmentDeleted(boardroom_protocol::attachments::AttachmentDeleted {
                id: *attachment_id,
                item_id: *item_id,
                board_id: board,
            })
        }
    }
}

/// The `data` of an event on `board` alone, as JSON: what `board_events.payload` and an
/// idempotent answer hold, what a socket's event frame carries and what REST answers a
/// command with.
pub fn payload(board: Uuid, event: &EventData) -> Value {
    serde_json::to_value(Payload::of(board, event)).unwrap_or_else(|_| {
        did_not_encode(event);
        Value::Null
    })
}

/// [`payload`] serialized, without the `Value` in between: what `board_events.payload` stores.
pub fn payload_json(board: Uuid, event: &EventData) -> String {
    serde_json::to_string(&Payload::of(board, event)).unwrap_or_else(|_| {
        did_not_encode(event);
        "null".to_owned()
    })
}

/// [`payload`] to serialize straight into a reply or a response body, in either encoding: the
/// `data` half of the wire's `{"kind": …, "data": …}` pair, serialized alone.
pub struct Payload(wire::EventData);

impl Payload {
    /// The data of `event` on `board`.
    pub fn of(board: Uuid, event: &EventData) -> Payload {
        Payload(data(board, event))
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

/// Encoding these types cannot fail (string keys only): a failure is a defect, logged, and
/// stands as `null`.
fn did_not_encode(event: &EventData) {
    tracing::error!(kind = %event.kind(), "an event's data did not encode");
}

/// A logged event's data read back: its `kind` and its stored `payload`.
pub fn decode(kind: &str, payload: Value) -> Result<wire::EventData, serde_json::Error> {
    let mut tagged = serde_json::Map::new();
    tagged.insert("kind".into(), Value::String(kind.to_owned()));
    tagged.insert("data".into(), payload);
    serde_json::from_value(Value::Object(tagged))
}

/// An event of the REST log.
pub fn logged(
    seq: i64,
    data: wire::EventData,
    actor: Option<Uuid>,
    created_at: DateTime<Utc>,
) -> wire::Event {
    wire::Event { seq, event: data, actor, created_at }
}

/// A bus event as the REST log would show it.
pub fn event(event: &BoardEvent) -> wire::Event {
    logged(event.seq, data(event.board_id, &event.data), event.actor, event.created_at)
}

/// The domain's event data back from its wire form (an idempotent answer read back); `None`
/// for a `board.created` without its group or owner.
pub fn to_domain(data: wire::EventData) -> Option<EventData> {
    Some(match data {
        wire::EventData::BoardCreated(created) => {
            let group = created.groups.into_iter().next()?;
            let owner = created.members.first()?.user_id;
            EventData::BoardCreated {
                board: board_to_domain(created.board),
                group: group_to_domain(group),
                owner,
            }
        }
        wire::EventData::BoardUpdated(b) => EventData::BoardUpdated(board_to_domain(b)),
        wire::EventData::BoardDeleted(_) => EventData::BoardDeleted,
        wire::EventData::MemberAdded(m) | wire::EventData::MemberRoleChanged(m) => {
            EventData::MemberSet {
                user_id: m.user_id,
                role: role_to_domain(m.role),
                previous_role: m.previous_role.map(role_to_domain),
            }
        }
        wire::EventData::MemberRemoved(m) => EventData::MemberRemoved {
            user_id: m.user_id,
            previous_role: role_to_domain(m.previous_role),
        },
        wire::EventData::ColumnCreated(c) => EventData::ColumnCreated(column_to_domain(c)),
        wire::EventData::ColumnUpdated(c) => EventData::ColumnUpdated(column_to_domain(c)),
        wire::EventData::ColumnDeleted(d) => EventData::ColumnDeleted { column_id: d.id },
        wire::EventData::GroupCreated(g) => EventData::GroupCreated(group_to_domain(g)),
        wire::EventData::GroupUpdated(g) => EventData::GroupUpdated(group_to_domain(g)),
        wire::EventData::GroupDeleted(d) => EventData::GroupDeleted { group_id: d.id },
        wire::EventData::ItemCreated(i) => EventData::ItemCreated(item_to_domain(i)),
        wire::EventData::ItemUpdated(u) => EventData::ItemUpdated {
            item: item_to_domain(u.item),
            changed_values: u.changed_values,
        },
        wire::EventData::ItemMoved(m) => {
            EventData::ItemMoved { item: item_to_domain(m.item), from_group_id: m.from_group_id }
        }
        wire::EventData::ItemArchived(i) => EventData::ItemArchived(item_to_domain(i)),
        wire::EventData::ItemDeleted(d) => {
            EventData::ItemDeleted { item_id: d.id, group_id: d.group_id }
        }
        wire::EventData::UpdateCreated(u) => EventData::UpdateCreated(update_to_domain(u)),
        wire::EventData::UpdateEdited(u) => EventData::UpdateEdited(update_to_domain(u)),
        wire::EventData::UpdateDeleted(d) => {
            EventData::UpdateDeleted { update_id: d.id, item_id: d.item_id }
        }
        wire::EventData::AttachmentAdded(a) => {
            EventData::AttachmentAdded(super::attachments::to_domain(a))
        }
        wire::EventData::AttachmentDeleted(d) => {
            EventData::AttachmentDeleted { attachment_id: d.id, item_id: d.item_id }
        }
    })
}

fn board_to_domain(b: wire_boards::Board) -> domain::Board {
    domain::Board {
        id: b.id,
        organization_id: b.organization_id,
        name: b.name,
        description: b.description,
        created_at: b.created_at,
        updated_at: b.updated_at,
    }
}

const fn role_to_domain(role: wire_boards::BoardRole) -> domain::BoardRole {
    match role {
        wire_boards::BoardRole::Viewer => domain::BoardRole::Viewer,
        wire_boards::BoardRole::Editor => domain::BoardRole::Editor,
        wire_boards::BoardRole::Owner => domain::BoardRole::Owner,
    }
}

fn column_to_domain(c: wire_boards::Column) -> domain::Column {
    domain::Column {
        id: c.id,
        title: c.title,
        kind: column_type_to_domain(c.column_type),
        settings: c.settings,
        position: c.position,
    }
}

const fn column_type_to_domain(column_type: wire_boards::ColumnType) -> ColumnKind {
    match column_type {
        wire_boards::ColumnType::Text => ColumnKind::Text,
        wire_boards::ColumnType::LongText => ColumnKind::LongText,
        wire_boards::ColumnType::Number => ColumnKind::Number,
        wire_boards::ColumnType::Status => ColumnKind::Status,
        wire_boards::ColumnType::Date => ColumnKind::Date,
        wire_boards::ColumnType::Person => ColumnKind::Person,
        wire_boards::ColumnType::Checkbox => ColumnKind::Checkbox,
        wire_boards::ColumnType::Dropdown => ColumnKind::Dropdown,
        wire_boards::ColumnType::Link => ColumnKind::Link,
    }
}

fn group_to_domain(g: wire_boards::Group) -> domain::Group {
    domain::Group { id: g.id, title: g.title, color: g.color, position: g.position }
}

fn item_to_domain(i: wire_boards::Item) -> domain::Item {
    domain::Item {
        id: i.id,
        group_id: i.group_id,
        name: i.name,
        values: i.values,
        position: i.position,
        version: i.version,
        archived_at: i.archived_at,
        created_by: i.created_by,
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

fn update_to_domain(u: wire_boards::Update) -> domain::Update {
    domain::Update {
        id: u.id,
        item_id: u.item_id,
        parent_id: u.parent_id,
        author_id: u.author_id,
        body: u.body,
        created_at: u.created_at,
        edited_at: u.edited_at,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use boardroom_actors::domain::{Board, BoardRole, Column, Group, Item, Update};
    use serde_json::json;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn every_kind() -> Vec<EventData> {
        let at = chrono::DateTime::from_timestamp_micros(1_767_323_045_000_006).unwrap();
        let board = Board {
            id: id(1),
            organization_id: id(2),
            name: "Launch".into(),
            description: String::new(),
            created_at: at,
            updated_at: at,
        };
        let column = Column {
            id: id(3),
            title: "Status".into(),
            kind: ColumnKind::Status,
            settings: json!({"labels": ["Todo", "Done"]}),
            position: "a0".into(),
        };
        let group = Group { id: id(4), title: "Now".into(), color: None, position: "a0".into() };
        let item = Item {
            id: id(5),
            group_id: id(4),
            name: "Ship".into(),
            values: BTreeMap::from([(id(3), json!("Done"))]),
            position: "a0".into(),
            version: 2,
            archived_at: Some(at),
            created_by: Some(id(6)),
            created_at: at,
            updated_at: at,
        };
        let update = Update {
            id: id(7),
            item_id: id(5),
            parent_id: None,
            author_id: Some(id(6)),
            body: "Looks good".into(),
            created_at: at,
            edited_at: Some(at),
        };
        vec![
            EventData::BoardCreated { board: board.clone(), group: group.clone(), owner: id(6) },
            EventData::BoardUpdated(board),
            EventData::BoardDeleted,
            EventData::MemberSet { user_id: id(6), role: BoardRole::Editor, previous_role: None },
            EventData::MemberSet {
                user_id: id(6),
                role: BoardRole::Owner,
                previous_role: Some(BoardRole::Viewer),
            },
            EventData::MemberRemoved { user_id: id(6), previous_role: BoardRole::Editor },
            EventData::ColumnCreated(column.clone()),
            EventData::ColumnUpdated(column),
            EventData::ColumnDeleted { column_id: id(3) },
            EventData::GroupCreated(group.clone()),
            EventData::GroupUpdated(group),
            EventData::GroupDeleted { group_id: id(4) },
            EventData::ItemCreated(item.clone()),
            EventData::ItemUpdated {
                item: item.clone(),
                changed_values: BTreeMap::from([(id(3), json!("Done")), (id(8), Value::Null)]),
            },
            EventData::ItemMoved { item: item.clone(), from_group_id: id(10) },
            EventData::ItemArchived(item),
            EventData::ItemDeleted { item_id: id(5), group_id: id(4) },
            EventData::UpdateCreated(update.clone()),
            EventData::UpdateEdited(update),
            EventData::UpdateDeleted { update_id: id(7), item_id: id(5) },
        ]
    }

    /// What is logged (and recorded for idempotent answers) reads back as what was committed,
    /// for every kind: a repeated command answers exactly what the first did.
    #[test]
    fn every_kind_reads_back_from_its_logged_form() {
        for data in every_kind() {
            let kind = data.kind();
            let logged = payload(id(1), &data);
            let read = decode(kind.as_str(), logged.clone()).unwrap();
            assert_eq!(read.kind(), kind);
            assert_eq!(to_domain(read.clone()), Some(data.clone()), "{kind}");
            // And the wire form re-encodes to the same payload.
            assert_eq!(payload(id(1), &to_domain(read).unwrap()), logged, "{kind}");
        }
    }

    /// The text the event log stores is the payload the wire carries, for every kind.
    #[test]
    fn the_stored_text_is_the_payload() {
        for data in every_kind() {
            let stored: Value = serde_json::from_str(&payload_json(id(1), &data)).unwrap();
            assert_eq!(stored, payload(id(1), &data), "{}", data.kind());
        }
    }

    /// The logged form is the JSON the board actor wrote before the types (pinned for a few
    /// kinds), so the rows already in databases read back.
    #[test]
    fn the_logged_form_is_unchanged() {
        let data = every_kind();
        assert_eq!(payload(id(1), &data[2]), json!({"id": id(1)}), "board.deleted names the board");
        assert_eq!(payload(id(1), &data[5]), json!({"user_id": id(6), "previous_role": "editor"}));
        assert_eq!(
            payload(id(1), &data[3]),
            json!({"user_id": id(6), "role": "editor", "previous_role": null})
        );
        assert_eq!(payload(id(1), &data[8]), json!({"id": id(3), "board_id": id(1)}));
        assert_eq!(
            payload(id(1), &data[16]),
            json!({"id": id(5), "board_id": id(1), "group_id": id(4)})
        );
        assert_eq!(
            payload(id(1), &data[19]),
            json!({"id": id(7), "item_id": id(5), "board_id": id(1)})
        );
        let moved = payload(id(1), &data[14]);
        assert_eq!(moved["from_group_id"], json!(id(10)));
        assert_eq!(moved["archived"], json!(true));
        assert_eq!(moved["board_id"], json!(id(1)));
        let created = payload(id(1), &data[0]);
        assert_eq!(created["members"], json!([{"user_id": id(6), "role": "owner"}]));
        assert_eq!(created["groups"][0]["board_id"], json!(id(1)));
    }
}
