//! The authenticated caller of a request: who ([`Principal`]), from where ([`RequestMeta`]),
//! and what credential a request presents (the `Authorization` header or the browser cookies,
//! with the CSRF header cookie writes need). The middleware that resolves it on every request
//! lives at the HTTP edge (`crate::http::authenticate`).

use axum::http::HeaderMap;
use boardroom_protocol::{ErrorCode, Scope};
use uuid::Uuid;

use super::api_keys::KeyGrant;
use super::request_meta::RequestMeta;
use crate::error::ApiError;

/// Cookie holding the access token for browsers.
pub const ACCESS_COOKIE: &str = "br_access";
/// Cookie holding the refresh token for browsers (sent to the auth routes only).
pub const REFRESH_COOKIE: &str = "br_refresh";
/// Cookie holding the CSRF token, readable by the page's script.
pub const CSRF_COOKIE: &str = "br_csrf";
/// Header a cookie-authenticated write must echo the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person with a session (access JWT or cookie).
    User {
        /// The user.
        user_id: Uuid,
        /// Their session.
        session_id: Uuid,
        /// Platform superadmin.
        superadmin: bool,
    },
    /// An API key, acting as its user inside its organization.
    ApiKey(KeyGrant),
}

/// The authenticated caller, with where the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub meta: RequestMeta,
}

impl Caller {
    /// The session or API key the request was made with.
    pub fn credential_id(&self) -> Uuid {
        match &self.principal {
            Principal::User { session_id, .. } => *session_id,
            Principal::ApiKey(grant) => grant.key_id,
        }
    }

    /// The user acting (the key's user for API keys).
    pub fn user_id(&self) -> Uuid {
        match &self.principal {
            Principal::User { user_id, .. } => *user_id,
            Principal::ApiKey(grant) => grant.user_id,
        }
    }

    /// The caller's session; API keys are refused, since a key may never manage sessions, keys
    /// or membership.
    pub fn require_session(&self) -> Result<(Uuid, Uuid), ApiError> {
        match &self.principal {
            Principal::User { user_id, session_id, .. } => Ok((*user_id, *session_id)),
            Principal::ApiKey(_) => Err(ApiError::new(
                ErrorCode::InsufficientScope,
                "API keys cannot manage sessions, API keys, membership, billing or the audit log",
            )),
        }
    }

    /// Requires `scope` of an API key; people with sessions are bounded by their roles alone.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.principal {
            Principal::User { .. } => Ok(()),
            Principal::ApiKey(grant) if grant.scopes.contains(&scope) => Ok(()),
            Principal::ApiKey(_) => Err(ApiError::new(
                ErrorCode::InsufficientScope,
                format!("this API key lacks the {scope} scope"),
            )),
        }
    }
}

/// The credential a request presents, and where it came from.
pub enum Credential {
    /// `Authorization: Bearer …` (empty when the header is not a bearer token, so a bad
    /// header is refused rather than passed over for a cookie).
    Header(String),
    /// The access cookie.
    Cookie(String),
}

impl Credential {
    /// The token, wherever it came from.
    pub fn token(&self) -> &str {
        match self {
            Credential::Header(token) | Credential::Cookie(token) => token,
        }
    }
}

/// The credential the [`authenticate`] middleware authenticates: the `Authorization` header if
/// sent, else the access cookie.
pub fn credential(headers: &HeaderMap) -> Option<Credential> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or_default()
            .trim();
        return Some(Credential::Header(token.to_owned()));
    }
    cookie(headers, ACCESS_COOKIE).map(Credential::Cookie)
}

/// Whether the request comes from a cookie client (a browser): it authenticates with the access
/// cookie, or it carries the `Sec-Fetch-Mode` or `Sec-Fetch-Site` header, which every current
/// browser sends and no page script can set or remove. A cookie client gets its refresh token
/// only in the HttpOnly `br_refresh` cookie, never where a script could read it.
pub fn is_cookie_client(headers: &HeaderMap) -> bool {
    matches!(credential(headers), Some(Credential::Cookie(_)))
        || headers.contains_key("sec-fetch-mode")
        || headers.contains_key("sec-fetch-site")
}

/// The value of cookie `name`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
