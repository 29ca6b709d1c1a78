//! Billing routes. Billing is off, and every route here answers 404, unless
//! `BOARDROOM_STRIPE_WEBHOOK_SECRET` is set.
//!
//! - `POST /billing/stripe/webhook`: Stripe's deliveries. No session: the `Stripe-Signature`
//!   over the raw body is the credential (`400 invalid_signature` otherwise, nothing applied).
//!   The event is applied by its organization's actor, deduplicated by its id in the same
//!   transaction as its effect; a plan change is audited `plan.changed`, a cancellation
//!   `subscription.cancelled`.
//! - `POST /orgs/{org}/billing/checkout` and `/portal` (org admins, with a session): a Stripe
//!   Checkout or Billing Portal session, answered as its URL.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::billing::{BillingOutcome, BillingState, Plan};
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::billing::{
    BillingRedirect, CheckoutRequest, StripeEventOutcome, StripeWebhookAck,
};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::auth::{Caller, RequestMeta};
use crate::billing::event::{self, Target};
use crate::billing::Billing;
use crate::error::{ApiError, ApiResult};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stripe_webhook))
        .routes(routes!(checkout))
        .routes(routes!(portal))
}

/// Billing as configured, or the 404 every billing route answers while it is off.
fn billing(state: &AppState) -> Result<&std::sync::Arc<Billing>, ApiError> {
    state.billing().ok_or_else(|| ApiError::not_found("route"))
}

#[utoipa::path(post, path = "/billing/stripe/webhook", tag = "billing",
    operation_id = "stripe_webhook",
    summary = "Stripe's event deliveries (verified by `Stripe-Signature`, deduplicated by id)",
    request_body(content = serde_json::Value, description = "A Stripe event, as Stripe sends it",
        content_type = "application/json"),
    params(("Stripe-Signature" = String, Header,
        description = "`t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…]`")),
    security(()),
    responses((status = 200, description = "Received", body = StripeWebhookAck),
        crate::http::openapi::StripeWebhookErrors))]
async fn stripe_webhook(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<StripeWebhookAck>> {
    let billing = billing(&state)?;
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    billing.verify(signature, &body)?;
    let ack = |outcome| Json(StripeWebhookAck { received: true, outcome });
    let Some((target, event)) = event::parse(&body, billing.prices())? else {
        return Ok(ack(StripeEventOutcome::Ignored));
    };
    let Some(org) = organization_of(&state, &target).await? else {
        tracing::warn!(event = %event.event_id, kind = %event.event_type,
            "Stripe event for no known organization; ignored");
        return Ok(ack(StripeEventOutcome::Ignored));
    };
    let event_id = event.event_id.clone();
    let outcome = match state.auth().orgs().apply_billing(org, event).await {
        Ok(outcome) => outcome,
        Err(boardroom_actors::org::OrgError::NotFound(_)) => {
            return Ok(ack(StripeEventOutcome::Ignored));
        }
        Err(err) => return Err(err.into()),
    };
    if let Some((from, to)) = outcome.plan_change() {
        state.auth().audit(AuditAction::PlanChanged, &meta, |e| {
            e.organization_id = Some(org);
            e.target = Some(org.to_string());
            e.metadata =
                json!({ "from": from.as_str(), "to": to.as_str(), "stripe_event": event_id });
        });
    }
    if outcome.cancelled() {
        state.auth().audit(AuditAction::SubscriptionCancelled, &meta, |e| {
            e.organization_id = Some(org);
            e.target = Some(org.to_string());
            e.metadata = json!({ "stripe_event": event_id });
        });
    }
    Ok(ack(match outcome {
        BillingOutcome::Applied { .. } => StripeEventOutcome::Applied,
        BillingOutcome::Duplicate => StripeEventOutcome::Duplicate,
        BillingOutcome::Stale => StripeEventOutcome::Stale,
    }))
}

/// The organization an event concerns: named, or found by its stored Stripe customer, else by
/// the subscription's `metadata.organization_id`.
async fn organization_of(state: &AppState, target: &Target) -> ApiResult<Option<Uuid>> {
    match target {
        Target::Org(org) => Ok(Some(*org)),
        Target::Customer { customer, org } => {
            if let Some(customer) = customer {
                if let Some(found) = state.store().org_of_stripe_customer(customer).await? {
                    return Ok(Some(found));
                }
            }
            Ok(*org)
        }
    }
}

#[utoipa::path(post, path = "/orgs/{org}/billing/checkout", tag = "billing",
    operation_id = "billing_checkout",
    summary = "Start a Stripe Checkout for a paid plan (org admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    request_body = CheckoutRequest,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Send the person to this Stripe page",
        body = BillingRedirect), crate::http::openapi::WriteErrors))]
async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CheckoutRequest>,
) -> ApiResult<Json<BillingRedirect>> {
    let (billing, current) = admin_billing(&state, &caller, org).await?;
    if body.plan == Plan::Free {
        return Err(ApiError::validation(
            "the free plan needs no checkout; cancel the subscription in the billing portal",
        ));
    }
    let url = billing.checkout(org, body.plan, current.customer.as_deref()).await?;
    Ok(Json(BillingRedirect { url }))
}

#[utoipa::path(post, path = "/orgs/{org}/billing/portal", tag = "billing",
    operation_id = "billing_portal",
    summary = "Open the Stripe Billing Portal for the organization's subscription (org admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Send the person to this Stripe page",
        body = BillingRedirect), crate::http::openapi::WriteErrors))]
async fn portal(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<BillingRedirect>> {
    let (billing, current) = admin_billing(&state, &caller, org).await?;
    let customer = current.customer.ok_or_else(|| {
        ApiError::conflict(
            "the organization has no Stripe customer yet: subscribe through checkout first",
        )
    })?;
    let url = billing.portal(org, &customer).await?;
    Ok(Json(BillingRedirect { url }))
}

/// What the checkout and portal routes start from: billing on, a session of an org admin, and
/// the organization's billing state.
async fn admin_billing<'a>(
    state: &'a AppState,
    caller: &Caller,
    org: Uuid,
) -> ApiResult<(&'a std::sync::Arc<Billing>, BillingState)> {
    let billing = billing(state)?;
    caller.require_session()?;
    state.auth().org_access(caller, org, OrgRole::Admin).await?;
    let current = state
        .store()
        .tenant(org)
        .billing()
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok((billing, current))
}
