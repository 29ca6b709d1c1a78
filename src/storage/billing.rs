//! An organization's billing state and the Stripe events applied to it. An event's id is
//! recorded in the transaction that applies its effect (`stripe_events`), so a redelivery, or a
//! duplicate arriving at the same moment on any node, finds the id taken and applies nothing.

use boardroom_actors::billing::{BillingEvent, BillingOutcome, BillingState, BillingStatus, Plan};
use uuid::Uuid;

use super::{now, StorageError, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction};

/// The stored columns of [`BillingState`].
type BillingRow = (String, String, Option<String>, Option<String>, Option<i64>);

fn state_of((plan, status, customer, subscription, event_at): BillingRow) -> BillingState {
    BillingState {
        // Unknown stored values read as the least a plan or status can be.
        plan: Plan::parse(&plan).unwrap_or(Plan::Free),
        status: BillingStatus::parse(&status).unwrap_or(BillingStatus::None),
        customer,
        subscription,
        event_at,
    }
}

const SELECT_STATE: &str = "SELECT plan, billing_status, stripe_customer_id, \
    stripe_subscription_id, billing_event_at FROM organizations WHERE id = $1";

impl Store {
    /// The organization whose Stripe customer is `customer`.
    pub async fn org_of_stripe_customer(&self, customer: &str) -> StorageResult<Option<Uuid>> {
        let row: Option<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM organizations WHERE stripe_customer_id = $1")
                .bind(customer)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(id,)| id))
    }

    /// Records `event` for `org` and applies it, in one transaction (see the module header).
    pub async fn apply_billing_event(
        &self,
        org: Uuid,
        event: &BillingEvent,
    ) -> StorageResult<BillingOutcome> {
        let at = now();
        transaction!(self, conn => {
            let recorded = sqlx::query(
                "INSERT INTO stripe_events (id, type, organization_id, outcome, received_at) \
                 VALUES ($1, $2, $3, 'applied', $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(org)
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if recorded == 0 {
                return Ok(BillingOutcome::Duplicate);
            }
            let row: Option<BillingRow> =
                sqlx::query_as(SELECT_STATE).bind(org).fetch_optional(&mut *conn).await?;
            let before = state_of(row.ok_or(StorageError::NotFound)?);
            let Some(after) = before.apply(event) else {
                sqlx::query("UPDATE stripe_events SET outcome = 'stale' WHERE id = $1")
                    .bind(&event.event_id)
                    .execute(&mut *conn)
                    .await?;
                return Ok(BillingOutcome::Stale);
            };
            sqlx::query(
                "UPDATE organizations SET plan = $2, billing_status = $3, \
                 stripe_customer_id = $4, stripe_subscription_id = $5, billing_event_at = $6 \
                 WHERE id = $1",
            )
            .bind(org)
            .bind(after.plan.as_str())
            .bind(after.status.as_str())
            .bind(&after.customer)
            .bind(&after.subscription)
            .bind(after.event_at)
            .execute(&mut *conn)
            .await?;
            Ok(BillingOutcome::Applied { before, after })
        })
    }
}

impl TenantStore<'_> {
    /// The organization's billing state.
    pub async fn billing(&self) -> StorageResult<Option<BillingState>> {
        let org = self.org_id();
        let row: Option<BillingRow> = on_pool!(self.store, pool => {
            sqlx::query_as(SELECT_STATE).bind(org).fetch_optional(pool).await
        })?;
        Ok(row.map(state_of))
    }
}
