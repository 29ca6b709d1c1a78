//! Identity on the wire: a user's public fields, the answer every sign-in gives, the caller's
//! sessions and `GET /me`, from the rows and credentials the server holds.

use boardroom_protocol::identity as wire;
use uuid::Uuid;

use crate::auth::{Principal, SessionTokens};
use crate::storage::{SessionRow, UserRow};

/// A user's public fields (never the password hash or the Google subject).
pub fn user(user: &UserRow) -> wire::User {
    wire::User {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        email_verified: user.email_verified,
        created_at: user.created_at,
    }
}

/// The answer that opens or refreshes a session. A cookie client (a browser) gets no refresh
/// token here: only in its HttpOnly cookie, out of the page's reach.
pub fn session_answer(
    account: &UserRow,
    tokens: &SessionTokens,
    cookie_client: bool,
) -> wire::SessionAnswer {
    wire::SessionAnswer {
        user: user(account),
        access_token: tokens.access_token.clone(),
        refresh_token: (!cookie_client).then(|| tokens.refresh_token.clone()),
        token_type: wire::TokenType::Bearer,
        expires_in: tokens.expires_in,
        session_id: tokens.session_id,
        csrf_token: tokens.csrf_token.clone(),
    }
}

/// The caller's live sessions; `current` marks the one asking.
pub fn sessions(sessions: &[SessionRow], current: Uuid) -> wire::SessionList {
    wire::SessionList {
        sessions: sessions
            .iter()
            .map(|s| wire::Session {
                id: s.id,
                method: s.method.clone(),
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                current: s.id == current,
            })
            .collect(),
    }
}

/// `GET /me`: the user, and the session or the API key the request was made with.
pub fn me(account: &UserRow, principal: &Principal) -> wire::Me {
    let user = user(account);
    match principal {
        Principal::User { session_id, superadmin, .. } => wire::Me {
            user,
            session_id: Some(*session_id),
            superadmin: Some(*superadmin),
            api_key: None,
            deletion_scheduled_for: account.deletion_scheduled_for,
        },
        Principal::ApiKey(grant) => wire::Me {
            user,
            session_id: None,
            superadmin: None,
            api_key: Some(wire::KeyIdentity {
                id: grant.key_id,
                organization_id: grant.org_id,
                scopes: grant.scopes.clone(),
            }),
            deletion_scheduled_for: account.deletion_scheduled_for,
        },
    }
}
