//! Webhooks on the wire: a webhook as owners see it (never its secret), the answers that carry
//! a secret once, and deliveries, from the rows `crate::storage` keeps them in.

use boardroom_protocol::events::EventKind;
use boardroom_protocol::webhooks as wire;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::storage::{DeliveryRow, WebhookRow};

/// A webhook, without its secret.
pub fn webhook(row: &WebhookRow) -> wire::Webhook {
    wire::Webhook {
        id: row.id,
        board_id: row.board_id,
        url: row.url.clone(),
        events: row.events.0.clone(),
        enabled: row.enabled,
        consecutive_failures: row.consecutive_failures,
        previous_secret_expires_at: row.previous_secret_expires_at,
        created_by: row.created_by,
        created_by_key: row.created_by_key,
        disabled_reason: row.disabled_reason.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The answer to a create: the webhook and its signing secret, shown this once.
pub fn created(row: &WebhookRow, secret: String) -> wire::CreatedWebhook {
    wire::CreatedWebhook { webhook: webhook(row), secret }
}

/// A board's webhooks.
pub fn list(rows: &[WebhookRow]) -> wire::WebhookList {
    wire::WebhookList { webhooks: rows.iter().map(webhook).collect() }
}

/// The answer to a rotation: the new secret, shown this once, and until when the old one signs.
pub fn rotated(id: Uuid, secret: String, until: DateTime<Utc>) -> wire::RotatedSecret {
    wire::RotatedSecret { id, secret, previous_secret_expires_at: until }
}

/// The answer to a redelivery: the delivery, pending again.
pub fn redelivery(id: Uuid) -> wire::Redelivery {
    wire::Redelivery { id, status: wire::DeliveryStatus::Pending }
}

/// A stored delivery status; `None` for a name this server never writes.
fn status(name: &str) -> Option<wire::DeliveryStatus> {
    match name {
        "pending" => Some(wire::DeliveryStatus::Pending),
        "succeeded" => Some(wire::DeliveryStatus::Succeeded),
        "failed" => Some(wire::DeliveryStatus::Failed),
        _ => None,
    }
}

/// A delivery row the wire cannot show: its stored kind or status is not one this server
/// knows (a row written by a newer server, or a damaged one).
#[derive(Debug, thiserror::Error)]
#[error("delivery {id}: stored {field} {value:?} is not known to this server")]
pub struct UnknownDelivery {
    id: Uuid,
    field: &'static str,
    value: String,
}

/// One delivery. `next_attempt_at` is shown for pending deliveries only: for a finished one
/// the stored time means nothing.
pub fn delivery(row: &DeliveryRow) -> Result<wire::Delivery, UnknownDelivery> {
    let unknown = |field, value: &str| UnknownDelivery { id: row.id, field, value: value.into() };
    let kind = EventKind::parse(&row.kind).ok_or_else(|| unknown("kind", &row.kind))?;
    let status = status(&row.status).ok_or_else(|| unknown("status", &row.status))?;
    Ok(wire::Delivery {
        id: row.id,
        webhook_id: row.webhook_id,
        seq: row.seq,
        kind,
        status,
        attempts: row.attempts,
        next_attempt_at: (status == wire::DeliveryStatus::Pending).then_some(row.next_attempt_at),
        give_up_at: row.give_up_at,
        last_status_code: row.last_status_code,
        last_error: row.last_error.clone(),
        response_excerpt: row.response_excerpt.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// A webhook's deliveries.
pub fn deliveries(rows: &[DeliveryRow]) -> Result<wire::DeliveryList, UnknownDelivery> {
    Ok(wire::DeliveryList { deliveries: rows.iter().map(delivery).collect::<Result<_, _>>()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, status: &str) -> DeliveryRow {
        let at = crate::storage::now();
        DeliveryRow {
            id: Uuid::now_v7(),
            webhook_id: Uuid::now_v7(),
            seq: 4,
            kind: kind.into(),
            status: status.into(),
            attempts: 1,
            next_attempt_at: at,
            give_up_at: at,
            last_status_code: None,
            last_error: None,
            response_excerpt: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn only_a_pending_delivery_shows_when_it_is_next_attempted() {
        let pending = delivery(&row("item.created", "pending")).unwrap();
        assert_eq!(pending.status, wire::DeliveryStatus::Pending);
        assert_eq!(pending.kind, EventKind::ItemCreated);
        assert!(pending.next_attempt_at.is_some());
        for (name, status) in [
            ("succeeded", wire::DeliveryStatus::Succeeded),
            ("failed", wire::DeliveryStatus::Failed),
        ] {
            let finished = delivery(&row("board.deleted", name)).unwrap();
            assert_eq!((finished.status, finished.next_attempt_at), (status, None));
        }
    }

    #[test]
    fn a_row_this_server_does_not_know_is_refused_not_guessed() {
        let err = delivery(&row("item.exploded", "pending")).unwrap_err();
        assert!(err.to_string().contains("kind \"item.exploded\""), "{err}");
        let err =
            deliveries(&[row("item.created", "pending"), row("item.created", "lost")]).unwrap_err();
        assert!(err.to_string().contains("status \"lost\""), "{err}");
    }
}
