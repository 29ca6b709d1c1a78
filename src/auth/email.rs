//! Proving an address and recovering an account, on [`Auth`]: verification links (sent at
//! registration and on request), the move to a new address (proved before it is made, the old
//! one told), and password reset.
//!
//! Tokens are 256 random bits, sent only in a link and stored only as their SHA-256
//! ([`crate::storage::NewEmailToken`]); each works once and expires (24 h to verify, 1 h to
//! reset). Every message goes through the outbox ([`crate::mail`]), so no answer waits for or
//! reveals anything about mail delivery. A reset request is answered alike whether an account
//! has the address or not, with the same work: a message is queued either way.

use base64::Engine;
use boardroom_actors::audit::AuditAction;
use boardroom_protocol::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::limits::Limit;
use crate::auth::{Auth, RequestMeta};
use crate::error::ApiError;
use crate::mail::templates;
use crate::storage::{NewEmailToken, NewMail, StorageError, TokenPurpose, UserRow};
use crate::validate;

/// How long a verification (or new-address) link works.
pub const VERIFY_TTL: chrono::Duration = chrono::Duration::hours(24);
/// How long a reset link works.
pub const RESET_TTL: chrono::Duration = chrono::Duration::hours(1);
/// Longest token accepted (ours are 43 characters); longer ones are refused unhashed.
const MAX_TOKEN_CHARS: usize = 128;

/// A new random token (256 bits, URL-safe base64) and its stored hash.
fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// What a token is stored as.
fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "this link is unknown, already used or expired; ask for a new one",
    )
}

/// The presented token's hash, or `invalid_token` for one that cannot be ours.
fn presented(token: &str) -> Result<[u8; 32], ApiError> {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(invalid_token());
    }
    Ok(token_hash(token))
}

/// A started move to a new address.
#[derive(Debug, Clone)]
pub struct PendingChange {
    /// The new address.
    pub email: String,
    /// When its link stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl Auth {
    /// The password-reset limits: per address, per client network.
    fn reset_limits(&self) -> (Limit, Limit) {
        (self.reset_limit, self.reset_ip_limit)
    }

    /// Queues a verification link for `user`'s current address. Registration goes on when this
    /// fails (the person can ask again), so the failure is logged, not answered.
    pub(super) async fn send_verification(&self, user: &UserRow) -> Result<(), ApiError> {
        let (token, hash) = new_token();
        let link = self.mail.link("/verify-email", Some(&token));
        self.store
            .issue_email_token(
                NewEmailToken {
                    hash: &hash,
                    user_id: user.id,
                    purpose: TokenPurpose::Verify,
                    email: &user.email,
                    expires_at: crate::storage::now() + VERIFY_TTL,
                },
                &[templates::verify_email(&user.email, &link)],
            )
            .await?;
        self.mail.wake();
        Ok(())
    }

    /// Sends the caller a new verification link: `409` when the address is verified already,
    /// `429` past the account's limit (`BOARDROOM_PASSWORD_RESET_LIMIT` an hour).
    pub async fn resend_verification(&self, user: Uuid) -> Result<(), ApiError> {
        let account =
            self.store.user_by_id(user).await?.ok_or_else(|| ApiError::not_found("user"))?;
        if account.email_verified {
            return Err(ApiError::conflict("the email address is verified already"));
        }
        let limit = Limit { name: "verify-resend", ..self.reset_limit };
        self.limit(limit, &user.to_string()).await?;
        self.send_verification(&account).await
    }

    /// Redeems a verification link (or the link sent to a new address): the address is the
    /// account's, verified. Audited `email.verified`, and `email.changed` for a new address.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> Result<(), ApiError> {
        let hash = presented(token)?;
        let verified = match self.store.redeem_verification(&hash).await {
            Ok(Some(verified)) => verified,
            Ok(None) | Err(StorageError::Rule(_)) => return Err(invalid_token()),
            Err(StorageError::Unique(_)) => {
                return Err(ApiError::conflict("another account has this email address now"))
            }
            Err(err) => return Err(err.into()),
        };
        self.audit(AuditAction::EmailVerified, meta, |e| {
            e.actor_id = Some(verified.user_id);
            e.target = Some(verified.user_id.to_string());
            e.metadata = serde_json::json!({ "via": "link" });
        });
        if let Some(previous) = &verified.previous_email {
            self.audit(AuditAction::EmailChanged, meta, |e| {
                e.actor_id = Some(verified.user_id);
                e.target = Some(verified.user_id.to_string());
                e.metadata = serde_json::json!({ "from": previous, "to": verified.email });
            });
        }
        Ok(())
    }

    /// Starts a password reset for `email`. Answered alike (`Ok`) whether an account has the
    /// address or not, with the same work: a reset link for an account, a short notice
    /// otherwise, queued either way. Limited per address and per client network (`429`).
    pub async fn request_password_reset(
        &self,
        email: &str,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        let email = validate::email(email)?;
        let (per_email, per_net) = self.reset_limits();
        let net = meta.limit_net().to_string();
        match self.limiter.take(&[(per_net, net.as_str()), (per_email, email.as_str())]).await? {
            Ok(taken) => taken.keep(),
            Err(refused) => return Err(refused.into()),
        }
        let (token, hash) = new_token();
        match self.store.user_by_email(&email).await? {
            Some(user) => {
                let link = self.mail.link("/reset-password", Some(&token));
                self.store
                    .issue_email_token(
                        NewEmailToken {
                            hash: &hash,
                            user_id: user.id,
                            purpose: TokenPurpose::Reset,
                            email: &user.email,
                            expires_at: crate::storage::now() + RESET_TTL,
                        },
                        &[templates::password_reset(&user.email, &link)],
                    )
                    .await?;
            }
            None => {
                self.store.enqueue_mail(&templates::password_reset_no_account(&email)).await?;
            }
        }
        self.mail.wake();
        Ok(())
    }

    /// Sets a new password with a reset link's token: every session and access token of the
    /// account ends, the address counts as verified, and it is audited `password.reset`. The
    /// password is checked against the policy before the token is spent.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        let hash = presented(token)?;
        validate::new_password("new_password", new_password)?;
        let (_, per_net) = self.reset_limits();
        let limit = Limit { name: "password-reset-confirm", ..per_net };
        self.limit(limit, &meta.limit_net().to_string()).await?;
        let password_hash = self.hasher.hash(new_password.to_owned()).await?;
        let done = match self.store.redeem_reset(&hash, &password_hash).await {
            Ok(Some(done)) => done,
            Ok(None) | Err(StorageError::Rule(_)) => return Err(invalid_token()),
            Err(err) => return Err(err.into()),
        };
        self.sessions.revoke_user(done.user_id, None, done.token_version);
        self.changes.tell(boardroom_protocol::cluster::Invalidation::UserSessions {
            user_id: done.user_id,
        });
        self.audit(AuditAction::PasswordReset, meta, |e| {
            e.actor_id = Some(done.user_id);
            e.target = Some(done.user_id.to_string());
            e.metadata = serde_json::json!({ "sessions_ended": done.sessions_ended });
        });
        Ok(())
    }

    /// Starts moving `user` to `new_email`: the current password is checked (like a password
    /// change, wrong ones count against the account's limit), a link is sent to the new address
    /// and a notice to the old one. The account keeps its address until the link is used.
    pub async fn change_email(
        &self,
        user: Uuid,
        current_password: &str,
        new_email: &str,
        meta: &RequestMeta,
    ) -> Result<PendingChange, ApiError> {
        validate::presented_password("current_password", current_password)?;
        let new_email = validate::email(new_email)?;
        let account = self
            .check_current_password(user, current_password, meta, AuditAction::PasswordChangeFailed)
            .await?;
        if account.email == new_email {
            return Err(ApiError::validation("email is the account's address already"));
        }
        if self.store.user_by_email(&new_email).await?.is_some() {
            return Err(ApiError::conflict("an account with this email already exists"));
        }
        let (token, hash) = new_token();
        let link = self.mail.link("/verify-email", Some(&token));
        let expires_at = crate::storage::now() + VERIFY_TTL;
        let mails: [NewMail; 2] = [
            templates::confirm_new_email(&new_email, &link),
            templates::email_change_notice(&account.email, &new_email),
        ];
        self.store
            .issue_email_token(
                NewEmailToken {
                    hash: &hash,
                    user_id: user,
                    purpose: TokenPurpose::Change,
                    email: &new_email,
                    expires_at,
                },
                &mails,
            )
            .await?;
        self.mail.wake();
        Ok(PendingChange { email: new_email, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_random_bits_and_are_stored_hashed() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_eq!(hash_a, token_hash(&a));
        assert_ne!(&hash_a[..], a.as_bytes());
        assert!(presented(&"x".repeat(MAX_TOKEN_CHARS + 1)).is_err());
        assert!(presented("").is_err());
    }
}
