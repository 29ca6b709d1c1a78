//! Authentication and org-level authorization.
//!
//! [`Auth`] owns everything that turns credentials into a [`Caller`]: password hashing on a
//! bounded pool, JWT access tokens and rotating refresh tokens, the session cache, API-key
//! verification with its cache and per-key limits, and the shared login and registration
//! limits (which attempts count, and the account ceiling's way around for the owner's own
//! networks). It also answers "may this caller act in this organization?" ([`Auth::org_access`]),
//! including the audited superadmin bypass. Security events go to the audit actor.
//!
//! ## Layout
//! - [`password`]: policy and the bounded bcrypt pool.
//! - [`tokens`]: access JWTs, refresh tokens, CSRF tokens.
//! - [`session_cache`]: live sessions without a database read per request.
//! - [`api_keys`]: key format, verification cache, per-key limits, the per-IP failure counter.
//! - [`changes`]: changes to credentials and access, on their way to every node's caches and
//!   sockets.
//! - [`limits`]: exact attempt limits shared through the database ([`limits::Limiter`]).
//! - [`request_meta`]: client IP (trusted proxies only), its limit network, and User-Agent.
//! - [`caller`]: the middleware that authenticates each request and the `Caller` extractor.
//! - [`email`]: verification links, the move to a new address, password reset (mail through
//!   the outbox).
//! - [`google`]: Google sign-in (OpenID Connect with PKCE): the client, ID-token checks, accounts.

pub mod api_keys;
pub mod caller;
pub mod changes;
pub mod email;
pub mod google;
pub mod limits;
pub mod password;
pub mod request_meta;
pub mod session_cache;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use boardroom_actors::audit::{AuditAction, AuditEvent, AuditLog};
use boardroom_actors::org::Orgs;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::cluster::Invalidation;
use boardroom_protocol::{ErrorCode, Scope};
use rand::RngCore;
use uuid::Uuid;

pub use caller::{Caller, Principal};
pub use request_meta::RequestMeta;

use self::api_keys::{CachedGrant, KeyCache, KeyGrant, Lookup};
use self::changes::Changes;
use self::limits::{Limit, Limiter, Refused, Taken};
use self::password::PasswordHasher;
use self::session_cache::{SessionCache, SessionState};
use self::tokens::{TokenError, TokenKeys};
use crate::config::Settings;
use crate::error::ApiError;
use crate::storage::{ApiKeyRow, NewSession, NewUser, SessionRow, StorageError, Store, UserRow};
use crate::validate;

/// The tokens of a new or refreshed session.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The session.
    pub session_id: Uuid,
    /// A 15-minute access JWT.
    pub access_token: String,
    /// The one refresh token currently valid for the session.
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i64,
    /// CSRF token for cookie-authenticated writes.
    pub csrf_token: String,
}

/// What a caller may do in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgAccess {
    /// The organization.
    pub org_id: Uuid,
    /// The effective role.
    pub role: OrgRole,
    /// Granted only through the superadmin bypass.
    pub bypass: bool,
}

/// Authentication state and rules. One per server.
pub struct Auth {
    store: Store,
    audit: AuditLog,
    orgs: Arc<Orgs>,
    tokens: TokenKeys,
    hasher: PasswordHasher,
    sessions: SessionCache,
    keys: KeyCache,
    changes: Changes,
    limiter: Limiter,
    login_limit: Limit,
    login_ip_limit: Limit,
    login_account_limit: Limit,
    register_limit: Limit,
    password_change_limit: Limit,
    reset_limit: Limit,
    reset_ip_limit: Limit,
    session_max_age: chrono::Duration,
    mail: crate::mail::Mail,
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
const AN_HOUR: Duration = Duration::from_secs(60 * 60);

/// Mark name of "this account signed in from this network" (subject: email, newline, network).
const KNOWN_NETWORK: &str = "login-network";
/// How long a network an account signed in from stays known to it.
const KNOWN_NETWORK_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How recent a Google sign-in must be to confirm an irreversible change of an account that has
/// no password (an account deletion): the session must have been opened this recently.
pub const FRESH_GOOGLE_SIGN_IN: chrono::Duration = chrono::Duration::minutes(10);

impl Auth {
    /// Builds the service.
    pub fn new(
        store: Store,
        audit: AuditLog,
        orgs: Arc<Orgs>,
        secret: &[u8],
        settings: &Settings,
        mail: crate::mail::Mail,
    ) -> Self {
        Auth {
            limiter: Limiter::new(store.clone()),
            store,
            audit,
            orgs,
            tokens: TokenKeys::new(secret),
            hasher: PasswordHasher::new(settings.bcrypt_cost, settings.bcrypt_threads as usize),
            sessions: SessionCache::default(),
            keys: KeyCache::new(Duration::from_secs(settings.key_cache_ttl_secs)),
            changes: Changes::default(),
            login_limit: Limit {
                name: "login",
                max: settings.login_limit,
                window: FIFTEEN_MINUTES,
            },
            login_ip_limit: Limit {
                name: "login-ip",
                max: settings.login_ip_limit,
                window: FIFTEEN_MINUTES,
            },
            login_account_limit: Limit {
                name: "login-account",
                max: settings.login_account_limit,
                window: AN_HOUR,
            },
            register_limit: Limit {
                name: "register",
                max: settings.register_limit,
                window: Duration::from_secs(60),
            },
            // Wrong current passwords guess at the password like wrong logins do.
            password_change_limit: Limit {
                name: "password-change",
                max: settings.login_limit,
                window: FIFTEEN_MINUTES,
            },
            reset_limit: Limit {
                name: "password-reset",
                max: settings.password_reset_limit,
                window: AN_HOUR,
            },
            reset_ip_limit: Limit {
                name: "password-reset-ip",
                max: settings.password_reset_ip_limit,
                window: AN_HOUR,
            },
            session_max_age: chrono::Duration::days(i64::from(settings.session_max_days)),
            mail,
        }
    }

    /// Token keys (for CSRF checks).
    pub fn tokens(&self) -> &TokenKeys {
        &self.tokens
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The mail outbox (links and wake-ups).
    pub fn mail(&self) -> &crate::mail::Mail {
        &self.mail
    }

    /// The API-key cache.
    pub fn key_cache(&self) -> &KeyCache {
        &self.keys
    }

    /// Changes to credentials and access, on their way to every node.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// A credential or someone's access changed here (`change`): this node's caches drop what it
    /// makes stale at once, and every node (this one's sockets included) is told.
    pub fn announce(&self, change: Invalidation) {
        self.forget(&change);
        self.changes.tell(change);
    }

    /// Drops what `change` makes stale from this node's caches: the next use reads the database.
    /// Run for changes made here ([`Self::announce`]) and heard from other nodes.
    pub fn forget(&self, change: &Invalidation) {
        match *change {
            Invalidation::Session { session_id, .. } => self.sessions.revoke(session_id),
            Invalidation::UserSessions { user_id } | Invalidation::Superadmin { user_id } => {
                self.sessions.forget_user(user_id);
            }
            Invalidation::ApiKey { key_id, .. } => self.keys.invalidate(key_id),
            Invalidation::OrgMember { organization_id, user_id } => {
                self.keys.invalidate_user(organization_id, user_id);
            }
        }
    }

    /// The attempt limiter (shared through the database).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Records a security event; never waits.
    pub fn audit(
        &self,
        action: AuditAction,
        meta: &RequestMeta,
        fill: impl FnOnce(&mut AuditEvent),
    ) {
        let mut event = AuditEvent::new(action);
        event.ip = Some(meta.ip.to_string());
        event.user_agent = meta.user_agent.clone();
        fill(&mut event);
        self.audit.record(event);
    }

    /// Drops stale cache entries; run periodically.
    pub async fn maintain(&self) {
        self.sessions.prune();
        self.keys.prune();
        if let Err(err) = self.limiter.prune().await {
            tracing::warn!(error = %err, "pruning rate-limit logs failed");
        }
    }

    /// Counts one attempt against `limit` for `subject`, whatever becomes of it; `429` with an
    /// exact `Retry-After` when the limit has no room.
    async fn limit(&self, limit: Limit, subject: &str) -> Result<(), ApiError> {
        match self.limiter.take(&[(limit, subject)]).await? {
            Ok(taken) => {
                taken.keep();
                Ok(())
            }
            Err(refused) => Err(refused.into()),
        }
    }

    /// Gives an attempt's slots back. Failing leaves them counted, the safe side, so it is
    /// logged rather than answered.
    async fn give_back(&self, taken: Taken) {
        if let Err(err) = self.limiter.give_back(taken).await {
            tracing::warn!(error = %err, "giving back rate-limit slots failed");
        }
    }

    /// Counts a sign-in started with an identity provider against the client network's login
    /// ceiling: each start writes a pending row, so an unthrottled flood would fill the table.
    pub async fn limit_sign_in_start(&self, meta: &RequestMeta) -> Result<(), ApiError> {
        let limit = Limit { name: "sign-in-start", ..self.login_ip_limit };
        self.limit(limit, &meta.limit_net().to_string()).await
    }

    /// Takes the slots of one login attempt: per client network, per (email, network), and the
    /// account's ceiling across all networks. When the ceiling alone has no room, a network the
    /// account signed in from lately is let through under its own limits: so a flood of wrong
    /// passwords from elsewhere cannot lock the owner out at home.
    async fn take_login_slots(
        &self,
        email: &str,
        net: &str,
        email_net: &str,
    ) -> Result<Result<Taken, Refused>, ApiError> {
        let per_network = [(self.login_ip_limit, net), (self.login_limit, email_net)];
        let ceiling = (self.login_account_limit, email);
        let all = [per_network[0], per_network[1], ceiling];
        Ok(match self.limiter.take(&all).await? {
            Err(refused)
                if refused.only(all.len() - 1)
                    && self.limiter.is_marked(KNOWN_NETWORK, email_net).await? =>
            {
                self.limiter.take(&per_network).await?
            }
            taken => taken,
        })
    }

    /// Registers an account and signs it in.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let email = validate::email(email)?;
        let name = validate::name("name", name)?;
        validate::new_password("password", password)?;
        self.limit(self.register_limit, &meta.limit_net().to_string()).await?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        let user = self
            .store
            .create_user(NewUser {
                email: &email,
                name: &name,
                password_hash: Some(&hash),
                email_verified: false,
                google_sub: None,
            })
            .await
            .map_err(|err| match err {
                StorageError::Unique(_) => {
                    ApiError::conflict("an account with this email already exists")
                }
                other => other.into(),
            })?;
        self.audit(AuditAction::Signup, meta, |e| {
            e.actor_id = Some(user.id);
            e.target = Some(user.id.to_string());
            e.metadata = serde_json::json!({ "method": "password" });
        });
        // The account works at once; the address is proved when the link is used.
        if let Err(err) = self.send_verification(&user).await {
            tracing::warn!(error = ?err, user = %user.id, "queuing the verification link failed");
        }
        let tokens = self.start_session(&user, "password", meta).await?;
        Ok((user, tokens))
    }

    /// Checks a password and signs in. Unknown email and wrong password answer alike; a
    /// malformed email or password is refused before it counts as an attempt.
    ///
    /// Only wrong passwords count against the login limits: every attempt takes its slots before
    /// the check (so concurrent attempts cannot overrun a limit), and one whose password was
    /// right, or was never checked (busy, storage failure), gives them back.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let email = validate::email(email)?;
        validate::presented_password("password", password)?;
        let net = meta.limit_net().to_string();
        let email_net = format!("{email}\n{net}");
        let taken = match self.take_login_slots(&email, &net, &email_net).await? {
            Ok(taken) => taken,
            Err(refused) => {
                self.audit(AuditAction::LoginFailed, meta, |e| {
                    e.metadata = serde_json::json!({ "email": email, "reason": "rate_limited" });
                });
                return Err(refused.into());
            }
        };
        let checked = async {
            let user = self.store.user_by_email(&email).await?;
            let hash = user.as_ref().and_then(|u| u.password_hash.clone());
            let matched = self.hasher.verify(password.to_owned(), hash).await?;
            Ok::<_, ApiError>((user, matched))
        };
        let (user, matched) = match checked.await {
            Ok(checked) => checked,
            Err(err) => {
                self.give_back(taken).await;
                return Err(err);
            }
        };
        match user {
            Some(user) if matched => {
                self.give_back(taken).await;
                self.audit(AuditAction::LoginSucceeded, meta, |e| {
                    e.actor_id = Some(user.id);
                    e.target = Some(user.id.to_string());
                });
                let tokens = self.start_session(&user, "password", meta).await?;
                Ok((user, tokens))
            }
            user => {
                taken.keep();
                self.audit(AuditAction::LoginFailed, meta, |e| {
                    e.target = user.map(|u| u.id.to_string());
                    e.metadata =
                        serde_json::json!({ "email": email, "reason": "invalid_credentials" });
                });
                Err(ApiError::new(ErrorCode::InvalidCredentials, "invalid email or password"))
            }
        }
    }

    /// Opens a session for `user` (after a password or Google sign-in). The client's network
    /// becomes known to the account (see [`Self::take_login_slots`]).
    pub async fn start_session(
        &self,
        user: &UserRow,
        method: &str,
        meta: &RequestMeta,
    ) -> Result<SessionTokens, ApiError> {
        let known = format!("{}\n{}", user.email, meta.limit_net());
        if let Err(err) = self.limiter.mark(KNOWN_NETWORK, &known, KNOWN_NETWORK_TTL).await {
            // The session is what was asked for; the mark only eases a future lockout.
            tracing::warn!(error = %err, "remembering a sign-in network failed");
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let session = self
            .store
            .create_session(NewSession {
                id: crate::storage::new_id(),
                user_id: user.id,
                method,
                refresh_salt: &salt,
                ip: Some(&meta.ip.to_string()),
                user_agent: meta.user_agent.as_deref(),
                expires_at: self.session_expiry(crate::storage::now()),
            })
            .await?;
        self.sessions.put(
            session.id,
            SessionState {
                user_id: user.id,
                token_version: user.token_version,
                live: true,
                superadmin: user.is_superadmin,
            },
        );
        Ok(self.tokens_for(user, session.id, session.refresh_generation, &session.refresh_salt))
    }

    fn tokens_for(
        &self,
        user: &UserRow,
        session: Uuid,
        generation: i64,
        salt: &[u8],
    ) -> SessionTokens {
        let (access_token, expires_in) =
            self.tokens.issue_access(user.id, session, user.token_version);
        SessionTokens {
            session_id: session,
            access_token,
            refresh_token: self.tokens.refresh_token(session, generation, salt),
            expires_in,
            csrf_token: self.tokens.csrf_token(session),
        }
    }

    /// Exchanges a refresh token for a new pair. A rotated token used again revokes the session.
    pub async fn refresh(
        &self,
        token: &str,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let invalid = || ApiError::unauthenticated("invalid refresh token");
        let parsed = TokenKeys::parse_refresh(token).ok_or_else(invalid)?;
        let session = self.store.session(parsed.session).await?.ok_or_else(invalid)?;
        if !self.tokens.refresh_is_genuine(&parsed, &session.refresh_salt) {
            return Err(invalid());
        }
        if !self.session_is_live(&session, chrono::Utc::now()) {
            return Err(ApiError::new(ErrorCode::SessionRevoked, "session has ended"));
        }
        let expiry = self.session_expiry(session.created_at);
        let rotated = parsed.generation == session.refresh_generation
            && self.store.rotate_refresh(session.id, parsed.generation, expiry).await?;
        if !rotated {
            // A genuine but superseded token: it leaked or was replayed. End the session.
            self.store.revoke_session(session.user_id, session.id, "refresh_token_reuse").await?;
            self.announce(Invalidation::Session {
                session_id: session.id,
                user_id: session.user_id,
            });
            self.audit(AuditAction::SessionRevoked, meta, |e| {
                e.actor_id = Some(session.user_id);
                e.target = Some(session.id.to_string());
                e.metadata = serde_json::json!({ "reason": "refresh_token_reuse" });
            });
            return Err(ApiError::new(
                ErrorCode::SessionRevoked,
                "refresh token was already used; the session has been revoked",
            ));
        }
        let user = self.store.user_by_id(session.user_id).await?.ok_or_else(invalid)?;
        Ok((
            user.clone(),
            self.tokens_for(&user, session.id, parsed.generation + 1, &session.refresh_salt),
        ))
    }

    /// Whether `session` can still be used at `now`: not revoked, its refresh token not
    /// expired, and within its absolute lifetime (`BOARDROOM_SESSION_MAX_DAYS` from sign-in,
    /// checked here too so that lowering the setting ends older sessions).
    fn session_is_live(&self, session: &SessionRow, now: chrono::DateTime<chrono::Utc>) -> bool {
        session.is_live(now) && session.created_at + self.session_max_age > now
    }

    /// When a session created at `created_at` stops, if refreshed now: 30 days after its last
    /// refresh, but never past its absolute lifetime.
    fn session_expiry(
        &self,
        created_at: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        refresh_expiry().min(created_at + self.session_max_age)
    }

    /// Ends one session of `user`.
    pub async fn end_session(
        &self,
        user: Uuid,
        session: Uuid,
        action: AuditAction,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        let reason = if action == AuditAction::Logout { "logout" } else { "revoked" };
        if !self.store.revoke_session(user, session, reason).await? {
            return Err(ApiError::not_found("session"));
        }
        self.announce(Invalidation::Session { session_id: session, user_id: user });
        self.audit(action, meta, |e| {
            e.actor_id = Some(user);
            e.target = Some(session.to_string());
        });
        Ok(())
    }

    /// Changes the caller's password and answers fresh tokens for the calling session: every
    /// other session of the user ends, and every access token issued so far stops working.
    ///
    /// Wrong current passwords guess at the password: they count against the account's limit
    /// (as many as `BOARDROOM_LOGIN_LIMIT` in any 15 minutes) and are audited, like wrong logins.
    /// As at login, a slot is taken before the check and given back when the password was right.
    pub async fn change_password(
        &self,
        user: Uuid,
        session: Uuid,
        current: &str,
        new: &str,
        meta: &RequestMeta,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        validate::presented_password("current_password", current)?;
        validate::new_password("new_password", new)?;
        self.check_current_password(user, current, meta, AuditAction::PasswordChangeFailed).await?;
        let hash = self.hasher.hash(new.to_owned()).await?;
        let version = self.store.set_password(user, &hash).await?;
        let revoked =
            self.store.revoke_other_sessions(user, Some(session), "password_changed").await?;
        self.sessions.revoke_user(user, Some(session), version);
        // The other nodes read the sessions again: the one kept is live there too.
        self.changes.tell(Invalidation::UserSessions { user_id: user });
        self.audit(AuditAction::PasswordChanged, meta, |e| {
            e.actor_id = Some(user);
            e.target = Some(user.to_string());
            e.metadata = serde_json::json!({ "sessions_ended": revoked.len() });
        });
        self.renew_session(user, session).await
    }

    /// Checks `current` against `user`'s password before a change that needs it (password,
    /// address, deletion) and answers the account, under the per-account limit of wrong current
    /// passwords (`BOARDROOM_LOGIN_LIMIT` per 15 minutes): a wrong one is `401
    /// invalid_credentials` and audited as `refusal`, as is a refusal by the limit (429). As at
    /// login, a slot is taken before the check and given back when the password was right.
    async fn check_current_password(
        &self,
        user: Uuid,
        current: &str,
        meta: &RequestMeta,
        refusal: AuditAction,
    ) -> Result<UserRow, ApiError> {
        let failed = |reason: &'static str| {
            self.audit(refusal, meta, |e| {
                e.actor_id = Some(user);
                e.target = Some(user.to_string());
                e.metadata = serde_json::json!({ "reason": reason });
            });
        };
        let subject = user.to_string();
        let taken =
            match self.limiter.take(&[(self.password_change_limit, subject.as_str())]).await? {
                Ok(taken) => taken,
                Err(refused) => {
                    failed("rate_limited");
                    return Err(refused.into());
                }
            };
        let checked = async {
            let account =
                self.store.user_by_id(user).await?.ok_or_else(|| ApiError::not_found("user"))?;
            let matched =
                self.hasher.verify(current.to_owned(), account.password_hash.clone()).await?;
            Ok::<_, ApiError>((account, matched))
        };
        match checked.await {
            Ok((account, true)) => {
                self.give_back(taken).await;
                Ok(account)
            }
            Ok((_, false)) => {
                taken.keep();
                failed("invalid_credentials");
                Err(ApiError::new(ErrorCode::InvalidCredentials, "current password is wrong"))
            }
            Err(err) => {
                self.give_back(taken).await;
                Err(err)
            }
        }
    }

    /// Checks that the owner of `session` is asking, before an irreversible change: an account
    /// with a password gives it (checked as a password change checks the current one); an
    /// account that signs in only with Google asks from a session opened with Google within
    /// [`FRESH_GOOGLE_SIGN_IN`]. A refusal is audited as `refused`.
    pub async fn confirm_owner(
        &self,
        user: Uuid,
        session: Uuid,
        password: Option<&str>,
        meta: &RequestMeta,
        refused: AuditAction,
    ) -> Result<(), ApiError> {
        let account =
            self.store.user_by_id(user).await?.ok_or_else(|| ApiError::not_found("user"))?;
        if account.password_hash.is_some() {
            let password = password
                .ok_or_else(|| ApiError::validation("password: required to confirm it is you"))?;
            validate::presented_password("password", password)?;
            self.check_current_password(user, password, meta, refused).await?;
            return Ok(());
        }
        let fresh = self.store.session(session).await?.is_some_and(|row| {
            row.user_id == user
                && row.method == "google"
                && chrono::Utc::now() - row.created_at <= FRESH_GOOGLE_SIGN_IN
        });
        if password.is_none() && fresh {
            return Ok(());
        }
        self.audit(refused, meta, |e| {
            e.actor_id = Some(user);
            e.target = Some(user.to_string());
            let reason = match password {
                Some(_) => "account_has_no_password",
                None => "google_sign_in_not_fresh",
            };
            e.metadata = serde_json::json!({ "reason": reason });
        });
        Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "this account has no password: sign in with Google again and ask within 10 minutes",
        ))
    }

    /// Drops every cached session of `user` (after their account was erased), on every node.
    pub fn forget_user(&self, user: Uuid) {
        self.announce(Invalidation::UserSessions { user_id: user });
    }

    /// Forgets the attempts counted against an account being erased: wrong current passwords
    /// (by its id) and wrong logins (by its email). Those counted per email and network, and the
    /// networks it signed in from, are keyed by a hash of both and expire by themselves
    /// (15 minutes; 30 days).
    pub async fn forget_limits_of(
        &self,
        user: Uuid,
        email: &str,
    ) -> crate::storage::StorageResult<()> {
        let limiter = &self.limiter;
        limiter.forget(self.password_change_limit.name, &user.to_string()).await?;
        limiter.forget(self.login_account_limit.name, email).await?;
        Ok(())
    }

    /// New tokens for a live session of `user` (after a password change moved the user's token
    /// version): the refresh token rotates, so the one held before stops working.
    async fn renew_session(
        &self,
        user: Uuid,
        session: Uuid,
    ) -> Result<(UserRow, SessionTokens), ApiError> {
        let ended = || ApiError::new(ErrorCode::SessionRevoked, "session has ended");
        // A refresh of this session racing the change can move the generation first: read again.
        for _ in 0..3 {
            let row = self.store.session(session).await?.ok_or_else(ended)?;
            if row.user_id != user || !self.session_is_live(&row, chrono::Utc::now()) {
                return Err(ended());
            }
            let expiry = self.session_expiry(row.created_at);
            if self.store.rotate_refresh(session, row.refresh_generation, expiry).await? {
                let account = self.store.user_by_id(user).await?.ok_or_else(ended)?;
                let tokens = self.tokens_for(
                    &account,
                    session,
                    row.refresh_generation + 1,
                    &row.refresh_salt,
                );
                return Ok((account, tokens));
            }
        }
        let mut err = ApiError::new(ErrorCode::Unavailable, "the session is busy; retry shortly");
        err.set_retry_after(1);
        Err(err)
    }

    /// Resolves a bearer credential (access JWT or API key).
    pub async fn authenticate(
        &self,
        bearer: &str,
        meta: &RequestMeta,
    ) -> Result<Principal, ApiError> {
        if api_keys::looks_like_key(bearer) {
            return self.authenticate_key(bearer, meta).await.map(Principal::ApiKey);
        }
        let claims = self.tokens.verify_access(bearer).map_err(|err| match err {
            TokenError::Expired => ApiError::new(ErrorCode::TokenExpired, "access token expired"),
            TokenError::Invalid => ApiError::unauthenticated("invalid access token"),
        })?;
        let state = self.session_state(claims.sid).await?;
        let revoked = || ApiError::new(ErrorCode::SessionRevoked, "session has ended");
        let state = state.ok_or_else(revoked)?;
        if !state.live || state.user_id != claims.sub || state.token_version != claims.tv {
            return Err(revoked());
        }
        Ok(Principal::User {
            user_id: claims.sub,
            session_id: claims.sid,
            superadmin: state.superadmin,
        })
    }

    async fn session_state(&self, session: Uuid) -> Result<Option<SessionState>, ApiError> {
        if let Some(state) = self.sessions.get(session) {
            return Ok(Some(state));
        }
        // Read before the row: a change that lands from here on keeps this read out of the
        // cache (it still answers this request, which raced the change).
        let generation = self.sessions.generation();
        let Some(row) = self.store.session(session).await? else { return Ok(None) };
        let Some(user) = self.store.user_by_id(row.user_id).await? else { return Ok(None) };
        let state = SessionState {
            user_id: user.id,
            token_version: user.token_version,
            live: self.session_is_live(&row, chrono::Utc::now()),
            superadmin: user.is_superadmin,
        };
        let _cached = self.sessions.put_read_at(session, state, generation);
        Ok(Some(state))
    }

    async fn authenticate_key(&self, key: &str, meta: &RequestMeta) -> Result<KeyGrant, ApiError> {
        let now = chrono::Utc::now();
        let digest = self.tokens.digest(b"api-key", key.as_bytes());
        // A key already verified is no guess and costs nothing: only what would reach the
        // database and bcrypt is held back for an IP with too many failed keys.
        let known = match self.keys.get(&digest, now) {
            Lookup::Fresh(grant) => return Ok(grant),
            Lookup::Stale(_) => true,
            Lookup::Miss => false,
        };
        if !known {
            if let Some(retry) = self.keys.ip_is_blocked(meta.ip) {
                crate::metrics::rate_limited(crate::metrics::Limit::ApiKeyGuess);
                return Err(ApiError::rate_limited(retry));
            }
        }
        // One turn per key: when a busy key's grant goes stale, one request re-reads its row
        // and the others find it fresh, rather than each reading it.
        let turn = self.keys.verify_turn(digest);
        let verified = {
            let _turn = turn.lock().await;
            match self.keys.get(&digest, now) {
                Lookup::Fresh(grant) => Ok(grant),
                Lookup::Stale(cached) => self.recheck_key(digest, cached).await,
                Lookup::Miss => self.verify_key(key, digest, meta).await,
            }
        };
        drop(turn);
        self.keys.verify_done(&digest);
        verified
    }

    /// Looks the key up by its prefix and runs bcrypt on the rest; caches the grant, unless a
    /// revoke or re-scope landed meanwhile (then the row is read again: see [`Self::settle_key`]).
    async fn verify_key(
        &self,
        key: &str,
        digest: [u8; 32],
        meta: &RequestMeta,
    ) -> Result<KeyGrant, ApiError> {
        let invalid = || ApiError::unauthenticated("invalid API key");
        let now = chrono::Utc::now();
        let Some((prefix, secret)) = api_keys::split_key(key) else {
            self.keys.record_failure(meta.ip);
            return Err(invalid());
        };
        // Read before the row: a change that lands from here on makes this verification stale.
        let generation = self.keys.generation();
        let row = match self.store.api_key_by_prefix(prefix).await? {
            Some(row) if row.is_live(now) => row,
            _ => {
                self.keys.record_failure(meta.ip);
                return Err(key_refused());
            }
        };
        let matched = self.hasher.verify(secret.to_owned(), Some(row.secret_hash.clone())).await?;
        if !matched {
            self.keys.record_failure(meta.ip);
            return Err(invalid());
        }
        if let Some(pause) = self.keys.take_pause() {
            pause.stop_here().await;
        }
        let cached = CachedGrant::new(grant_of(&row), row.secret_hash);
        self.settle_key(digest, cached, generation).await
    }

    /// Re-checks a grant past the cache's TTL against its stored row, without bcrypt: the row
    /// must still be live and carry the hash the key matched. A change made on another node
    /// (revoke, re-scope, new limit) takes effect here.
    async fn recheck_key(
        &self,
        digest: [u8; 32],
        cached: CachedGrant,
    ) -> Result<KeyGrant, ApiError> {
        let generation = self.keys.generation();
        match self.reread_key(&cached).await? {
            Some(fresh) => self.settle_key(digest, fresh, generation).await,
            None => {
                self.keys.invalidate(cached.grant.key_id);
                Err(key_refused())
            }
        }
    }

    /// Caches and answers `cached`, read under `generation`. When a revoke, re-scope or
    /// departure landed after that read, the grant is neither cached nor used: the row is read
    /// again (the key's match against its hash stands, since a row's hash never changes) until a
    /// read is not overtaken.
    async fn settle_key(
        &self,
        digest: [u8; 32],
        mut cached: CachedGrant,
        mut generation: u64,
    ) -> Result<KeyGrant, ApiError> {
        for _ in 0..4 {
            let grant = cached.grant.clone();
            if self.keys.put(digest, cached.clone(), generation) {
                return Ok(grant);
            }
            generation = self.keys.generation();
            cached = self.reread_key(&cached).await?.ok_or_else(key_refused)?;
        }
        // Changes keep landing faster than the row can be read: ask the client to come back.
        let mut err = ApiError::new(ErrorCode::Unavailable, "the key is changing; retry shortly");
        err.set_retry_after(1);
        Err(err)
    }

    /// The key's row as stored now, if it is still live and carries the hash the key matched.
    async fn reread_key(&self, cached: &CachedGrant) -> Result<Option<CachedGrant>, ApiError> {
        let tenant = self.store.tenant(cached.grant.org_id);
        Ok(match tenant.api_key(cached.grant.key_id).await? {
            Some(row)
                if row.is_live(chrono::Utc::now())
                    && tokens::secrets_equal(
                        row.secret_hash.as_bytes(),
                        cached.secret_hash.as_bytes(),
                    ) =>
            {
                Some(CachedGrant::new(grant_of(&row), row.secret_hash))
            }
            _ => None,
        })
    }

    /// What `caller` may do in `org`, requiring at least `need`. Another organization's
    /// resources answer 404, never 403. A superadmin who is not an admin there passes through
    /// the bypass, which is audited.
    pub async fn org_access(
        &self,
        caller: &Caller,
        org: Uuid,
        need: OrgRole,
    ) -> Result<OrgAccess, ApiError> {
        self.org_access_as(caller, org, need, Use::Act).await
    }

    /// [`Self::org_access`] for a re-check of access granted earlier (a socket's periodic look
    /// at its subscriptions): the answer is the same, but a bypass is not a new action, so it is
    /// not audited again.
    pub async fn org_access_recheck(
        &self,
        caller: &Caller,
        org: Uuid,
        need: OrgRole,
    ) -> Result<OrgAccess, ApiError> {
        self.org_access_as(caller, org, need, Use::Recheck).await
    }

    async fn org_access_as(
        &self,
        caller: &Caller,
        org: Uuid,
        need: OrgRole,
        usage: Use,
    ) -> Result<OrgAccess, ApiError> {
        let not_found = || ApiError::not_found("organization");
        let tenant = self.store.tenant(org);
        match &caller.principal {
            Principal::ApiKey(grant) => {
                if grant.org_id != org {
                    return Err(not_found());
                }
                let role = self.orgs.role(org, grant.user_id).await?.ok_or_else(not_found)?;
                if role < need {
                    return Err(ApiError::forbidden("the key's user lacks the role for this"));
                }
                Ok(OrgAccess { org_id: org, role, bypass: false })
            }
            Principal::User { user_id, superadmin, .. } => {
                let role = self.orgs.role(org, *user_id).await?;
                match role {
                    Some(role) if role >= need => {
                        Ok(OrgAccess { org_id: org, role, bypass: false })
                    }
                    _ if *superadmin => {
                        if tenant.organization().await?.is_none() {
                            return Err(not_found());
                        }
                        if usage == Use::Act {
                            self.audit(AuditAction::SuperadminBypass, &caller.meta, |e| {
                                e.organization_id = Some(org);
                                e.actor_id = Some(*user_id);
                                e.bypass = true;
                                e.metadata = serde_json::json!({
                                    "method": caller.meta.method,
                                    "path": caller.meta.path,
                                    "member_role": role.map(OrgRole::as_str),
                                });
                            });
                        }
                        Ok(OrgAccess { org_id: org, role: OrgRole::Admin, bypass: true })
                    }
                    Some(_) => Err(ApiError::forbidden("this needs the organization's admin role")),
                    None => Err(not_found()),
                }
            }
        }
    }
}

/// The organization registry (membership changes go through it).
impl Auth {
    /// The org actors.
    pub fn orgs(&self) -> &Orgs {
        &self.orgs
    }
}

/// Why organization access is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// To act: a superadmin bypass is audited.
    Act,
    /// To confirm access granted (and audited) earlier.
    Recheck,
}

/// What a stored key grants.
fn grant_of(row: &ApiKeyRow) -> KeyGrant {
    KeyGrant {
        key_id: row.id,
        org_id: row.organization_id,
        user_id: row.user_id,
        scopes: row.scopes.0.iter().filter_map(|s| Scope::parse(s)).collect(),
        rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).unwrap_or(1),
        expires_at: row.expires_at,
    }
}

fn key_refused() -> ApiError {
    ApiError::unauthenticated("invalid, revoked or expired API key")
}

fn refresh_expiry() -> chrono::DateTime<chrono::Utc> {
    crate::storage::now() + chrono::Duration::days(tokens::REFRESH_TTL_DAYS)
}
