//! The mail outbox: messages written in the same transaction as what they announce, sent later
//! by [`crate::mail::Sender`]. A row's bodies (links carry tokens) are cleared once it is sent.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{now, StorageResult, Store};
use crate::{on_pool, write_on_pool};

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// The one link the message carries (logged instead of sent when mail is off).
    pub link: String,
}

/// A queued message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailRow {
    /// Id.
    pub id: Uuid,
    /// Recipient.
    pub to_email: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// The message's link.
    pub link: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// When it is due.
    pub next_attempt_at: DateTime<Utc>,
}

/// Inserts a [`NewMail`] on a transaction's connection, so a message is queued exactly when
/// what it announces is written. A macro: its body is compiled once per backend.
macro_rules! insert_mail {
    ($conn:expr, $mail:expr) => {{
        let mail: &$crate::storage::NewMail = $mail;
        let at = $crate::storage::now();
        sqlx::query(
            "INSERT INTO mail_outbox (id, to_email, subject, text_body, html_body, link, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind($crate::storage::new_id())
        .bind(&mail.to)
        .bind(&mail.subject)
        .bind(&mail.text)
        .bind(&mail.html)
        .bind(&mail.link)
        .bind(at)
        .execute($conn)
        .await
    }};
}
pub(crate) use insert_mail;

const MAIL_COLUMNS: &str =
    "id, to_email, subject, text_body, html_body, link, attempts, next_attempt_at";

impl Store {
    /// Queues one message.
    pub async fn enqueue_mail(&self, mail: &NewMail) -> StorageResult<()> {
        crate::transaction!(self, conn => {
            insert_mail!(&mut *conn, mail)?;
            Ok(())
        })
    }

    /// Unsent messages due at `at`, oldest first.
    pub async fn due_mail(&self, at: DateTime<Utc>, limit: i64) -> StorageResult<Vec<MailRow>> {
        let sql = format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, MailRow>(&sql).bind(at).bind(limit).fetch_all(pool).await
        })?)
    }

    /// Claims a due message for one attempt by moving it to `lease_until` (a compare-and-set on
    /// the due time read): false when another sender took it first.
    pub async fn claim_mail(
        &self,
        id: Uuid,
        seen: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE mail_outbox SET next_attempt_at = $3 \
                 WHERE id = $1 AND next_attempt_at = $2 AND sent_at IS NULL",
            )
            .bind(id)
            .bind(seen)
            .bind(lease_until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Marks a message sent and forgets its bodies.
    pub async fn mail_sent(&self, id: Uuid) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE mail_outbox SET sent_at = $2, attempts = attempts + 1, text_body = '', \
                 html_body = '', link = '', last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn mail_failed(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                 last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(next_attempt_at)
            .bind(error)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Removes messages sent before `before`; answers how many.
    pub async fn prune_sent_mail(&self, before: DateTime<Utc>) -> StorageResult<u64> {
        Ok(write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM mail_outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?)
    }
}
