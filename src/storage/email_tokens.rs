//! Single-use email tokens: email verification, a change of address, a password reset. Only a
//! token's SHA-256 is stored; redeeming one is a compare-and-set on `used_at`, in the same
//! transaction as what it proves, so a token works once and a failed redemption keeps it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::mail_outbox::insert_mail;
use super::{now, NewMail, StorageError, StorageResult, Store};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves the account's address (sent at registration and on request).
    Verify,
    /// Proves a new address the account asked to move to.
    Change,
    /// Lets the holder of the address set a new password.
    Reset,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Verify => "verify",
            TokenPurpose::Change => "change",
            TokenPurpose::Reset => "reset",
        }
    }
}

/// A token to store.
pub struct NewEmailToken<'a> {
    /// SHA-256 of the token.
    pub hash: &'a [u8],
    /// Whose.
    pub user_id: Uuid,
    /// What for.
    pub purpose: TokenPurpose,
    /// The address it proves.
    pub email: &'a str,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A verification (or change) token redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The account.
    pub user_id: Uuid,
    /// The address now verified (and, for a change, the account's address).
    pub email: String,
    /// The account's address before, when this was a change.
    pub previous_email: Option<String>,
}

/// A reset token redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetDone {
    /// The account.
    pub user_id: Uuid,
    /// Its new token version.
    pub token_version: i64,
    /// How many sessions ended.
    pub sessions_ended: usize,
}

impl Store {
    /// Stores a token and queues the mail that carries it (and any other `mails`), in one
    /// transaction.
    pub async fn issue_email_token(
        &self,
        token: NewEmailToken<'_>,
        mails: &[NewMail],
    ) -> StorageResult<()> {
        crate::transaction!(self, conn => {
            sqlx::query(
                "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.hash)
            .bind(token.user_id)
            .bind(token.purpose.as_str())
            .bind(token.email)
            .bind(now())
            .bind(token.expires_at)
            .execute(&mut *conn)
            .await?;
            for mail in mails {
                insert_mail!(&mut *conn, mail)?;
            }
            Ok(())
        })
    }

    /// Redeems a verification or change token: the address is marked verified (a change also
    /// becomes the account's address). `None` for an unknown, used, expired or other-purpose
    /// token, or one whose address is no longer the account's; a new address taken meanwhile
    /// is [`StorageError::Unique`] and the token stays unused.
    pub async fn redeem_verification(&self, hash: &[u8]) -> StorageResult<Option<Verified>> {
        let at = now();
        crate::transaction!(self, conn => {
            let taken: Option<(Uuid, String, String)> = sqlx::query_as(
                "UPDATE email_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                 AND expires_at > $2 AND (purpose = 'verify' OR purpose = 'change') \
                 RETURNING user_id, purpose, email",
            )
            .bind(hash)
            .bind(at)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((user_id, purpose, email)) = taken else { return Ok(None) };
            let current: Option<(String,)> =
                sqlx::query_as("SELECT email FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            let Some((current,)) = current else { return Ok(None) };
            if purpose == TokenPurpose::Change.as_str() {
                sqlx::query("UPDATE users SET email = $2, email_verified = TRUE WHERE id = $1")
                    .bind(user_id)
                    .bind(&email)
                    .execute(&mut *conn)
                    .await?;
                // Tokens proving the old address prove nothing about the account any more.
                sqlx::query(
                    "UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(user_id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                return Ok(Some(Verified { user_id, email, previous_email: Some(current) }));
            }
            if current != email {
                return Err(StorageError::Rule("address_changed"));
            }
            sqlx::query("UPDATE users SET email_verified = TRUE WHERE id = $1")
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
            Ok(Some(Verified { user_id, email, previous_email: None }))
        })
    }

    /// Redeems a reset token: sets `password_hash`, moves the token version (every access token
    /// stops), ends every session and marks the address verified (the link proved it), in one
    /// transaction. `None` for an unknown, used, expired or other-purpose token, or one whose
    /// address is no longer the account's.
    pub async fn redeem_reset(
        &self,
        hash: &[u8],
        password_hash: &str,
    ) -> StorageResult<Option<ResetDone>> {
        let at = now();
        crate::transaction!(self, conn => {
            let taken: Option<(Uuid, String)> = sqlx::query_as(
                "UPDATE email_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                 AND expires_at > $2 AND purpose = 'reset' RETURNING user_id, email",
            )
            .bind(hash)
            .bind(at)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((user_id, email)) = taken else { return Ok(None) };
            let updated: Option<(i64,)> = sqlx::query_as(
                "UPDATE users SET password_hash = $3, email_verified = TRUE, \
                 token_version = token_version + 1 WHERE id = $1 AND email = $2 \
                 RETURNING token_version",
            )
            .bind(user_id)
            .bind(&email)
            .bind(password_hash)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((token_version,)) = updated else {
                return Err(StorageError::Rule("address_changed"));
            };
            let ended = sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = 'password_reset' \
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            // One reset link is enough: any other outstanding one stops working.
            sqlx::query(
                "UPDATE email_tokens SET used_at = $2 \
                 WHERE user_id = $1 AND purpose = 'reset' AND used_at IS NULL",
            )
            .bind(user_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(Some(ResetDone {
                user_id,
                token_version,
                sessions_ended: usize::try_from(ended).unwrap_or(usize::MAX),
            }))
        })
    }

    /// Marks the address of the account with `email` verified (the operator's
    /// `admin verify-email`); [`StorageError::NotFound`] when there is none.
    pub async fn mark_email_verified(&self, email: &str) -> StorageResult<super::UserRow> {
        let user = self.user_by_email(email).await?.ok_or(StorageError::NotFound)?;
        crate::write_on_pool!(self, pool => {
            sqlx::query("UPDATE users SET email_verified = TRUE WHERE id = $1")
                .bind(user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(super::UserRow { email_verified: true, ..user })
    }
}
