//! Sessions: one per sign-in, each with a rotating refresh token.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{now, StorageResult, Store};
use crate::{on_pool, write_on_pool};

/// A stored session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// Id (the `sid` claim of its access tokens).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// How it was created: `password` or `google`.
    pub method: String,
    /// Per-session salt of the refresh-token MAC.
    pub refresh_salt: Vec<u8>,
    /// Generation of the one refresh token currently valid.
    pub refresh_generation: i64,
    /// Client IP at creation.
    pub ip: Option<String>,
    /// Client User-Agent at creation.
    pub user_agent: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last refresh.
    pub last_used_at: DateTime<Utc>,
    /// When the refresh token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
}

impl SessionRow {
    /// Whether the session can still be used.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > at
    }
}

const SESSION_COLUMNS: &str = "id, user_id, method, refresh_salt, refresh_generation, ip, \
    user_agent, created_at, last_used_at, expires_at, revoked_at, revoked_reason";

/// A session to create.
pub struct NewSession<'a> {
    /// Id, chosen by the caller so tokens can be minted before the insert.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// `password` or `google`.
    pub method: &'a str,
    /// Refresh MAC salt.
    pub refresh_salt: &'a [u8],
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client User-Agent.
    pub user_agent: Option<&'a str>,
    /// Expiry of the refresh token.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Creates a session.
    pub async fn create_session(&self, session: NewSession<'_>) -> StorageResult<SessionRow> {
        let sql = format!(
            "INSERT INTO sessions (id, user_id, method, refresh_salt, ip, user_agent, created_at, \
             last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             RETURNING {SESSION_COLUMNS}"
        );
        Ok(write_on_pool!(self, pool => {
            sqlx::query_as::<_, SessionRow>(&sql)
                .bind(session.id)
                .bind(session.user_id)
                .bind(session.method)
                .bind(session.refresh_salt)
                .bind(session.ip)
                .bind(session.user_agent)
                .bind(now())
                .bind(session.expires_at)
                .fetch_one(pool)
                .await
        })?)
    }

    /// The session with `id`, if any.
    pub async fn session(&self, id: Uuid) -> StorageResult<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SessionRow>(&sql).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Live sessions of a user, newest first.
    pub async fn live_sessions(&self, user_id: Uuid) -> StorageResult<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
             AND expires_at > $2 ORDER BY created_at DESC"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SessionRow>(&sql).bind(user_id).bind(now()).fetch_all(pool).await
        })?)
    }

    /// Moves a live session from refresh generation `from` to `from + 1` and extends it.
    /// Returns false when the generation had already moved (a concurrent or replayed refresh).
    pub async fn rotate_refresh(
        &self,
        id: Uuid,
        from: i64,
        expires_at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET refresh_generation = refresh_generation + 1, \
                 last_used_at = $3, expires_at = $4 \
                 WHERE id = $1 AND refresh_generation = $2 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(from)
            .bind(now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Revokes one session of `user_id`; returns false when there was no live one.
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        id: Uuid,
        reason: &str,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(user_id)
            .bind(now())
            .bind(reason)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Revokes every live session of `user_id` except `keep`; returns the revoked ids.
    pub async fn revoke_other_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: &str,
    ) -> StorageResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = write_on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
                 WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR id <> $2) \
                 RETURNING id",
            )
            .bind(user_id)
            .bind(keep)
            .bind(now())
            .bind(reason)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
