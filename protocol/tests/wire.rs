//! The types match the server's wire: every request body the server accepted and every answer
//! it gave, captured from a running server (`fixtures/capture.py`, into `fixtures/server.json`),
//! decodes as its protocol type and re-encodes to the same JSON value, and to MessagePack that
//! says the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use boardroom_protocol::events::{EventKind, EventLog};
use boardroom_protocol::webhooks::WebhookPayload;
use boardroom_protocol::{
    api_keys, attachments, audit, boards, error, events, health, identity, orgs, webhooks, Encoding,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const CAPTURED: &str = include_str!("fixtures/server.json");

/// Decodes `json` as `T` and checks that both encodings give it back unchanged.
fn round_trip<T: Serialize + DeserializeOwned>(json: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(json.clone()).map_err(|e| format!("decode: {e}"))?;
    let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &again != json {
        return Err(format!("re-encoded as\n{again}\nnot\n{json}"));
    }
    let packed = Encoding::MessagePack.encode(&typed).map_err(|e| e.to_string())?;
    let unpacked: Value = Encoding::MessagePack.decode(&packed).map_err(|e| e.to_string())?;
    if &unpacked != json {
        return Err(format!("MessagePack says\n{unpacked}\nnot\n{json}"));
    }
    Ok(())
}

macro_rules! wire_types {
    ($( $module:ident :: $name:ident ),+ $(,)?) => {
        /// Every type the capture exercises, by the name the capture gives it.
        const TYPES: &[&str] = &[ $( concat!(stringify!($module), "::", stringify!($name)) ),+ ];

        fn check(type_name: &str, json: &Value) -> Result<(), String> {
            match type_name {
                $( concat!(stringify!($module), "::", stringify!($name)) =>
                    round_trip::<$module::$name>(json), )+
                other => Err(format!("no such type {other}")),
            }
        }

        /// Each type's OpenAPI schema, as JSON.
        fn schemas() -> Vec<(&'static str, Value)> {
            vec![ $( (
                concat!(stringify!($module), "::", stringify!($name)),
                serde_json::to_value(<$module::$name as utoipa::PartialSchema>::schema()).unwrap(),
            ), )+ ]
        }
    };
}

wire_types! {
    health::Health, health::Readiness,
    identity::Register, identity::Login, identity::Refresh, identity::ChangePassword,
    identity::SessionAnswer, identity::Me, identity::SessionList, identity::WsTicket,
    orgs::CreateOrganization, orgs::Organization, orgs::OrganizationList, orgs::AddOrgMember,
    orgs::ChangeOrgMember, orgs::OrgMember, orgs::OrgMemberList,
    api_keys::CreateApiKey, api_keys::CreatedApiKey, api_keys::ApiKeyList,
    api_keys::UpdateApiKey, api_keys::ApiKey,
    boards::CreateBoard, boards::CreatedBoard, boards::BoardList, boards::UpdateBoard,
    boards::Board, boards::SetMember, boards::BoardMembers, boards::CreateColumn,
    boards::Column, boards::UpdateColumn, boards::CreateGroup, boards::Group,
    boards::UpdateGroup, boards::CreateItem, boards::Item, boards::UpdateItem, boards::MoveItem,
    boards::ArchiveItem, boards::ItemPage, boards::CreateUpdate, boards::Update,
    boards::EditUpdate, boards::UpdateList, boards::Snapshot,
    events::MemberChanged, events::ItemUpdated, events::ItemMoved, events::EventLog,
    webhooks::CreateWebhook, webhooks::CreatedWebhook, webhooks::WebhookList,
    webhooks::UpdateWebhook, webhooks::Webhook, webhooks::RotatedSecret,
    webhooks::DeliveryList, webhooks::Redelivery, webhooks::WebhookPayload,
    audit::AuditLog, error::ErrorEnvelope, attachments::Attachment, attachments::AttachmentList,
}

fn captured() -> Vec<(String, String, Value)> {
    let entries: Vec<Value> = serde_json::from_str(CAPTURED).unwrap();
    entries
        .into_iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["json"].clone(),
            )
        })
        .collect()
}

#[test]
fn captured_bodies_round_trip() {
    let failures: Vec<String> = captured()
        .iter()
        .filter_map(|(name, type_name, json)| {
            check(type_name, json).err().map(|e| format!("{name} as {type_name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_type_is_captured() {
    let seen: BTreeSet<String> = captured().into_iter().map(|(_, t, _)| t).collect();
    let missing: Vec<&&str> = TYPES.iter().filter(|t| !seen.contains(**t)).collect();
    assert!(missing.is_empty(), "no capture of {missing:?}");
}

/// The captured log and webhook bodies carry every kind of event but `board.deleted` (the
/// board's log and webhooks go with it; the golden test pins that kind).
#[test]
fn every_event_kind_is_captured() {
    let mut kinds = BTreeSet::new();
    for (_, type_name, json) in captured() {
        if type_name == "events::EventLog" {
            let log: EventLog = serde_json::from_value(json).unwrap();
            kinds.extend(log.events.iter().map(|e| e.event.kind().as_str()));
        } else if type_name == "webhooks::WebhookPayload" {
            let payload: WebhookPayload = serde_json::from_value(json).unwrap();
            kinds.insert(payload.event.kind().as_str());
        }
    }
    let missing: Vec<&str> = EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !kinds.contains(k) && *k != "board.deleted")
        .collect();
    assert!(missing.is_empty(), "no capture of {missing:?}");
}

/// A change in a type that the server does not make (a renamed field) fails the round trip.
#[test]
fn a_renamed_field_is_caught() {
    let (_, _, mut json) = captured().into_iter().find(|(_, t, _)| t == "boards::Item").unwrap();
    let name = json["name"].take();
    json.as_object_mut().unwrap().remove("name");
    json["title"] = name;
    assert!(check("boards::Item", &json).is_err());
}

/// Every type has an OpenAPI schema; a field that is always present but may be `null` is
/// required there, one that may be absent is not.
#[test]
fn schemas_say_what_is_required() {
    let schemas = schemas();
    assert_eq!(schemas.len(), TYPES.len());
    let schema = |name: &str| schemas.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let required = |name: &str| -> Vec<String> {
        serde_json::from_value(schema(name)["required"].clone()).unwrap_or_default()
    };
    assert!(required("boards::Item").contains(&"archived_at".to_owned()));
    assert!(required("boards::Item").contains(&"values".to_owned()));
    let me = required("identity::Me");
    assert_eq!(me, ["user"]);
    assert_eq!(
        schema("events::EventLog")["properties"]["events"]["items"]["$ref"],
        "#/components/schemas/Event"
    );
}
