//! The two ends of a Google sign-in on [`Auth`]: [`Auth::google_start`] keeps the pending
//! `state`, `nonce` and PKCE verifier (keyed by a SHA-256 of the state, so any node can finish
//! the sign-in); [`Auth::google_callback`] takes it back exactly once, has the provider identify
//! the person, and finds the account linked to that Google subject, else the one with that
//! email (linking Google to it), else a new one. Every failure after a known state is audited
//! with its reason. Linking an account whose email was never proved takes it over from whoever
//! registered the address (`Auth::evict_squatter`).

use boardroom_actors::audit::AuditAction;
use boardroom_actors::org::{MemberChange, OrgError};
use boardroom_actors::webhook::Affected;
use boardroom_protocol::cluster::Invalidation;
use boardroom_protocol::ErrorCode;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use super::{GoogleCallback, GoogleIdentity, GoogleSignIn, STATE_TTL_MINUTES};
use crate::auth::{Auth, RequestMeta, SessionTokens};
use crate::error::ApiError;
use crate::storage::{NewOAuthState, NewUser, StorageError, UserRow};

/// Why a claimed account's webhooks were disabled (`disabled_reason`, audit `metadata.reason`).
const CLAIMED: &str = "creator_account_claimed";

/// The key a pending sign-in is stored under: SHA-256 of its `state`.
pub fn state_key(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// A provider `error` parameter, cut to something safe to repeat and record.
fn provider_error_code(error: &str) -> String {
    error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// How the account of a Google sign-in was found.
enum Account {
    /// Already linked to the Google subject.
    Linked(UserRow),
    /// Found by its email; Google was linked to it now.
    NewlyLinked(UserRow),
    /// Created now.
    Created(UserRow),
}

impl Auth {
    /// Begins a Google sign-in: stores the pending state and returns the URL to send the
    /// browser to.
    /// Returns the provider URL and the state, which the edge also binds to the browser in a
    /// cookie so that a callback URL forwarded to someone else cannot sign them in.
    pub async fn google_start(&self, google: &GoogleSignIn) -> Result<(Url, String), ApiError> {
        let start = google.authorization();
        self.store
            .put_oauth_state(NewOAuthState {
                state_hash: &state_key(&start.state),
                pkce_verifier: &start.pkce_verifier,
                nonce: &start.nonce,
                expires_at: crate::storage::now() + chrono::Duration::minutes(STATE_TTL_MINUTES),
            })
            .await?;
        Ok((start.url, start.state))
    }

    /// Finishes a Google sign-in: the pending state is taken (it works once), the provider's
    /// answer is verified, and the account is found, linked or created before its session
    /// starts. A callback without a known state is not audited (anyone can send one); every
    /// failure after that is, with a reason.
    ///
    /// `browser_state` is the state cookie set at the start; it must match the `state`
    /// parameter, which stops login CSRF (a victim sent someone else's callback URL).
    pub async fn google_callback(
        &self,
        google: &GoogleSignIn,
        callback: &GoogleCallback,
        browser_state: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let state = callback.state.as_deref().filter(|s| !s.is_empty());
        let pending = match state {
            Some(state) => self.store.take_oauth_state(&state_key(state)).await?,
            None => None,
        };
        if let Some(error) = &callback.error {
            let error = provider_error_code(error);
            if pending.is_some() {
                self.google_failed(meta, "provider_error", Some(&error));
            }
            return Err(ApiError::bad_request(format!("Google sign-in failed: {error}")));
        }
        if state.is_none() {
            return Err(ApiError::bad_request("the state parameter is required"));
        }
        let bound = match (state, browser_state) {
            (Some(state), Some(cookie)) => {
                crate::auth::tokens::secrets_equal(state.as_bytes(), cookie.as_bytes())
            }
            _ => false,
        };
        if pending.is_some() && !bound {
            self.google_failed(meta, "state_not_bound_to_browser", None);
            return Err(ApiError::bad_request(
                "this sign-in was started in another browser; start the sign-in again",
            ));
        }
        let Some(pending) = pending else {
            return Err(ApiError::bad_request(
                "unknown, expired or already used sign-in state; start the sign-in again",
            ));
        };
        let Some(code) = callback.code.as_deref().filter(|c| !c.is_empty()) else {
            self.google_failed(meta, "no_code", None);
            return Err(ApiError::bad_request("the code parameter is required"));
        };
        let identity = match google.identify(code, &pending.pkce_verifier, &pending.nonce).await {
            Ok(identity) => identity,
            Err(err) => {
                self.google_failed(meta, err.reason, None);
                return Err(err.into());
            }
        };
        let account = match self.google_account(&identity, meta).await {
            Ok(account) => account,
            Err(err) => {
                if err.code() == ErrorCode::Conflict {
                    self.google_failed(meta, "account_conflict", None);
                }
                return Err(err);
            }
        };
        let (user, action, metadata) = match account {
            Account::Created(user) => {
                (user, AuditAction::Signup, serde_json::json!({ "method": "google" }))
            }
            Account::NewlyLinked(user) => (
                user,
                AuditAction::LoginSucceeded,
                serde_json::json!({ "method": "google", "linked": true }),
            ),
            Account::Linked(user) => {
                (user, AuditAction::LoginSucceeded, serde_json::json!({ "method": "google" }))
            }
        };
        self.audit(action, meta, |e| {
            e.actor_id = Some(user.id);
            e.target = Some(user.id.to_string());
            e.metadata = metadata;
        });
        let tokens = self.start_session(&user, "google", meta).await?;
        Ok((user, tokens))
    }

    /// Ends what someone who registered this address before its owner set up: their membership
    /// of every organization (through its org actor, so the last-admin rule holds and the
    /// webhook actor re-judges what they created) and, at once, the webhooks they created.
    /// An organization where they are the only admin keeps them as its admin (the account is
    /// the owner's now; nobody else is there), but its webhooks are disabled all the same.
    /// Failures are logged and the rest goes on: the sign-in itself is the owner's.
    async fn evict_squatter(&self, user: Uuid, meta: &RequestMeta) {
        let orgs = match self.store.orgs_of_user(user).await {
            Ok(orgs) => orgs,
            Err(err) => {
                tracing::error!(error = %err, %user, "listing a claimed account's organizations failed");
                return;
            }
        };
        for (org, role) in orgs {
            // Webhooks first, so each is disabled for this reason, not later for the departure.
            let tenant = self.store.tenant(org.id);
            let grants = match tenant.webhook_grants(Affected::User { org: org.id, user }).await {
                Ok(grants) => grants,
                Err(err) => {
                    tracing::error!(error = %err, org = %org.id, "listing a claimed account's webhooks failed");
                    Vec::new()
                }
            };
            for grant in grants {
                match tenant.disable_webhook_for_access(grant.id, CLAIMED).await {
                    Ok(true) => self.audit(AuditAction::WebhookDisabled, meta, |e| {
                        e.organization_id = Some(org.id);
                        e.target = Some(grant.id.to_string());
                        e.metadata = serde_json::json!({
                            "board_id": grant.board_id,
                            "reason": CLAIMED,
                            "creator_id": user,
                        });
                    }),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::error!(error = %err, webhook = %grant.id, "disabling a claimed account's webhook failed");
                    }
                }
            }
            match self.orgs.change(org.id, user, MemberChange::Remove).await {
                Ok(_) => {
                    self.announce(Invalidation::OrgMember {
                        organization_id: org.id,
                        user_id: user,
                    });
                    self.audit(AuditAction::MemberRemoved, meta, |e| {
                        e.organization_id = Some(org.id);
                        e.target = Some(user.to_string());
                        e.metadata = serde_json::json!({
                            "role": role.as_str(),
                            "reason": "email_claimed_by_google",
                        });
                    });
                }
                Err(OrgError::LastAdmin) => {
                    tracing::warn!(org = %org.id, %user, "a claimed account stays the only admin of its organization");
                }
                Err(err) => {
                    tracing::error!(error = %err, org = %org.id, %user, "removing a claimed account from an organization failed");
                }
            }
        }
    }

    /// Records a failed Google sign-in with its reason (and the provider's error code, if any).
    fn google_failed(&self, meta: &RequestMeta, reason: &str, provider_error: Option<&str>) {
        self.audit(AuditAction::LoginFailed, meta, |e| {
            e.metadata = serde_json::json!({ "method": "google", "reason": reason });
            if let Some(code) = provider_error {
                e.metadata["provider_error"] = serde_json::json!(code);
            }
        });
    }

    /// The account for `identity`: linked by subject, else found by email and linked, else new.
    /// A race with a concurrent sign-in or registration is settled by looking again once.
    async fn google_account(
        &self,
        identity: &GoogleIdentity,
        meta: &RequestMeta,
    ) -> Result<Account, ApiError> {
        let conflict = || {
            ApiError::conflict("the account with this email is linked to another Google account")
        };
        for _ in 0..2 {
            if let Some(user) = self.store.user_by_google_sub(&identity.sub).await? {
                return Ok(Account::Linked(user));
            }
            if let Some(user) = self.store.user_by_email(&identity.email).await? {
                if user.google_sub.is_some() {
                    return Err(conflict());
                }
                // Google vouches for the email, so the account is taken to be this person's.
                // An unverified account's password, sessions and API keys end (see `link_google`).
                match self.store.link_google(user.id, &identity.sub).await {
                    Ok(Some(revoked_keys)) => {
                        self.announce(Invalidation::UserSessions { user_id: user.id });
                        for key_id in revoked_keys {
                            self.announce(Invalidation::ApiKey { key_id, user_id: user.id });
                        }
                        self.evict_squatter(user.id, meta).await;
                    }
                    Ok(None) => {}
                    Err(StorageError::Unique(_)) => continue,
                    Err(err) => return Err(err.into()),
                }
                let user = self
                    .store
                    .user_by_id(user.id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("user"))?;
                return Ok(Account::NewlyLinked(user));
            }
            let name = display_name(identity);
            let created = self
                .store
                .create_user(NewUser {
                    email: &identity.email,
                    name: &name,
                    password_hash: None,
                    email_verified: true,
                    google_sub: Some(&identity.sub),
                })
                .await;
            match created {
                Ok(user) => return Ok(Account::Created(user)),
                Err(StorageError::Unique(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(conflict())
    }
}

/// The provider's name for the person (cut to 100 characters), else the local part of the
/// email, else "user": whichever first passes the rule for names.
fn display_name(identity: &GoogleIdentity) -> String {
    let usable = |name: &str| {
        let cut: String = name.trim().chars().take(crate::validate::MAX_NAME_CHARS).collect();
        crate::validate::name("name", &cut).ok()
    };
    let local = identity.email.split('@').next().unwrap_or_default();
    identity
        .name
        .as_deref()
        .and_then(usable)
        .or_else(|| usable(local))
        .unwrap_or_else(|| "user".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_errors_are_cut_to_a_safe_word() {
        assert_eq!(provider_error_code("access_denied"), "access_denied");
        assert_eq!(provider_error_code("<script>x</script>"), "scriptxscript");
        assert_eq!(provider_error_code(&"a".repeat(500)).len(), 64);
    }

    #[test]
    fn display_name_falls_back_to_the_email() {
        let identity = |name: Option<&str>| GoogleIdentity {
            sub: "1".into(),
            email: "ada@example.com".into(),
            name: name.map(str::to_owned),
        };
        assert_eq!(display_name(&identity(Some("  Ada Lovelace "))), "Ada Lovelace");
        assert_eq!(display_name(&identity(Some("   "))), "ada");
        assert_eq!(display_name(&identity(None)), "ada");
        assert_eq!(display_name(&identity(Some(&"x".repeat(300)))).chars().count(), 100);
        assert_eq!(display_name(&identity(Some("Ada\u{202e}ecalovol"))), "ada");
        assert_eq!(display_name(&identity(Some("Ada\0"))), "ada");
    }
}
