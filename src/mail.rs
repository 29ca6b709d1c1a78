//! Account mail: the outbox handle that queues messages ([`Mail`]) and the task that sends them
//! ([`Sender`]).
//!
//! A message is written to the `mail_outbox` table in the same transaction as what it announces
//! (a token, an invitation), never sent on the request path: a requester waits for no SMTP
//! server and learns nothing from one failing. The sender claims due rows (a compare-and-set on
//! their due time, so several nodes can share the outbox), sends each with `lettre`, and either
//! marks it sent (its bodies, which carry tokens, are cleared) or schedules a retry with
//! exponential backoff. Without `BOARDROOM_SMTP_URL` (development) it logs each message's link
//! at `info` instead, and says once at start that mail is off.
//!
//! [`templates`] builds the messages.

pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::storage::{MailRow, Store};

/// Queues messages and builds their links. Cheap to clone.
#[derive(Clone)]
pub struct Mail {
    public_url: url::Url,
    wake: Arc<Notify>,
}

impl Mail {
    /// A handle on the outbox, building links under `public_url`.
    pub fn new(public_url: url::Url) -> Self {
        Mail { public_url, wake: Arc::new(Notify::new()) }
    }

    /// The link to `path` on the public URL, with `token` as its query when given.
    pub fn link(&self, path: &str, token: Option<&str>) -> String {
        let mut url = self.public_url.clone();
        url.set_path(path);
        url.set_query(None);
        if let Some(token) = token {
            url.query_pairs_mut().append_pair("token", token);
        }
        url.to_string()
    }

    /// Tells the sender that something was queued (after the queuing transaction committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The SMTP transport `BOARDROOM_SMTP_URL` names; `None` when it is unset. The URL is never
/// repeated in an error: it may carry a password.
pub fn transport(
    settings: &Settings,
) -> Result<Option<AsyncSmtpTransport<Tokio1Executor>>, String> {
    let Some(raw) = settings.smtp_url.as_deref() else { return Ok(None) };
    let bad = |why: &str| {
        format!(
            "BOARDROOM_SMTP_URL (--smtp-url): {why} (expected smtp://host:port, \
             smtps://user:pass@host:465 or smtp://…?tls=starttls)"
        )
    };
    let mut url = url::Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(bad("the scheme must be smtp or smtps"));
    }
    // lettre calls STARTTLS `required`; `starttls` is the word operators know.
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| match (k.as_ref(), v.as_ref()) {
            ("tls", "starttls") => (k.into_owned(), "required".to_owned()),
            _ => (k.into_owned(), v.into_owned()),
        })
        .collect();
    if pairs.iter().any(|(k, v)| k == "tls" && !matches!(v.as_str(), "required" | "opportunistic"))
    {
        return Err(bad("tls must be starttls, required or opportunistic"));
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
        .map_err(|_| bad("cannot be used"))?;
    Ok(Some(builder.timeout(Some(SMTP_TIMEOUT)).build()))
}

/// The `From` of every message (`BOARDROOM_MAIL_FROM`).
pub fn from_mailbox(settings: &Settings) -> Result<Mailbox, String> {
    settings
        .mail_from
        .parse::<Mailbox>()
        .map_err(|e| format!("BOARDROOM_MAIL_FROM (--mail-from): not a mail address ({e})"))
}

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a claimed message is left to its sender before another may take it.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(120);
/// Messages looked at per round.
const BATCH: i64 = 32;
/// Attempts after which a message is given up (with the default backoff, about two days).
const MAX_ATTEMPTS: i64 = 60;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long sent rows (bodies already cleared) are kept.
const KEEP_SENT: chrono::Duration = chrono::Duration::days(7);

/// The wait after `attempts` failures: `base` doubled after each, at most an hour.
fn backoff(base: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Sends what the outbox holds.
pub struct Sender {
    store: Store,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    wake: Arc<Notify>,
    retry_base: Duration,
}

impl Sender {
    /// A sender for `mail`'s outbox; `transport` `None` logs links instead of sending.
    pub fn new(
        store: Store,
        mail: &Mail,
        transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        retry_base: Duration,
    ) -> Self {
        Sender { store, transport, from, wake: mail.wake.clone(), retry_base }
    }

    /// Runs until aborted: sends what is due, then waits to be woken or for the next retry.
    pub fn spawn(self) -> JoinHandle<()> {
        if self.transport.is_none() {
            tracing::warn!(
                "mail is not configured (BOARDROOM_SMTP_URL unset): account messages are not \
                 sent; each one's link is logged at info instead"
            );
        }
        tokio::spawn(async move {
            let poll = self.retry_base.min(Duration::from_secs(1));
            let mut last_prune = std::time::Instant::now();
            loop {
                let full = match self.round().await {
                    Ok(full) => full,
                    Err(err) => {
                        tracing::warn!(error = %err, "reading the mail outbox failed");
                        false
                    }
                };
                if last_prune.elapsed() > Duration::from_secs(3600) {
                    last_prune = std::time::Instant::now();
                    let before = crate::storage::now() - KEEP_SENT;
                    if let Err(err) = self.store.prune_sent_mail(before).await {
                        tracing::warn!(error = %err, "pruning sent mail failed");
                    }
                }
                if !full {
                    let _ = tokio::time::timeout(poll, self.wake.notified()).await;
                }
            }
        })
    }

    /// One look at the due messages; answers whether the batch was full (more may be due).
    async fn round(&self) -> Result<bool, crate::storage::StorageError> {
        let now = crate::storage::now();
        let due = self.store.due_mail(now, BATCH).await?;
        let full = due.len() as i64 == BATCH;
        for row in due {
            if !self.store.claim_mail(row.id, row.next_attempt_at, now + CLAIM_LEASE).await? {
                continue;
            }
            match self.send(&row).await {
                Ok(()) => self.store.mail_sent(row.id).await?,
                Err(err) => {
                    let attempts = row.attempts + 1;
                    if attempts >= MAX_ATTEMPTS {
                        tracing::error!(mail = %row.id, attempts, error = %err, "giving up on a message");
                        self.store.mail_sent(row.id).await?;
                        continue;
                    }
                    let wait = backoff(self.retry_base, attempts);
                    tracing::warn!(mail = %row.id, attempts, retry_in = ?wait, error = %err, "sending mail failed");
                    let next = crate::storage::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                    self.store.mail_failed(row.id, next, &err).await?;
                }
            }
        }
        Ok(full)
    }

    async fn send(&self, row: &MailRow) -> Result<(), String> {
        let Some(transport) = &self.transport else {
            // Development without SMTP: the link is what a developer needs.
            tracing::info!(mail = %row.id, subject = %row.subject, link = %row.link, "mail not sent (no SMTP configured)");
            return Ok(());
        };
        let to: Mailbox = row.to_email.parse().map_err(|e| format!("bad recipient: {e}"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&row.subject)
            .multipart(MultiPart::alternative_plain_html(
                row.text_body.clone(),
                row.html_body.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn with_url(url: Option<&str>) -> Settings {
        let mut settings =
            Settings::for_tests(PathBuf::from("/tmp/unused"), "sqlite::memory:".into());
        settings.smtp_url = url.map(str::to_owned);
        settings
    }

    #[tokio::test]
    async fn smtp_urls_of_every_documented_form_are_taken_and_bad_ones_refused_without_the_password(
    ) {
        assert!(transport(&with_url(None)).unwrap().is_none());
        for good in [
            "smtp://127.0.0.1:2525",
            "smtps://user:secret-pw@mail.example.com:465",
            "smtp://user:secret-pw@mail.example.com:587?tls=starttls",
            "smtp://mail.example.com?tls=opportunistic",
        ] {
            assert!(transport(&with_url(Some(good))).unwrap().is_some(), "{good}");
        }
        for bad in [
            "http://user:secret-pw@mail.example.com",
            "smtp://user:secret-pw@mail.example.com?tls=maybe",
            "not a url secret-pw",
        ] {
            let err = transport(&with_url(Some(bad))).err().unwrap();
            assert!(err.starts_with("BOARDROOM_SMTP_URL (--smtp-url): "), "{err}");
            assert!(!err.contains("secret-pw"), "{err}");
        }
        let mut settings = with_url(None);
        settings.mail_from = "not an address".into();
        assert!(from_mailbox(&settings).unwrap_err().starts_with("BOARDROOM_MAIL_FROM"));
        assert!(from_mailbox(&with_url(None)).is_ok());
    }

    #[test]
    fn retries_double_up_to_an_hour_and_links_escape_their_token() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
        let mail = Mail::new(url::Url::parse("https://b.example").unwrap());
        assert_eq!(
            mail.link("/verify-email", Some("a+b")),
            "https://b.example/verify-email?token=a%2Bb"
        );
    }
}
