//! The authenticated caller of a request.
//!
//! [`authenticate`] runs on every `/api/v1` request. It reads `Authorization: Bearer …` or, for
//! browsers, the `br_access` cookie; resolves it through [`Auth`](super::Auth); checks the CSRF
//! header on cookie-authenticated writes; charges API-key requests to their key's limit and adds
//! the `RateLimit-Policy` and `RateLimit` headers to the answer. The outcome is left in the
//! request's extensions; handlers that need a caller take the [`Caller`] extractor, so public
//! routes (login, register) ignore stale credentials instead of failing on them.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use boardroom_protocol::{ErrorCode, Scope};
use uuid::Uuid;

use super::api_keys::{KeyGrant, RateLimitState};
use super::request_meta::RequestMeta;
use super::tokens::secrets_equal;
use crate::error::ApiError;
use crate::http::AppState;

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
                "API keys cannot manage sessions, API keys, membership or the audit log",
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

/// What [`authenticate`] concluded, kept in the request's extensions.
#[derive(Clone)]
enum Outcome {
    Anonymous,
    Authenticated(Caller),
    Refused { code: ErrorCode, message: String, retry_after: Option<u64> },
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Outcome>() {
            Some(Outcome::Authenticated(caller)) => Ok(caller.clone()),
            Some(Outcome::Refused { code, message, retry_after }) => {
                let mut err = ApiError::new(*code, message.clone());
                if let Some(secs) = retry_after {
                    err.set_retry_after(*secs);
                }
                Err(err)
            }
            Some(Outcome::Anonymous) | None => {
                Err(ApiError::unauthenticated("authentication required"))
            }
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

/// Middleware: authenticate, check CSRF, charge API-key limits.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let meta = RequestMeta::from_parts(&parts, &state);
    parts.extensions.insert(meta.clone());
    let (outcome, limit) = resolve(&state, &parts, meta).await;
    if let (Outcome::Refused { code: ErrorCode::RateLimited, .. }, Some(limit)) = (&outcome, limit)
    {
        let mut response = ApiError::rate_limited(limit.reset_secs).into_response();
        rate_limit_headers(response.headers_mut(), &limit);
        return response;
    }
    parts.extensions.insert(outcome);
    request = Request::from_parts(parts, body);
    let mut response = next.run(request).await;
    if let Some(limit) = limit {
        rate_limit_headers(response.headers_mut(), &limit);
    }
    response
}

async fn resolve(
    state: &AppState,
    parts: &Parts,
    meta: RequestMeta,
) -> (Outcome, Option<RateLimitState>) {
    let Some(credential) = credential(&parts.headers) else { return (Outcome::Anonymous, None) };
    let (token, via_cookie) = match credential {
        Credential::Header(token) => (token, false),
        Credential::Cookie(token) => (token, true),
    };
    let principal = match state.auth().authenticate(&token, &meta).await {
        Ok(principal) => principal,
        Err(err) => return (refused(&err), None),
    };
    if via_cookie && !is_safe(&parts.method) {
        let Principal::User { session_id, .. } = &principal else {
            return (refused(&ApiError::unauthenticated("invalid access cookie")), None);
        };
        let expected = state.auth().tokens().csrf_token(*session_id);
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !secrets_equal(expected.as_bytes(), sent.as_bytes()) {
            let err = ApiError::new(
                ErrorCode::CsrfFailed,
                "cookie-authenticated writes need the x-csrf-token header",
            );
            return (refused(&err), None);
        }
    }
    let limit = match &principal {
        Principal::ApiKey(grant) => Some(state.auth().key_cache().charge(grant)),
        Principal::User { .. } => None,
    };
    if let Some(limit) = limit.filter(|l| !l.allowed) {
        let err = ApiError::rate_limited(limit.reset_secs);
        return (refused(&err), Some(limit));
    }
    (Outcome::Authenticated(Caller { principal, meta }), limit)
}

fn refused(err: &ApiError) -> Outcome {
    if err.code() == ErrorCode::Internal {
        tracing::error!(error = ?err, "authentication failed internally");
    }
    Outcome::Refused {
        code: err.code(),
        message: err.message().to_owned(),
        retry_after: err.retry_after(),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Adds the IETF `RateLimit-Policy` and `RateLimit` headers for a key's limit.
fn rate_limit_headers(headers: &mut HeaderMap, limit: &RateLimitState) {
    let policy = format!("\"per-key\";q={};w=60", limit.limit);
    let current = format!("\"per-key\";r={};t={}", limit.remaining, limit.reset_secs);
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", value);
    }
    if let Ok(value) = HeaderValue::from_str(&current) {
        headers.insert("ratelimit", value);
    }
}
