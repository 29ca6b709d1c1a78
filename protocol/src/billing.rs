//! Billing on the wire: plans, the billing status, and the bodies of the checkout and portal
//! routes and of the Stripe webhook's answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An organization's plan. Every organization starts on `free`; Stripe subscriptions move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// No subscription.
    Free,
    /// The paid plan for teams.
    Pro,
    /// The paid plan for organizations.
    Enterprise,
}

impl Plan {
    /// Every plan.
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];

    /// The plan's name, as stored and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    /// Parses a plan's name.
    pub fn parse(name: &str) -> Option<Plan> {
        Plan::ALL.into_iter().find(|plan| plan.as_str() == name)
    }
}

/// Where an organization's subscription stands, as Stripe last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingStatus {
    /// No subscription (the free plan).
    None,
    /// In a trial period.
    Trialing,
    /// Paid and current.
    Active,
    /// A payment failed; Stripe is retrying.
    PastDue,
    /// Not paid after Stripe's retries.
    Unpaid,
    /// Cancelled; the organization is back on `free`.
    Canceled,
    /// The first payment was not completed yet.
    Incomplete,
    /// The first payment never completed.
    IncompleteExpired,
    /// Paused by the customer.
    Paused,
}

impl BillingStatus {
    /// Every status.
    pub const ALL: [BillingStatus; 9] = [
        BillingStatus::None,
        BillingStatus::Trialing,
        BillingStatus::Active,
        BillingStatus::PastDue,
        BillingStatus::Unpaid,
        BillingStatus::Canceled,
        BillingStatus::Incomplete,
        BillingStatus::IncompleteExpired,
        BillingStatus::Paused,
    ];

    /// The status's name, as stored and on the wire (Stripe's subscription status names).
    pub const fn as_str(self) -> &'static str {
        match self {
            BillingStatus::None => "none",
            BillingStatus::Trialing => "trialing",
            BillingStatus::Active => "active",
            BillingStatus::PastDue => "past_due",
            BillingStatus::Unpaid => "unpaid",
            BillingStatus::Canceled => "canceled",
            BillingStatus::Incomplete => "incomplete",
            BillingStatus::IncompleteExpired => "incomplete_expired",
            BillingStatus::Paused => "paused",
        }
    }

    /// Parses a status's name.
    pub fn parse(name: &str) -> Option<BillingStatus> {
        BillingStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// `POST /orgs/{org}/billing/checkout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// The paid plan to subscribe to.
    pub plan: Plan,
}

/// The answer of the checkout and portal routes: the Stripe page to send the person to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BillingRedirect {
    /// Stripe's hosted page.
    pub url: String,
}

/// The answer to a Stripe webhook delivery that was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StripeWebhookAck {
    /// Always true: the event was received (applied, or known already, or ignored).
    pub received: bool,
    /// What became of it.
    pub outcome: StripeEventOutcome,
}

/// What became of a verified Stripe event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StripeEventOutcome {
    /// Its effect was applied.
    Applied,
    /// Its id was seen before: nothing applied again.
    Duplicate,
    /// Older than the state already applied: recorded, nothing changed.
    Stale,
    /// A type Boardroom does not act on, or an organization it does not know.
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn names_round_trip() {
        for plan in Plan::ALL {
            assert_eq!(Plan::parse(plan.as_str()), Some(plan));
            assert_eq!(serde_json::to_value(plan).unwrap(), plan.as_str());
        }
        for status in BillingStatus::ALL {
            assert_eq!(BillingStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(Plan::parse("gold"), None);
        assert_eq!(BillingStatus::parse("PAST_DUE"), None);
    }

    #[test]
    fn billing_bodies_are_pinned() {
        assert_golden(
            &CheckoutRequest { plan: Plan::Pro },
            r#"{"plan":"pro"}"#,
            "81a4706c616ea370726f",
        );
        assert_golden(
            &BillingRedirect { url: "https://checkout.stripe.com/c/pay/cs_1".into() },
            r#"{"url":"https://checkout.stripe.com/c/pay/cs_1"}"#,
            "81a375726cd92668747470733a2f2f636865636b6f75742e7374726970652e636f6d2f632f7061792f63735f31",
        );
        assert_golden(
            &StripeWebhookAck { received: true, outcome: StripeEventOutcome::Duplicate },
            r#"{"received":true,"outcome":"duplicate"}"#,
            "82a87265636569766564c3a76f7574636f6d65a96475706c6963617465",
        );
    }
}
