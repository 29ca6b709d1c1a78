//! Identity on the wire: registration, sign-in, refresh and password bodies, the session answer
//! every sign-in gives, sessions, `GET /me`, and the socket ticket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::scope::Scope;

/// A user's public fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Email, normalized (trimmed, lower-case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the email is known to be the user's: a verification or reset link was used,
    /// Google vouched for it, or an operator marked it.
    pub email_verified: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// `POST /auth/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Register {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub name: String,
}

/// `POST /auth/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Login {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /auth/refresh`. Browsers send no body and the `br_refresh` cookie instead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Refresh {
    /// The session's current refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /auth/password`; answered like a sign-in, with a [`SessionAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangePassword {
    /// The password now.
    pub current_password: String,
    /// The new one.
    pub new_password: String,
}

/// `POST /auth/verify-email`: the token from a verification link (also the one sent to a new
/// address after `PATCH /me`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyEmail {
    /// The link's `token`.
    pub token: String,
}

/// `POST /auth/password-reset`: always answered `202`, whether an account has the address or
/// not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    /// The account's email.
    pub email: String,
}

/// `POST /auth/password-reset/confirm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PasswordResetConfirm {
    /// The reset link's `token`.
    pub token: String,
    /// The new password (the same policy as at registration).
    pub new_password: String,
}

/// `PATCH /me`: move the account to a new address. The new address is proved first (a link is
/// sent to it); the old one is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeEmail {
    /// The new address.
    pub email: String,
    /// The password now.
    pub current_password: String,
}

/// The answer of `PATCH /me`: the account keeps its address until the link sent to the new one
/// is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingEmailChange {
    /// The address waiting to be confirmed.
    pub pending_email: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// The type of the access token: always `Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TokenType {
    /// `Authorization: Bearer <access_token>`.
    Bearer,
}

/// The answer of every sign-in (register, login, refresh, Google callback, password change).
/// Browsers also get the same tokens as cookies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionAnswer {
    /// Who signed in.
    pub user: User,
    /// A short-lived access JWT.
    pub access_token: String,
    /// The one refresh token valid for the session; each refresh replaces it. Absent for a
    /// cookie client (a browser), which gets it only in the HttpOnly `br_refresh` cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The session.
    pub session_id: Uuid,
    /// Echo it in `X-CSRF-Token` on cookie-authenticated writes.
    pub csrf_token: String,
}

/// One of the caller's live sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// Id.
    pub id: Uuid,
    /// How it was opened: `password` or `google`.
    pub method: String,
    /// The client address it was opened from.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// Last refreshed.
    pub last_used_at: DateTime<Utc>,
    /// Ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// Whether it is the session asking.
    pub current: bool,
}

/// `GET /auth/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// The caller's live sessions.
    pub sessions: Vec<Session>,
}

/// The API key a request was made with, in `GET /me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyIdentity {
    /// The key.
    pub id: Uuid,
    /// The one organization it acts in.
    pub organization_id: Uuid,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

/// `GET /me`: the user, and either the session (`session_id`, `superadmin`) or the API key
/// (`api_key`) the request was made with; the other fields are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: User,
    /// The session, when signed in with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
    /// Whether the user is a platform superadmin (sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superadmin: Option<bool>,
    /// The API key, when the request used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KeyIdentity>,
    /// When the account will be erased, if its owner asked for that (`POST /me/deletion`) and
    /// has not cancelled; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_scheduled_for: Option<DateTime<Utc>>,
}

/// `POST /me/deletion`: the owner proves it is them. An account with a password sends it; an
/// account that signs in only with Google sends none and asks from a session opened with Google
/// in the last 10 minutes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestDeletion {
    /// The account's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The answer of `POST /me/deletion` (202): when the account will be erased. Asking again while
/// one is pending answers the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeletionScheduled {
    /// When the account's personal data will be erased, unless cancelled before
    /// (`DELETE /me/deletion`).
    pub scheduled_for: DateTime<Utc>,
}

/// The query Google sends the browser back with to `GET /auth/google/callback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GoogleCallback {
    /// The authorization code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The `state` sent at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Set instead of `code` when the sign-in failed at the provider (e.g. `access_denied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /ws/ticket`: a one-use ticket for opening a socket from a browser
/// (`/api/v1/ws?ticket=…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WsTicket {
    /// The ticket.
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{assert_golden, at, id};

    pub(crate) fn user() -> User {
        User {
            id: id(6),
            email: "ada@example.com".into(),
            name: "Ada".into(),
            email_verified: false,
            created_at: at("2026-01-02T03:04:05.000006Z"),
        }
    }

    #[test]
    fn bodies_are_pinned() {
        let register = Register {
            email: "ada@example.com".into(),
            password: "correct horse".into(),
            name: "Ada".into(),
        };
        assert_golden(&register, REGISTER_JSON, REGISTER_MSGPACK);
        let login = Login { email: "ada@example.com".into(), password: "correct horse".into() };
        assert_golden(&login, LOGIN_JSON, LOGIN_MSGPACK);
        let refresh = Refresh { refresh_token: Some("r.t".into()) };
        assert_golden(&refresh, REFRESH_JSON, REFRESH_MSGPACK);
        let password =
            ChangePassword { current_password: "old one".into(), new_password: "new one".into() };
        assert_golden(&password, PASSWORD_JSON, PASSWORD_MSGPACK);
        let callback =
            GoogleCallback { code: Some("c".into()), state: Some("s".into()), error: None };
        assert_golden(&callback, GOOGLE_CALLBACK_JSON, GOOGLE_CALLBACK_MSGPACK);
    }

    #[test]
    fn session_answer_is_pinned() {
        let answer = SessionAnswer {
            user: user(),
            access_token: "a.b.c".into(),
            refresh_token: Some("r.t".into()),
            token_type: TokenType::Bearer,
            expires_in: 900,
            session_id: id(11),
            csrf_token: "x".into(),
        };
        assert_golden(&answer, SESSION_ANSWER_JSON, SESSION_ANSWER_MSGPACK);
    }

    #[test]
    fn sessions_are_pinned() {
        let list = SessionList {
            sessions: vec![Session {
                id: id(11),
                method: "password".into(),
                ip: Some("127.0.0.1".into()),
                user_agent: None,
                created_at: at("2026-01-02T03:04:05Z"),
                last_used_at: at("2026-01-02T03:04:05Z"),
                expires_at: at("2026-02-01T03:04:05Z"),
                current: true,
            }],
        };
        assert_golden(&list, SESSIONS_JSON, SESSIONS_MSGPACK);
    }

    #[test]
    fn me_is_pinned_for_sessions_and_keys() {
        let session = Me {
            user: user(),
            session_id: Some(id(11)),
            superadmin: Some(false),
            api_key: None,
            deletion_scheduled_for: None,
        };
        assert_golden(&session, ME_SESSION_JSON, ME_SESSION_MSGPACK);
        let key = Me {
            user: user(),
            session_id: None,
            superadmin: None,
            api_key: Some(KeyIdentity {
                id: id(12),
                organization_id: id(2),
                scopes: vec![Scope::BoardsRead, Scope::ItemsWrite],
            }),
            deletion_scheduled_for: None,
        };
        assert_golden(&key, ME_KEY_JSON, ME_KEY_MSGPACK);
    }

    #[test]
    fn ticket_is_pinned() {
        let ticket = WsTicket { ticket: "t".into(), expires_in: 30 };
        assert_golden(&ticket, TICKET_JSON, TICKET_MSGPACK);
    }

    const REGISTER_JSON: &str =
        r#"{"email":"ada@example.com","password":"correct horse","name":"Ada"}"#;
    const REGISTER_MSGPACK: &str = "83a5656d61696caf616461406578616d706c652e636f6da870617373776f7264ad636f727265637420686f727365a46e616d65a3416461";
    const LOGIN_JSON: &str = r#"{"email":"ada@example.com","password":"correct horse"}"#;
    const LOGIN_MSGPACK: &str = "82a5656d61696caf616461406578616d706c652e636f6da870617373776f7264ad636f727265637420686f727365";
    const REFRESH_JSON: &str = r#"{"refresh_token":"r.t"}"#;
    const REFRESH_MSGPACK: &str = "81ad726566726573685f746f6b656ea3722e74";
    const PASSWORD_JSON: &str = r#"{"current_password":"old one","new_password":"new one"}"#;
    const PASSWORD_MSGPACK: &str = "82b063757272656e745f70617373776f7264a76f6c64206f6e65ac6e65775f70617373776f7264a76e6577206f6e65";
    const GOOGLE_CALLBACK_JSON: &str = r#"{"code":"c","state":"s"}"#;
    const GOOGLE_CALLBACK_MSGPACK: &str = "82a4636f6465a163a57374617465a173";
    const SESSION_ANSWER_JSON: &str = r#"{"user":{"id":"00000000-0000-0000-0000-000000000006","email":"ada@example.com","name":"Ada","email_verified":false,"created_at":"2026-01-02T03:04:05.000006Z"},"access_token":"a.b.c","refresh_token":"r.t","token_type":"Bearer","expires_in":900,"session_id":"00000000-0000-0000-0000-00000000000b","csrf_token":"x"}"#;
    const SESSION_ANSWER_MSGPACK: &str = "87a47573657285a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a5656d61696caf616461406578616d706c652e636f6da46e616d65a3416461ae656d61696c5f7665726966696564c2aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aac6163636573735f746f6b656ea5612e622e63ad726566726573685f746f6b656ea3722e74aa746f6b656e5f74797065a6426561726572aa657870697265735f696ecd0384aa73657373696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303062aa637372665f746f6b656ea178";
    const SESSIONS_JSON: &str = r#"{"sessions":[{"id":"00000000-0000-0000-0000-00000000000b","method":"password","ip":"127.0.0.1","user_agent":null,"created_at":"2026-01-02T03:04:05Z","last_used_at":"2026-01-02T03:04:05Z","expires_at":"2026-02-01T03:04:05Z","current":true}]}"#;
    const SESSIONS_MSGPACK: &str = "81a873657373696f6e739188a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303062a66d6574686f64a870617373776f7264a26970a93132372e302e302e31aa757365725f6167656e74c0aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aac6c6173745f757365645f6174b4323032362d30312d30325430333a30343a30355aaa657870697265735f6174b4323032362d30322d30315430333a30343a30355aa763757272656e74c3";
    const ME_SESSION_JSON: &str = r#"{"user":{"id":"00000000-0000-0000-0000-000000000006","email":"ada@example.com","name":"Ada","email_verified":false,"created_at":"2026-01-02T03:04:05.000006Z"},"session_id":"00000000-0000-0000-0000-00000000000b","superadmin":false}"#;
    const ME_SESSION_MSGPACK: &str = "83a47573657285a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a5656d61696caf616461406578616d706c652e636f6da46e616d65a3416461ae656d61696c5f7665726966696564c2aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa73657373696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303062aa737570657261646d696ec2";
    const ME_KEY_JSON: &str = r#"{"user":{"id":"00000000-0000-0000-0000-000000000006","email":"ada@example.com","name":"Ada","email_verified":false,"created_at":"2026-01-02T03:04:05.000006Z"},"api_key":{"id":"00000000-0000-0000-0000-00000000000c","organization_id":"00000000-0000-0000-0000-000000000002","scopes":["boards:read","items:write"]}}"#;
    const ME_KEY_MSGPACK: &str = "82a47573657285a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a5656d61696caf616461406578616d706c652e636f6da46e616d65a3416461ae656d61696c5f7665726966696564c2aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aa76170695f6b657983a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303063af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a673636f70657392ab626f617264733a72656164ab6974656d733a7772697465";
    const TICKET_JSON: &str = r#"{"ticket":"t","expires_in":30}"#;
    const TICKET_MSGPACK: &str = "82a67469636b6574a174aa657870697265735f696e1e";
}
