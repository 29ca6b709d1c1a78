//! Webhooks on the wire: the webhook as listed (never its secret), the answers that carry a
//! secret, deliveries, the bodies that create and change webhooks, and the body the server
//! POSTs to a webhook's URL.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::events::{EventData, EventKind};

/// A webhook of a board, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// The board whose events it receives.
    pub board_id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event kinds it receives (`item.created`, …), or `*` for all.
    pub events: Vec<String>,
    /// Whether deliveries are made (the server disables a webhook after repeated failures).
    pub enabled: bool,
    /// Failed attempts in a row.
    pub consecutive_failures: i64,
    /// Until when the secret replaced by the last rotation still signs deliveries too.
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Creator (the webhook receives only what they may read).
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
    /// The API key it was created with, if one was (its scopes bound what it receives).
    #[schema(required = true)]
    pub created_by_key: Option<Uuid>,
    /// Why it was disabled, such as `owner`, `consecutive_failures`, `creator_unknown`,
    /// `creator_left_organization`, `creator_lost_board`, `creator_not_owner`.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `POST /boards/{board}/webhooks`: the new webhook and its signing secret, answered this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The secret that signs deliveries (`Boardroom-Signature`).
    pub secret: String,
}

/// `GET /boards/{board}/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    /// The board's webhooks.
    pub webhooks: Vec<Webhook>,
}

/// `POST /boards/{board}/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An http(s) URL the server may reach (judged by the SSRF guard).
    pub url: String,
    /// Event kinds, or `*`; at least one.
    pub events: Vec<String>,
}

/// `PATCH /boards/{board}/webhooks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// New URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Turn deliveries on or off (on also clears the failure count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The URL answered 2xx.
    Succeeded,
    /// Given up.
    Failed,
}

/// One event's delivery to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Id (the `Boardroom-Delivery` header and the body's `id`).
    pub id: Uuid,
    /// The webhook.
    pub webhook_id: Uuid,
    /// The event's `seq`.
    pub seq: i64,
    /// The event's kind.
    pub kind: EventKind,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due; `null` unless pending.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When retrying stops.
    pub give_up_at: DateTime<Utc>,
    /// The HTTP status of the last attempt, if it got one.
    #[schema(required = true)]
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed, if it did.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// The start of the last answer's body.
    #[schema(required = true)]
    pub response_excerpt: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// `GET /boards/{board}/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// The newest deliveries first.
    pub deliveries: Vec<Delivery>,
}

/// The query of `GET /boards/{board}/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 1000; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// `POST /boards/{board}/webhooks/{id}/deliveries/{delivery}/redeliver` (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redelivery {
    /// The delivery.
    pub id: Uuid,
    /// Always `pending`.
    pub status: DeliveryStatus,
}

/// `POST /boards/{board}/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecret {
    /// The webhook.
    pub id: Uuid,
    /// The new secret, answered this once.
    pub secret: String,
    /// Until when the old secret signs deliveries too.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// The JSON body POSTed to a webhook's URL, signed in `Boardroom-Signature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookPayload {
    /// The delivery (the same in every attempt: deduplicate by it).
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The event's `seq`.
    pub seq: i64,
    /// The event's kind and data.
    #[serde(flatten)]
    pub event: EventData,
    /// The event's commit time.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::BoardDeleted;
    use crate::golden::{assert_golden, at, id};

    fn webhook() -> Webhook {
        Webhook {
            id: id(13),
            board_id: id(1),
            url: "https://hooks.example.com/boardroom".into(),
            events: vec!["item.created".into(), "*".into()],
            enabled: true,
            consecutive_failures: 0,
            previous_secret_expires_at: None,
            created_by: Some(id(6)),
            created_by_key: None,
            disabled_reason: None,
            created_at: at("2026-01-02T03:04:05.000006Z"),
            updated_at: at("2026-01-02T03:04:05.000006Z"),
        }
    }

    #[test]
    fn webhooks_are_pinned() {
        assert_golden(&webhook(), WEBHOOK_JSON, WEBHOOK_MSGPACK);
        let created = CreatedWebhook { webhook: webhook(), secret: "whsec_x".into() };
        assert_golden(&created, CREATED_JSON, CREATED_MSGPACK);
        assert_golden(&WebhookList { webhooks: vec![webhook()] }, LIST_JSON, LIST_MSGPACK);
    }

    #[test]
    fn deliveries_are_pinned() {
        let delivery = Delivery {
            id: id(14),
            webhook_id: id(13),
            seq: 3,
            kind: EventKind::ItemCreated,
            status: DeliveryStatus::Failed,
            attempts: 2,
            next_attempt_at: None,
            give_up_at: at("2026-01-03T03:04:05Z"),
            last_status_code: Some(500),
            last_error: Some("HTTP 500".into()),
            response_excerpt: Some("oops".into()),
            created_at: at("2026-01-02T03:04:05Z"),
            updated_at: at("2026-01-02T03:05:05Z"),
        };
        let list = DeliveryList { deliveries: vec![delivery] };
        assert_golden(&list, DELIVERIES_JSON, DELIVERIES_MSGPACK);
        assert_golden(&DeliveriesQuery { limit: Some(10) }, QUERY_JSON, QUERY_MSGPACK);
        let redelivery = Redelivery { id: id(14), status: DeliveryStatus::Pending };
        assert_golden(&redelivery, REDELIVERY_JSON, REDELIVERY_MSGPACK);
        let rotated = RotatedSecret {
            id: id(13),
            secret: "whsec_y".into(),
            previous_secret_expires_at: at("2026-01-03T03:04:05Z"),
        };
        assert_golden(&rotated, ROTATED_JSON, ROTATED_MSGPACK);
    }

    #[test]
    fn bodies_are_pinned() {
        let create = CreateWebhook {
            url: "https://hooks.example.com/boardroom".into(),
            events: vec!["*".into()],
        };
        assert_golden(&create, CREATE_JSON, CREATE_MSGPACK);
        let update = UpdateWebhook { enabled: Some(false), ..UpdateWebhook::default() };
        assert_golden(&update, UPDATE_JSON, UPDATE_MSGPACK);
    }

    #[test]
    fn payload_is_pinned() {
        let payload = WebhookPayload {
            id: id(14),
            board_id: id(1),
            seq: 7,
            event: EventData::BoardDeleted(BoardDeleted { id: id(1) }),
            created_at: at("2026-01-02T03:04:05.000006Z"),
        };
        assert_golden(&payload, PAYLOAD_JSON, PAYLOAD_MSGPACK);
    }

    const WEBHOOK_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000d","board_id":"00000000-0000-0000-0000-000000000001","url":"https://hooks.example.com/boardroom","events":["item.created","*"],"enabled":true,"consecutive_failures":0,"previous_secret_expires_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_by_key":null,"disabled_reason":null,"created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.000006Z"}"#;
    const WEBHOOK_MSGPACK: &str = "8ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303064a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a375726cd92368747470733a2f2f686f6f6b732e6578616d706c652e636f6d2f626f617264726f6f6da66576656e747392ac6974656d2e63726561746564a12aa7656e61626c6564c3b4636f6e73656375746976655f6661696c7572657300ba70726576696f75735f7365637265745f657870697265735f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036ae637265617465645f62795f6b6579c0af64697361626c65645f726561736f6ec0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365a";
    const CREATED_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000d","board_id":"00000000-0000-0000-0000-000000000001","url":"https://hooks.example.com/boardroom","events":["item.created","*"],"enabled":true,"consecutive_failures":0,"previous_secret_expires_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_by_key":null,"disabled_reason":null,"created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.000006Z","secret":"whsec_x"}"#;
    const CREATED_MSGPACK: &str = "8da26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303064a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a375726cd92368747470733a2f2f686f6f6b732e6578616d706c652e636f6d2f626f617264726f6f6da66576656e747392ac6974656d2e63726561746564a12aa7656e61626c6564c3b4636f6e73656375746976655f6661696c7572657300ba70726576696f75735f7365637265745f657870697265735f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036ae637265617465645f62795f6b6579c0af64697361626c65645f726561736f6ec0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aa6736563726574a777687365635f78";
    const LIST_JSON: &str = r#"{"webhooks":[{"id":"00000000-0000-0000-0000-00000000000d","board_id":"00000000-0000-0000-0000-000000000001","url":"https://hooks.example.com/boardroom","events":["item.created","*"],"enabled":true,"consecutive_failures":0,"previous_secret_expires_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_by_key":null,"disabled_reason":null,"created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.000006Z"}]}"#;
    const LIST_MSGPACK: &str = "81a8776562686f6f6b73918ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303064a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a375726cd92368747470733a2f2f686f6f6b732e6578616d706c652e636f6d2f626f617264726f6f6da66576656e747392ac6974656d2e63726561746564a12aa7656e61626c6564c3b4636f6e73656375746976655f6661696c7572657300ba70726576696f75735f7365637265745f657870697265735f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036ae637265617465645f62795f6b6579c0af64697361626c65645f726561736f6ec0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365a";
    const DELIVERIES_JSON: &str = r#"{"deliveries":[{"id":"00000000-0000-0000-0000-00000000000e","webhook_id":"00000000-0000-0000-0000-00000000000d","seq":3,"kind":"item.created","status":"failed","attempts":2,"next_attempt_at":null,"give_up_at":"2026-01-03T03:04:05Z","last_status_code":500,"last_error":"HTTP 500","response_excerpt":"oops","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:05:05Z"}]}"#;
    const DELIVERIES_MSGPACK: &str = "81aa64656c69766572696573918da26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303065aa776562686f6f6b5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303064a373657103a46b696e64ac6974656d2e63726561746564a6737461747573a66661696c6564a8617474656d70747302af6e6578745f617474656d70745f6174c0aa676976655f75705f6174b4323032362d30312d30335430333a30343a30355ab06c6173745f7374617475735f636f6465cd01f4aa6c6173745f6572726f72a84854545020353030b0726573706f6e73655f65786365727074a46f6f7073aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b4323032362d30312d30325430333a30353a30355a";
    const QUERY_JSON: &str = r#"{"limit":10}"#;
    const QUERY_MSGPACK: &str = "81a56c696d69740a";
    const REDELIVERY_JSON: &str =
        r#"{"id":"00000000-0000-0000-0000-00000000000e","status":"pending"}"#;
    const REDELIVERY_MSGPACK: &str = "82a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303065a6737461747573a770656e64696e67";
    const ROTATED_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000d","secret":"whsec_y","previous_secret_expires_at":"2026-01-03T03:04:05Z"}"#;
    const ROTATED_MSGPACK: &str = "83a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303064a6736563726574a777687365635f79ba70726576696f75735f7365637265745f657870697265735f6174b4323032362d30312d30335430333a30343a30355a";
    const CREATE_JSON: &str = r#"{"url":"https://hooks.example.com/boardroom","events":["*"]}"#;
    const CREATE_MSGPACK: &str = "82a375726cd92368747470733a2f2f686f6f6b732e6578616d706c652e636f6d2f626f617264726f6f6da66576656e747391a12a";
    const UPDATE_JSON: &str = r#"{"enabled":false}"#;
    const UPDATE_MSGPACK: &str = "81a7656e61626c6564c2";
    const PAYLOAD_JSON: &str = r#"{"id":"00000000-0000-0000-0000-00000000000e","board_id":"00000000-0000-0000-0000-000000000001","seq":7,"kind":"board.deleted","data":{"id":"00000000-0000-0000-0000-000000000001"},"created_at":"2026-01-02T03:04:05.000006Z"}"#;
    const PAYLOAD_MSGPACK: &str = "86a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303065a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a373657107a46b696e64ad626f6172642e64656c65746564a46461746181a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365a";
}
