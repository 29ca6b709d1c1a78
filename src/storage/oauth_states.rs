//! Pending OpenID sign-ins: what a callback needs to finish the sign-in its start route began.
//!
//! They live in the database rather than in memory, so the browser may come back to any node.
//! The key is a SHA-256 of the `state` parameter, never the state itself: reading the table
//! yields nothing that could be put in a callback URL. Each row is taken (read and deleted) in
//! one statement, so a state works once even when two callbacks race.

use chrono::{DateTime, Utc};

use super::{now, StorageResult, Store};
use crate::write_on_pool;

/// A pending sign-in, as the callback gets it back.
/// No `Debug`: it holds the PKCE verifier and nonce, which must never reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct OAuthStateRow {
    /// The PKCE code verifier to send with the authorization code.
    pub pkce_verifier: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// When the sign-in stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// A pending sign-in to store.
pub struct NewOAuthState<'a> {
    /// SHA-256 of the `state` parameter.
    pub state_hash: &'a [u8],
    /// The PKCE code verifier.
    pub pkce_verifier: &'a str,
    /// The nonce sent in the authorization request.
    pub nonce: &'a str,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a pending sign-in. Expired ones are dropped first, so abandoned sign-ins do not
    /// pile up.
    pub async fn put_oauth_state(&self, state: NewOAuthState<'_>) -> StorageResult<()> {
        let at = now();
        write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
                .bind(at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO oauth_states (state_hash, pkce_verifier, nonce, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(state.state_hash)
            .bind(state.pkce_verifier)
            .bind(state.nonce)
            .bind(state.expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Removes the pending sign-in keyed `state_hash` and returns it, unless there was none or
    /// it had expired (an expired one is removed all the same).
    pub async fn take_oauth_state(
        &self,
        state_hash: &[u8],
    ) -> StorageResult<Option<OAuthStateRow>> {
        let row = write_on_pool!(self, pool => {
            sqlx::query_as::<_, OAuthStateRow>(
                "DELETE FROM oauth_states WHERE state_hash = $1 \
                 RETURNING pkce_verifier, nonce, expires_at",
            )
            .bind(state_hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.filter(|row| row.expires_at > now()))
    }
}
