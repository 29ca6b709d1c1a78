//! Webhook delivery: the outbox backend of the webhook actor, signing, and the retry schedule.
//!
//! The actor (`boardroom_actors::webhook`) decides when to attempt; this module owns what an
//! attempt is. Each one re-checks the URL with the [`ssrf::Guard`] and connects only through
//! [`ssrf::Checked::pinned_client`] (no redirects, pinned address), POSTs the event as JSON,
//! signs it as Stripe does (`Boardroom-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! keyed with the secret string as shown to the owner, plus a second `v1=` for the previous
//! secret for [`ROTATION_OVERLAP`] after a rotation), reads at most a short excerpt of the answer
//! and records the result.
//!
//! Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
//! (honouring `Retry-After`) until [`RETRY_WINDOW`] after the delivery was enqueued; other
//! answers (3xx, 4xx) and URLs the guard refuses are final. Every failed attempt counts toward
//! the webhook's consecutive failures; at the configured threshold the webhook is disabled.

use std::time::Duration;

use boardroom_actors::webhook::{
    Affected, AttemptOutcome, DueDelivery, WebhookBackend, WebhookGrant,
};
use boardroom_protocol::webhooks::WebhookPayload;
use boardroom_protocol::Scope;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::config::Settings;
use crate::ssrf::{self, Guard, SsrfError};
use crate::storage::{AttemptRecord, DeliveryJob, Store};

/// How long a delivery is retried after it was enqueued.
pub const RETRY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How long finished deliveries stay listed before they are pruned.
pub const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// Longest wait between two attempts, whatever the backoff or `Retry-After` say.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);

/// How much longer than the delivery timeout an attempt's claim lasts; a node that dies
/// mid-attempt leaves the delivery to others after the claim lapses.
pub const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = concat!("Boardroom-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Prefix of generated signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: the prefix and 32 random bytes in hex.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

/// Hex HMAC-SHA256 of `"<t>.<body>"` keyed with the bytes of `secret`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty tag would fail every check.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Boardroom-Signature` value: `t=<t>` and one `v1=` per secret, current first.
pub fn signature_header(t: i64, body: &[u8], secrets: &[&str]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&sign(secret, t, body));
    }
    header
}

/// The delay a `Retry-After` value asks for: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

/// Exponential backoff with "equal jitter": half the doubled delay, plus a random part of the
/// other half, so receivers recovering from an outage are not hit by every sender at once.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(MAX_RETRY_DELAY);
    let half = full / 2;
    let jitter_ms = rand::thread_rng().gen_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter_ms)
}

/// How an attempt ended, before it is recorded.
#[derive(Debug)]
enum Verdict {
    Delivered,
    Retry(Option<Duration>),
    Final,
}

/// The outbox and deliverer behind the webhook actor.
pub struct Deliverer {
    store: Store,
    guard: Guard,
    disable_after: i64,
    backoff_base: Duration,
    timeout: Duration,
}

impl Deliverer {
    /// A deliverer configured by `settings`.
    pub fn new(store: Store, settings: &Settings) -> Self {
        Deliverer {
            store,
            guard: Guard::system(settings.webhook_allow.clone()),
            disable_after: i64::from(settings.webhook_disable_after),
            backoff_base: Duration::from_millis(settings.webhook_backoff_base_ms),
            timeout: settings.webhook_timeout,
        }
    }

    /// Sends `job` once; returns the verdict, the HTTP status, the error and the excerpt.
    async fn send(
        &self,
        job: &DeliveryJob,
    ) -> (Verdict, Option<i64>, Option<String>, Option<String>) {
        let checked = match self.guard.check(&job.url).await {
            Ok(checked) => checked,
            Err(err) => {
                tracing::warn!(webhook = %job.webhook_id, reason = err.reason(), addr = ?err.address(), "webhook URL refused at delivery");
                // A name that does not resolve may next time; a blocked target will not.
                let verdict = if matches!(err, SsrfError::Unresolvable(_)) {
                    Verdict::Retry(None)
                } else {
                    Verdict::Final
                };
                return (verdict, None, Some(format!("refused: {}: {err}", err.reason())), None);
            }
        };
        let client = match checked.pinned_client() {
            Ok(client) => client,
            Err(err) => {
                return (
                    Verdict::Retry(None),
                    None,
                    Some(format!("client: {}", err.without_url())),
                    None,
                )
            }
        };
        let event = match crate::wire::events::decode(&job.kind, job.payload.0.clone()) {
            Ok(event) => event,
            Err(err) => return (Verdict::Final, None, Some(format!("logged event: {err}")), None),
        };
        let body = WebhookPayload {
            id: job.id,
            board_id: job.board_id,
            seq: job.seq,
            event,
            created_at: job.event_created_at,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(body) => body,
            Err(err) => return (Verdict::Final, None, Some(format!("encoding: {err}")), None),
        };
        let now = chrono::Utc::now();
        let mut secrets = vec![job.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&job.previous_secret, job.previous_secret_expires_at)
        {
            if until > now {
                secrets.push(previous);
            }
        }
        let signature = signature_header(now.timestamp(), &body, &secrets);
        let sent = client
            .post(checked.url().clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, USER_AGENT)
            .header("Boardroom-Event", &job.kind)
            .header("Boardroom-Delivery", job.id.to_string())
            .header("Boardroom-Signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                let why = if err.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("connection failed: {}", err.without_url())
                };
                return (Verdict::Retry(None), None, Some(why), None);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let excerpt =
            match ssrf::read_body_capped(response, ssrf::BODY_CAP, ssrf::EXCERPT_BYTES).await {
                Ok(read) => Some(read.excerpt),
                Err(_) => None,
            };
        let code = Some(i64::from(status.as_u16()));
        if status.is_success() {
            (Verdict::Delivered, code, None, excerpt)
        } else if status.as_u16() == 429 || status.is_server_error() {
            (Verdict::Retry(retry_after), code, Some(format!("HTTP {}", status.as_u16())), excerpt)
        } else if status.is_redirection() {
            (
                Verdict::Final,
                code,
                Some(format!("HTTP {} (redirects are not followed)", status.as_u16())),
                excerpt,
            )
        } else {
            (Verdict::Final, code, Some(format!("HTTP {}", status.as_u16())), excerpt)
        }
    }
}

#[async_trait::async_trait]
impl WebhookBackend for Deliverer {
    async fn enqueue_board(&self, org: uuid::Uuid, board: uuid::Uuid) -> anyhow::Result<u64> {
        Ok(self.store.tenant(org).enqueue_webhook_deliveries(board, RETRY_WINDOW).await?)
    }

    async fn enqueue_all(&self) -> anyhow::Result<u64> {
        let mut added = 0;
        for (org, board) in self.store.webhook_boards_behind().await? {
            added += self.enqueue_board(org, board).await?;
        }
        Ok(added)
    }

    async fn due(&self, limit: u32) -> anyhow::Result<Vec<DueDelivery>> {
        Ok(self.store.due_webhook_deliveries(i64::from(limit)).await?)
    }

    async fn prune(&self) -> anyhow::Result<u64> {
        let before = crate::storage::now() - DELIVERY_RETENTION;
        Ok(self.store.prune_webhook_deliveries(before).await?)
    }

    async fn grants(&self, affected: Affected) -> anyhow::Result<Vec<WebhookGrant>> {
        let org = match affected {
            Affected::Board { org, .. }
            | Affected::User { org, .. }
            | Affected::Key { org, .. } => org,
        };
        Ok(self.store.tenant(org).webhook_grants(affected).await?)
    }

    async fn key_scopes(
        &self,
        org: uuid::Uuid,
        user: uuid::Uuid,
        key: uuid::Uuid,
    ) -> anyhow::Result<Option<Vec<Scope>>> {
        // From the store, not the verified-key cache: a revoke or re-scope is seen at once.
        let Some(row) = self.store.tenant(org).api_key(key).await? else { return Ok(None) };
        if row.user_id != user || !row.is_live(chrono::Utc::now()) {
            return Ok(None);
        }
        Ok(Some(row.scopes.0.iter().filter_map(|s| Scope::parse(s)).collect()))
    }

    async fn disable_for_access(
        &self,
        org: uuid::Uuid,
        webhook: uuid::Uuid,
        reason: &'static str,
    ) -> anyhow::Result<bool> {
        Ok(self.store.tenant(org).disable_webhook_for_access(webhook, reason).await?)
    }

    async fn attempt(&self, due: &DueDelivery) -> anyhow::Result<AttemptOutcome> {
        let tenant = self.store.tenant(due.webhook.organization_id);
        let Some(job) = tenant.delivery_job(due.id).await? else {
            return Ok(AttemptOutcome::Failed);
        };
        if job.status != "pending" || !job.enabled {
            return Ok(AttemptOutcome::Retrying);
        }
        // Several nodes may share the outbox: only the one whose claim succeeds attempts.
        let lease = chrono::Duration::from_std(self.timeout + CLAIM_MARGIN).unwrap_or(RETRY_WINDOW);
        if !tenant.claim_delivery(job.id, crate::storage::now() + lease).await? {
            return Ok(AttemptOutcome::Retrying);
        }
        let (verdict, status_code, error, excerpt) = self.send(&job).await;
        let now = crate::storage::now();
        let (status, next_attempt_at, error) = match verdict {
            Verdict::Delivered => ("succeeded", now, None),
            Verdict::Final => ("failed", now, error),
            Verdict::Retry(asked) => {
                let mut delay = backoff(self.backoff_base, job.attempts + 1);
                if let Some(asked) = asked {
                    delay = delay.max(asked.min(MAX_RETRY_DELAY));
                }
                let next = now + chrono::Duration::from_std(delay).unwrap_or(RETRY_WINDOW);
                if next > job.give_up_at {
                    let error = error.map(|e| format!("{e}; gave up after retrying for 24 hours"));
                    ("failed", now, error)
                } else {
                    ("pending", next, error)
                }
            }
        };
        tracing::debug!(webhook = %job.webhook_id, delivery = %job.id, seq = job.seq, status, code = ?status_code, "webhook attempt");
        crate::metrics::webhook_attempted(status);
        // Errors quote the HTTP stack, which quotes the receiver: stored text carries no controls.
        let error = error.map(|e| boardroom_actors::text::scrub(&e).into_owned());
        let record = AttemptRecord { status, next_attempt_at, status_code, error, excerpt };
        let after = tenant.record_attempt(&job, &record, self.disable_after).await?;
        if after.disabled_now {
            tracing::warn!(webhook = %job.webhook_id, failures = after.consecutive_failures, "webhook disabled after consecutive failures");
            return Ok(AttemptOutcome::WebhookDisabled {
                board_id: job.board_id,
                consecutive_failures: after.consecutive_failures,
            });
        }
        Ok(match status {
            "succeeded" => AttemptOutcome::Delivered,
            "pending" => AttemptOutcome::Retrying,
            _ => AttemptOutcome::Failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently with Python.
        let header = signature_header(1_700_000_000, b"{}", &["whsec_test"]);
        assert_eq!(
            header,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        let two = signature_header(1, b"x", &["a", "b"]);
        assert_eq!(two.matches("v1=").count(), 2);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = chrono::Utc::now();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = (now + chrono::Duration::seconds(30)).to_rfc2822();
        let parsed = parse_retry_after(&later, now).unwrap();
        assert!(parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(28));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(1000);
        for attempts in 1..6 {
            let full = base * 2u32.pow(attempts as u32 - 1);
            let d = backoff(base, attempts);
            assert!(d >= full / 2 && d <= full + Duration::from_millis(1), "{attempts}: {d:?}");
        }
        assert!(backoff(base, 1000) <= MAX_RETRY_DELAY + Duration::from_millis(1));
    }
}
