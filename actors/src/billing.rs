//! Billing as an organization sees it: a verified Stripe event reduced to the change it makes
//! ([`BillingEvent`]), the organization's billing state, and the one rule that applies the one
//! to the other ([`BillingState::apply`]): stale events change nothing, a checkout only links
//! the customer, a subscription sets the plan and status, a deletion returns to `free`.
//!
//! The org actor applies events one at a time; the store runs the rule inside the transaction
//! that records the event id, so a duplicate (sequential or concurrent, on any node) applies
//! nothing.

pub use boardroom_protocol::billing::{BillingStatus, Plan};

/// A verified Stripe event, reduced to what it changes for one organization.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillingEvent {
    /// Stripe's event id (`evt_…`): the dedupe key.
    pub event_id: String,
    /// Stripe's event type, such as `customer.subscription.updated`.
    pub event_type: String,
    /// Stripe's `created` (Unix seconds): how stale events are recognized.
    pub created: i64,
    /// The change.
    pub change: BillingChange,
}

/// What a Stripe event changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BillingChange {
    /// `checkout.session.completed`: the organization's customer and subscription.
    CheckoutCompleted {
        /// Stripe customer id.
        customer: Option<String>,
        /// Stripe subscription id.
        subscription: Option<String>,
    },
    /// `customer.subscription.created` / `.updated`.
    Subscription {
        /// Stripe subscription id.
        id: String,
        /// Stripe customer id.
        customer: Option<String>,
        /// The plan of its first item's price; `None` for a price Boardroom does not know.
        plan: Option<Plan>,
        /// Its status.
        status: BillingStatus,
    },
    /// `customer.subscription.deleted`.
    SubscriptionDeleted {
        /// Stripe subscription id.
        id: String,
    },
    /// `invoice.payment_failed`.
    PaymentFailed,
}

/// An organization's billing state, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BillingState {
    /// The plan.
    pub plan: Plan,
    /// The subscription's status.
    pub status: BillingStatus,
    /// Stripe customer id, once known.
    pub customer: Option<String>,
    /// Stripe subscription id, while there is one.
    pub subscription: Option<String>,
    /// `created` of the newest subscription or invoice event applied.
    pub event_at: Option<i64>,
}

impl BillingState {
    /// A new organization's state: `free`, no subscription.
    pub fn free() -> Self {
        BillingState {
            plan: Plan::Free,
            status: BillingStatus::None,
            customer: None,
            subscription: None,
            event_at: None,
        }
    }

    /// The state after `event`, or `None` when the event is older than the state already
    /// applied. A checkout is never stale: it only fills in the customer and subscription
    /// (Stripe may deliver it after the subscription's own events).
    pub fn apply(&self, event: &BillingEvent) -> Option<BillingState> {
        let mut next = self.clone();
        if let BillingChange::CheckoutCompleted { customer, subscription } = &event.change {
            next.customer = customer.clone().or(next.customer);
            next.subscription = subscription.clone().or(next.subscription);
            return Some(next);
        }
        if self.event_at.is_some_and(|at| event.created < at) {
            return None;
        }
        next.event_at = Some(self.event_at.map_or(event.created, |at| at.max(event.created)));
        match &event.change {
            BillingChange::CheckoutCompleted { .. } => {}
            BillingChange::Subscription { id, customer, plan, status } => {
                if next.customer.is_none() {
                    next.customer = customer.clone();
                }
                next.status = *status;
                if matches!(status, BillingStatus::Canceled | BillingStatus::IncompleteExpired) {
                    next.plan = Plan::Free;
                    next.subscription = None;
                } else {
                    // A price Boardroom does not map keeps the plan rather than guessing one.
                    next.plan = plan.unwrap_or(self.plan);
                    next.subscription = Some(id.clone());
                }
            }
            BillingChange::SubscriptionDeleted { id } => {
                // The end of an older subscription, replaced since, leaves the current one be.
                if next.subscription.as_ref().is_some_and(|current| current != id) {
                    return Some(next);
                }
                next.plan = Plan::Free;
                next.status = BillingStatus::Canceled;
                next.subscription = None;
            }
            BillingChange::PaymentFailed => next.status = BillingStatus::PastDue,
        }
        Some(next)
    }
}

/// What came of a billing event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BillingOutcome {
    /// Applied: the state before and after.
    Applied {
        /// Before.
        before: BillingState,
        /// After.
        after: BillingState,
    },
    /// Its id was recorded already: nothing applied.
    Duplicate,
    /// Older than the state applied: recorded, nothing changed.
    Stale,
}

impl BillingOutcome {
    /// Whether applying it cancelled a subscription.
    pub fn cancelled(&self) -> bool {
        matches!(self, BillingOutcome::Applied { before, after }
            if before.status != BillingStatus::Canceled && after.status == BillingStatus::Canceled)
    }

    /// The plan change it made, if any: `(from, to)`.
    pub fn plan_change(&self) -> Option<(Plan, Plan)> {
        match self {
            BillingOutcome::Applied { before, after } if before.plan != after.plan => {
                Some((before.plan, after.plan))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(created: i64, change: BillingChange) -> BillingEvent {
        BillingEvent {
            event_id: format!("evt_{created}"),
            event_type: "test".into(),
            created,
            change,
        }
    }

    fn subscription(created: i64, plan: Plan, status: BillingStatus) -> BillingEvent {
        event(
            created,
            BillingChange::Subscription {
                id: "sub_1".into(),
                customer: Some("cus_1".into()),
                plan: Some(plan),
                status,
            },
        )
    }

    #[test]
    fn free_to_pro_to_past_due_to_cancelled() {
        let free = BillingState::free();
        let pro = free.apply(&subscription(10, Plan::Pro, BillingStatus::Active)).unwrap();
        assert_eq!((pro.plan, pro.status), (Plan::Pro, BillingStatus::Active));
        assert_eq!(pro.customer.as_deref(), Some("cus_1"));
        let late = pro.apply(&event(20, BillingChange::PaymentFailed)).unwrap();
        assert_eq!((late.plan, late.status), (Plan::Pro, BillingStatus::PastDue));
        let gone =
            late.apply(&event(30, BillingChange::SubscriptionDeleted { id: "sub_1".into() }));
        let gone = gone.unwrap();
        assert_eq!((gone.plan, gone.status), (Plan::Free, BillingStatus::Canceled));
        assert_eq!(gone.subscription, None);
        let outcome = BillingOutcome::Applied { before: late, after: gone };
        assert!(outcome.cancelled());
        assert_eq!(outcome.plan_change(), Some((Plan::Pro, Plan::Free)));
    }

    #[test]
    fn an_older_event_is_stale_but_a_late_checkout_still_links_the_customer() {
        let pro = BillingState::free()
            .apply(&subscription(100, Plan::Pro, BillingStatus::Active))
            .unwrap();
        assert_eq!(pro.apply(&subscription(99, Plan::Enterprise, BillingStatus::Active)), None);
        assert_eq!(pro.apply(&event(99, BillingChange::PaymentFailed)), None);
        // The same second is not older: applied.
        assert!(pro.apply(&subscription(100, Plan::Enterprise, BillingStatus::Active)).is_some());
        let mut unlinked = pro.clone();
        unlinked.customer = None;
        let linked = unlinked
            .apply(&event(
                50,
                BillingChange::CheckoutCompleted {
                    customer: Some("cus_9".into()),
                    subscription: None,
                },
            ))
            .unwrap();
        assert_eq!(linked.customer.as_deref(), Some("cus_9"));
        assert_eq!(linked.subscription.as_deref(), Some("sub_1"));
        assert_eq!(linked.event_at, Some(100));
    }

    #[test]
    fn the_end_of_a_replaced_subscription_keeps_the_current_one() {
        let pro = BillingState::free()
            .apply(&subscription(10, Plan::Pro, BillingStatus::Active))
            .unwrap();
        let after =
            pro.apply(&event(20, BillingChange::SubscriptionDeleted { id: "sub_old".into() }));
        let after = after.unwrap();
        assert_eq!((after.plan, after.status), (Plan::Pro, BillingStatus::Active));
        assert!(!BillingOutcome::Applied { before: pro, after }.cancelled());
    }

    #[test]
    fn an_unknown_price_keeps_the_plan_and_a_cancelled_status_means_free() {
        let pro = BillingState::free()
            .apply(&subscription(10, Plan::Pro, BillingStatus::Active))
            .unwrap();
        let unknown = BillingChange::Subscription {
            id: "sub_1".into(),
            customer: None,
            plan: None,
            status: BillingStatus::Trialing,
        };
        let kept = pro.apply(&event(11, unknown)).unwrap();
        assert_eq!((kept.plan, kept.status), (Plan::Pro, BillingStatus::Trialing));
        let ended = kept.apply(&subscription(12, Plan::Pro, BillingStatus::Canceled)).unwrap();
        assert_eq!((ended.plan, ended.subscription), (Plan::Free, None));
    }
}
