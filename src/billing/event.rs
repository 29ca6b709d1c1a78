//! A verified Stripe event's JSON, reduced to the organization it concerns and the
//! [`BillingEvent`] it makes. Only the fields Boardroom acts on are read; everything else in
//! Stripe's (large, versioned) objects is ignored, and a customer may come as an id or as an
//! expanded object.

use boardroom_actors::billing::{BillingChange, BillingEvent, BillingStatus, Plan};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::config::StripePrice;

/// Which organization an event concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Named by Boardroom itself (`client_reference_id` of a checkout it created).
    Org(Uuid),
    /// Found by the stored Stripe customer, else by `metadata.organization_id`.
    Customer {
        /// The customer id, if the object carries one.
        customer: Option<String>,
        /// `metadata.organization_id`, if set.
        org: Option<Uuid>,
    },
}

/// Why an event body could not be read. Only after its signature passed, so it is Stripe's (or
/// a changed API version's) doing.
#[derive(Debug, thiserror::Error)]
#[error("the Stripe event is not readable: {0}")]
pub struct EventError(String);

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: Value,
}

#[derive(Deserialize, Default)]
struct Metadata {
    organization_id: Option<String>,
}

/// `event` reduced, or `None` for a type Boardroom does not act on.
pub fn parse(
    body: &[u8],
    prices: &[StripePrice],
) -> Result<Option<(Target, BillingEvent)>, EventError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| EventError(e.to_string()))?;
    let object = &envelope.data.object;
    let (target, change) = match envelope.kind.as_str() {
        "checkout.session.completed" => {
            // A checkout Boardroom did not create (a payment link on the same account) names
            // no organization: not ours to act on.
            let Some(org) =
                text(object, "client_reference_id").and_then(|id| Uuid::parse_str(&id).ok())
            else {
                return Ok(None);
            };
            let change = BillingChange::CheckoutCompleted {
                customer: id_of(object.get("customer")),
                subscription: id_of(object.get("subscription")),
            };
            (Target::Org(org), change)
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let id = text(object, "id").ok_or_else(|| EventError("no subscription id".into()))?;
            let customer = id_of(object.get("customer"));
            let target = Target::Customer { customer: customer.clone(), org: metadata_org(object) };
            let change = if envelope.kind == "customer.subscription.deleted" {
                BillingChange::SubscriptionDeleted { id }
            } else {
                let status = text(object, "status")
                    .and_then(|s| BillingStatus::parse(&s))
                    .ok_or_else(|| EventError("unknown subscription status".into()))?;
                let plan = first_price(object).and_then(|price| plan_of(prices, &price));
                BillingChange::Subscription { id, customer, plan, status }
            };
            (target, change)
        }
        "invoice.payment_failed" => {
            let org = metadata_org(object).or_else(|| {
                object.pointer("/subscription_details/metadata").and_then(|m| {
                    let metadata: Metadata = serde_json::from_value(m.clone()).ok()?;
                    metadata.organization_id.and_then(|id| Uuid::parse_str(&id).ok())
                })
            });
            (
                Target::Customer { customer: id_of(object.get("customer")), org },
                BillingChange::PaymentFailed,
            )
        }
        _ => return Ok(None),
    };
    let event = BillingEvent {
        event_id: envelope.id,
        event_type: envelope.kind,
        created: envelope.created,
        change,
    };
    Ok(Some((target, event)))
}

/// The plan `price` buys, from `BOARDROOM_STRIPE_PRICES`.
pub fn plan_of(prices: &[StripePrice], price: &str) -> Option<Plan> {
    prices.iter().find(|p| p.price == price).map(|p| p.plan)
}

fn text(object: &Value, field: &str) -> Option<String> {
    object.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// An id given as a string, or as an expanded object's `id`.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(id) => Some(id.clone()),
        Value::Object(object) => object.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn metadata_org(object: &Value) -> Option<Uuid> {
    let metadata: Metadata = serde_json::from_value(object.get("metadata")?.clone()).ok()?;
    Uuid::parse_str(&metadata.organization_id?).ok()
}

/// `items.data[0].price.id` of a subscription.
fn first_price(object: &Value) -> Option<String> {
    object.pointer("/items/data/0/price/id").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prices() -> Vec<StripePrice> {
        vec![
            StripePrice { price: "price_pro".into(), plan: Plan::Pro },
            StripePrice { price: "price_ent".into(), plan: Plan::Enterprise },
        ]
    }

    fn body(kind: &str, object: Value) -> Vec<u8> {
        json!({"id": "evt_1", "object": "event", "type": kind, "created": 1_700_000_000,
               "data": {"object": object}, "livemode": false})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_checkout_names_the_organization_and_links_the_customer() {
        let org = Uuid::now_v7();
        let parsed = parse(
            &body(
                "checkout.session.completed",
                json!({"id": "cs_1", "client_reference_id": org.to_string(),
                       "customer": {"id": "cus_1", "object": "customer"}, "subscription": "sub_1"}),
            ),
            &prices(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(parsed.0, Target::Org(org));
        assert_eq!(
            parsed.1.change,
            BillingChange::CheckoutCompleted {
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into())
            }
        );
        assert_eq!((parsed.1.event_id.as_str(), parsed.1.created), ("evt_1", 1_700_000_000));
    }

    #[test]
    fn a_subscription_maps_its_first_price_to_a_plan() {
        let org = Uuid::now_v7();
        let object = json!({"id": "sub_1", "customer": "cus_1", "status": "past_due",
            "metadata": {"organization_id": org.to_string()},
            "items": {"data": [{"price": {"id": "price_ent"}}]}});
        let (target, event) =
            parse(&body("customer.subscription.updated", object), &prices()).unwrap().unwrap();
        assert_eq!(target, Target::Customer { customer: Some("cus_1".into()), org: Some(org) });
        assert_eq!(
            event.change,
            BillingChange::Subscription {
                id: "sub_1".into(),
                customer: Some("cus_1".into()),
                plan: Some(Plan::Enterprise),
                status: BillingStatus::PastDue
            }
        );
        let unknown = json!({"id": "sub_1", "customer": "cus_1", "status": "active",
            "items": {"data": [{"price": {"id": "price_other"}}]}});
        let (_, event) =
            parse(&body("customer.subscription.created", unknown), &prices()).unwrap().unwrap();
        assert!(matches!(event.change, BillingChange::Subscription { plan: None, .. }));
    }

    #[test]
    fn other_types_are_ignored_and_unreadable_bodies_refused() {
        assert!(parse(&body("charge.succeeded", json!({})), &prices()).unwrap().is_none());
        assert!(parse(b"not json", &prices()).is_err());
        let foreign = json!({"client_reference_id": "x"});
        assert!(parse(&body("checkout.session.completed", foreign), &prices()).unwrap().is_none());
        assert!(parse(
            &body("customer.subscription.updated", json!({"id": "sub_1", "status": "dancing"})),
            &prices()
        )
        .is_err());
    }
}
