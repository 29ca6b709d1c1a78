//! The middleware every `/api/v1` request passes: [`authenticate`] reads
//! `Authorization: Bearer …` or, for browsers, the `br_access` cookie; resolves it through
//! [`Auth`](crate::auth::Auth); checks the CSRF header on cookie-authenticated writes; charges
//! API-key requests to their key's limit and adds the `RateLimit-Policy` and `RateLimit`
//! headers to the answer. The outcome is left in the request's extensions; handlers that need a
//! caller take the [`Caller`] extractor (`super::extract`), so public routes (login, register)
//! ignore stale credentials instead of failing on them.

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use boardroom_protocol::ErrorCode;

use super::AppState;
use crate::auth::api_keys::RateLimitState;
use crate::auth::caller::{credential, Credential, CSRF_HEADER};
use crate::auth::tokens::secrets_equal;
use crate::auth::{Caller, Principal, RequestMeta};
use crate::error::ApiError;

/// What [`authenticate`] concluded, kept in the request's extensions.
#[derive(Clone)]
pub(super) enum Outcome {
    Anonymous,
    Authenticated(Caller),
    Refused { code: ErrorCode, message: String, retry_after: Option<u64> },
}

/// Middleware: authenticate, check CSRF, charge API-key limits.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let meta = RequestMeta::from_parts(&parts, &state.settings().trusted_proxies);
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
        crate::metrics::rate_limited(crate::metrics::Limit::ApiKey);
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
