//! Billing with Stripe: what the server knows of its Stripe account ([`Billing`], built from the
//! settings only when `BOARDROOM_STRIPE_WEBHOOK_SECRET` is set: without it billing is off and
//! its routes answer 404), and the two calls it makes to Stripe's API, which create a Checkout
//! Session and a Billing Portal session (form-encoded, as Stripe's API takes them).
//!
//! - [`signature`]: the webhook signature check, as Stripe's libraries do it.
//! - [`event`]: a verified event reduced to its organization and its change.
//!
//! Events are applied by the organization's actor (`boardroom_actors::billing` holds the rule);
//! the HTTP edge is `src/http/billing.rs`.

pub mod event;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use boardroom_actors::billing::Plan;
use uuid::Uuid;

use crate::config::{Settings, StripePrice};

/// Longest a call to Stripe's API may take.
const STRIPE_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest answer read from Stripe's API.
const MAX_STRIPE_ANSWER_BYTES: usize = 256 * 1024;

/// Why a call to Stripe's API failed. The details stay in the log.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// `BOARDROOM_STRIPE_SECRET_KEY` is not set.
    #[error("Stripe API calls are not configured (BOARDROOM_STRIPE_SECRET_KEY)")]
    NotConfigured,
    /// No price in `BOARDROOM_STRIPE_PRICES` buys the plan.
    #[error("no Stripe price is configured for the {0} plan")]
    NoPrice(&'static str),
    /// Stripe could not be reached, refused the call, or answered something unreadable.
    #[error("Stripe did not create the session: {0}")]
    Api(String),
}

/// The Stripe account as configured.
pub struct Billing {
    webhook_secret: String,
    secret_key: Option<String>,
    api_base: url::Url,
    prices: Vec<StripePrice>,
    public_url: url::Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing").field("api_base", &self.api_base.as_str()).finish_non_exhaustive()
    }
}

impl Billing {
    /// Billing as configured; `None` when it is off (no webhook secret).
    pub fn from_settings(settings: &Settings) -> Result<Option<Arc<Billing>>, String> {
        let Some(webhook_secret) = settings.stripe_webhook_secret.clone() else {
            return Ok(None);
        };
        if webhook_secret.trim().is_empty() {
            return Err("BOARDROOM_STRIPE_WEBHOOK_SECRET is empty".into());
        }
        let client = reqwest::Client::builder()
            .timeout(STRIPE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the Stripe client: {e}"))?;
        Ok(Some(Arc::new(Billing {
            webhook_secret,
            secret_key: settings.stripe_secret_key.clone().filter(|k| !k.trim().is_empty()),
            api_base: settings.stripe_api_base.clone(),
            prices: settings.stripe_prices.clone(),
            public_url: settings.public_url()?,
            client,
        })))
    }

    /// Checks a delivery's `Stripe-Signature` against its raw body, now.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
    ) -> Result<(), signature::SignatureError> {
        signature::verify(header, body, &self.webhook_secret, chrono::Utc::now().timestamp())
    }

    /// The configured prices.
    pub fn prices(&self) -> &[StripePrice] {
        &self.prices
    }

    /// Creates a Checkout Session subscribing `org` to `plan`; answers its URL. The session names
    /// the organization twice: `client_reference_id` (read back from
    /// `checkout.session.completed`) and the subscription's `metadata.organization_id` (read
    /// from the subscription's own events, should they arrive first).
    pub async fn checkout(
        &self,
        org: Uuid,
        plan: Plan,
        customer: Option<&str>,
    ) -> Result<String, StripeError> {
        let price = self
            .prices
            .iter()
            .find(|p| p.plan == plan)
            .ok_or(StripeError::NoPrice(plan.as_str()))?;
        let org = org.to_string();
        let success = self.page(&format!("?billing=success&org={org}"));
        let cancel = self.page(&format!("?billing=cancelled&org={org}"));
        let mut form: Vec<(&str, &str)> = vec![
            ("mode", "subscription"),
            ("line_items[0][price]", &price.price),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", &org),
            ("subscription_data[metadata][organization_id]", &org),
            ("metadata[organization_id]", &org),
            ("success_url", &success),
            ("cancel_url", &cancel),
        ];
        if let Some(customer) = customer {
            form.push(("customer", customer));
        }
        self.create("v1/checkout/sessions", &form).await
    }

    /// Creates a Billing Portal session for `customer`; answers its URL.
    pub async fn portal(&self, org: Uuid, customer: &str) -> Result<String, StripeError> {
        let back = self.page(&format!("?billing=portal&org={org}"));
        self.create("v1/billing_portal/sessions", &[("customer", customer), ("return_url", &back)])
            .await
    }

    fn page(&self, query: &str) -> String {
        format!("{}{query}", self.public_url.as_str())
    }

    /// POSTs `form` to `path` of Stripe's API and reads the `url` of what it created.
    async fn create(&self, path: &str, form: &[(&str, &str)]) -> Result<String, StripeError> {
        let key = self.secret_key.as_deref().ok_or(StripeError::NotConfigured)?;
        let url = self.api_base.join(path).map_err(|e| StripeError::Api(e.to_string()))?;
        let response = self
            .client
            .post(url)
            .bearer_auth(key)
            .form(form)
            .send()
            .await
            .map_err(|e| StripeError::Api(e.without_url().to_string()))?;
        let status = response.status();
        let body = read_capped(response).await?;
        if !status.is_success() {
            // Stripe's error bodies name the problem, never the key.
            return Err(StripeError::Api(format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
        let created: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| StripeError::Api(e.to_string()))?;
        created
            .get("url")
            .and_then(serde_json::Value::as_str)
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .map(str::to_owned)
            .ok_or_else(|| StripeError::Api("the answer has no url".into()))
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, StripeError> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| StripeError::Api(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_STRIPE_ANSWER_BYTES {
            return Err(StripeError::Api("the answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
