//! API keys: per-organization credentials that act as the user who made them.
//!
//! Only the 11-character prefix is stored in plaintext; the rest of the key is stored as a bcrypt
//! hash. Lookup by prefix is the one query here not bound to an organization: the key itself
//! names its organization, and the caller checks the secret before trusting the row.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{new_id, now, StorageResult, Store, TenantStore};
use crate::{on_pool, write_on_pool};

/// A stored API key (never the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Id.
    pub id: Uuid,
    /// Organization it works in.
    pub organization_id: Uuid,
    /// The user it acts as.
    pub user_id: Uuid,
    /// Label.
    pub name: String,
    /// The first 11 characters of the key.
    pub prefix: String,
    /// bcrypt hash of the rest of the key.
    pub secret_hash: String,
    /// Granted scopes, by wire name.
    pub scopes: Json<Vec<String>>,
    /// Requests per minute allowed.
    pub rate_limit_per_minute: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (coarse).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    /// Usable at `at`: not revoked and not expired.
    pub fn is_live(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > at)
    }
}

const KEY_COLUMNS: &str = "id, organization_id, user_id, name, prefix, secret_hash, scopes, \
    rate_limit_per_minute, created_at, expires_at, last_used_at, revoked_at";

/// An API key to create.
pub struct NewApiKey<'a> {
    /// The user it acts as.
    pub user_id: Uuid,
    /// Label.
    pub name: &'a str,
    /// The first 11 characters of the key.
    pub prefix: &'a str,
    /// bcrypt hash of the rest.
    pub secret_hash: &'a str,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Requests per minute.
    pub rate_limit_per_minute: i64,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes to an API key; `None` keeps a field.
#[derive(Default)]
pub struct ApiKeyChanges {
    /// New label.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New limit.
    pub rate_limit_per_minute: Option<i64>,
}

impl Store {
    /// The key whose prefix is `prefix`, in any organization.
    pub async fn api_key_by_prefix(&self, prefix: &str) -> StorageResult<Option<ApiKeyRow>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(&sql).bind(prefix).fetch_optional(pool).await
        })?)
    }
}

impl TenantStore<'_> {
    /// Creates a key; a prefix collision is [`StorageError::Unique`](super::StorageError::Unique).
    pub async fn create_api_key(&self, key: NewApiKey<'_>) -> StorageResult<ApiKeyRow> {
        let sql = format!(
            "INSERT INTO api_keys (id, organization_id, user_id, name, prefix, secret_hash, scopes, \
             rate_limit_per_minute, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLUMNS}"
        );
        Ok(write_on_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(&sql)
                .bind(new_id())
                .bind(self.org_id())
                .bind(key.user_id)
                .bind(key.name)
                .bind(key.prefix)
                .bind(key.secret_hash)
                .bind(Json(&key.scopes))
                .bind(key.rate_limit_per_minute)
                .bind(now())
                .bind(key.expires_at)
                .fetch_one(pool)
                .await
        })?)
    }

    /// Every key of the organization, newest first.
    pub async fn api_keys(&self) -> StorageResult<Vec<ApiKeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 ORDER BY created_at DESC"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(&sql).bind(self.org_id()).fetch_all(pool).await
        })?)
    }

    /// One key.
    pub async fn api_key(&self, id: Uuid) -> StorageResult<Option<ApiKeyRow>> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(&sql).bind(self.org_id()).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Revokes a key; false when there was no live key with that id.
    pub async fn revoke_api_key(&self, id: Uuid) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $3 WHERE organization_id = $1 AND id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind(self.org_id())
            .bind(id)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Applies `changes` to a live key; returns it, or `None` when there is none.
    pub async fn update_api_key(
        &self,
        id: Uuid,
        changes: ApiKeyChanges,
    ) -> StorageResult<Option<ApiKeyRow>> {
        let sql = format!(
            "UPDATE api_keys SET name = COALESCE($3, name), scopes = COALESCE($4, scopes), \
             rate_limit_per_minute = COALESCE($5, rate_limit_per_minute) \
             WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING {KEY_COLUMNS}"
        );
        Ok(write_on_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(&sql)
                .bind(self.org_id())
                .bind(id)
                .bind(changes.name.as_deref())
                .bind(changes.scopes.as_ref().map(Json))
                .bind(changes.rate_limit_per_minute)
                .fetch_optional(pool)
                .await
        })?)
    }
}
