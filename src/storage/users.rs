//! Users: platform-level accounts (not tenant data; an account may belong to many orgs).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{new_id, now, StorageResult, Store};
use crate::{on_pool, write_on_pool};

/// A stored user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: Uuid,
    /// Lower-cased email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// bcrypt hash; `None` for accounts that only sign in with Google.
    pub password_hash: Option<String>,
    /// Whether the email is proved: a verification or reset link was used, Google vouched for
    /// it, or an operator marked it.
    pub email_verified: bool,
    /// Google's subject id, once linked.
    pub google_sub: Option<String>,
    /// Platform superadmin (set only from the CLI).
    pub is_superadmin: bool,
    /// Bumped whenever every access token of the user must stop working.
    pub token_version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When the account is to be erased, if its owner asked for that and has not cancelled.
    pub deletion_scheduled_for: Option<DateTime<Utc>>,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, email_verified, google_sub, \
                            is_superadmin, token_version, created_at, deletion_scheduled_for";

/// A user to create.
pub struct NewUser<'a> {
    /// Lower-cased email.
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// bcrypt hash, if the account has a password.
    pub password_hash: Option<&'a str>,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Google subject, if created through Google.
    pub google_sub: Option<&'a str>,
}

impl Store {
    /// Creates a user; a taken email is [`StorageError::Unique`](super::StorageError::Unique).
    pub async fn create_user(&self, user: NewUser<'_>) -> StorageResult<UserRow> {
        let sql = format!(
            "INSERT INTO users (id, email, name, password_hash, email_verified, google_sub, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {USER_COLUMNS}"
        );
        let row = write_on_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&sql)
                .bind(new_id())
                .bind(user.email)
                .bind(user.name)
                .bind(user.password_hash)
                .bind(user.email_verified)
                .bind(user.google_sub)
                .bind(now())
                .fetch_one(pool)
                .await
        })?;
        Ok(row)
    }

    /// The user with `email` (lower-cased), if any.
    pub async fn user_by_email(&self, email: &str) -> StorageResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(pool).await
        })?)
    }

    /// The user with `id`, if any.
    pub async fn user_by_id(&self, id: Uuid) -> StorageResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// The user linked to Google subject `sub`, if any.
    pub async fn user_by_google_sub(&self, sub: &str) -> StorageResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE google_sub = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&sql).bind(sub).fetch_optional(pool).await
        })?)
    }

    /// Links a Google subject to an existing, unlinked user and marks the email verified.
    ///
    /// Registration does not prove ownership of an email, so someone could have registered the
    /// address before its owner signed in with Google. When the email was unverified, the
    /// password is therefore cleared, the token version bumped, every session ended and every
    /// API key revoked: whatever a squatter set up stops working. Returns, when that happened,
    /// the ids of the keys revoked (for the caller's caches). A user linked meanwhile to another
    /// subject is [`StorageError::Unique`](super::StorageError::Unique).
    pub async fn link_google(&self, user_id: Uuid, sub: &str) -> StorageResult<Option<Vec<Uuid>>> {
        let at = now();
        crate::transaction!(self, conn => {
            let verified: Option<(bool,)> = sqlx::query_as(
                "SELECT email_verified FROM users WHERE id = $1 AND google_sub IS NULL",
            )
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((verified,)) = verified else {
                return Err(super::StorageError::Unique("users_google_sub_key".into()));
            };
            sqlx::query(
                "UPDATE users SET google_sub = $2, email_verified = TRUE, \
                 password_hash = CASE WHEN $3 THEN password_hash ELSE NULL END, \
                 token_version = CASE WHEN $3 THEN token_version ELSE token_version + 1 END \
                 WHERE id = $1 AND google_sub IS NULL",
            )
            .bind(user_id)
            .bind(sub)
            .bind(verified)
            .execute(&mut *conn)
            .await?;
            if !verified {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $2, revoked_reason = 'email_claimed_by_google' \
                     WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                // Across the squatter's organizations: the account, not one tenant, was taken.
                let keys: Vec<(Uuid,)> = sqlx::query_as(
                    "UPDATE api_keys SET revoked_at = $2 \
                     WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                )
                .bind(user_id)
                .bind(at)
                .fetch_all(&mut *conn)
                .await?;
                return Ok(Some(keys.into_iter().map(|(id,)| id).collect()));
            }
            Ok(None)
        })
    }

    /// Replaces the password hash and bumps the token version; returns the new version.
    pub async fn set_password(&self, user_id: Uuid, password_hash: &str) -> StorageResult<i64> {
        let (version,): (i64,) = write_on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE users SET password_hash = $2, token_version = token_version + 1 \
                 WHERE id = $1 RETURNING token_version",
            )
            .bind(user_id)
            .bind(password_hash)
            .fetch_one(pool)
            .await
        })?;
        Ok(version)
    }

    /// Sets or clears the superadmin flag of the user with `email`; returns the user.
    pub async fn set_superadmin(&self, email: &str, value: bool) -> StorageResult<UserRow> {
        let sql = format!(
            "UPDATE users SET is_superadmin = $2 WHERE email = $1 RETURNING {USER_COLUMNS}"
        );
        Ok(write_on_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&sql).bind(email).bind(value).fetch_one(pool).await
        })?)
    }
}
