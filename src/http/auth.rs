//! `/auth/*` and `/me`: registration, login, refresh, logout, password change, sessions, email
//! verification, password reset, and the move to a new address (rules in [`crate::auth::email`]).
//!
//! Answers that start or refresh a session also set cookies for browsers: `br_access` and
//! `br_refresh` (HttpOnly, Secure, SameSite=Strict) and `br_csrf` (readable by the page, echoed
//! in `X-CSRF-Token` on writes). They carry `Cache-Control: no-store`, and a cookie client
//! ([`is_cookie_client`]) finds no refresh token in the body: only in its HttpOnly cookie.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_protocol::{identity, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::auth::caller::{cookie, is_cookie_client, ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE};
use crate::auth::{Caller, RequestMeta, SessionTokens};
use crate::error::{ApiError, ApiResult};
use crate::storage::UserRow;
use crate::wire::identity as wire;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(me, change_email))
        .routes(routes!(request_deletion, cancel_deletion))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
}

/// The answer that opens or refreshes a session: JSON body plus browser cookies, never stored by
/// a cache. A cookie client gets the refresh token only in its HttpOnly cookie.
pub fn session_response(
    status: StatusCode,
    user: &UserRow,
    tokens: &SessionTokens,
    cookie_client: bool,
) -> Response {
    let body = wire::session_answer(user, tokens, cookie_client);
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let cookies = [
        format!(
            "{ACCESS_COOKIE}={}; Path=/api; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
            tokens.access_token, tokens.expires_in
        ),
        format!(
            "{REFRESH_COOKIE}={}; Path=/api/v1/auth; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
            tokens.refresh_token,
            crate::auth::tokens::REFRESH_TTL_DAYS * 86_400
        ),
        format!("{CSRF_COOKIE}={}; Path=/; Secure; SameSite=Strict", tokens.csrf_token),
    ];
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn clear_cookies(response: &mut Response) {
    for (name, path) in
        [(ACCESS_COOKIE, "/api"), (REFRESH_COOKIE, "/api/v1/auth"), (CSRF_COOKIE, "/")]
    {
        let cookie = format!("{name}=; Path={path}; Max-Age=0; Secure; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
}

#[utoipa::path(post, path = "/auth/register", tag = "auth", operation_id = "register",
    summary = "Create an account and sign in",
    request_body = identity::Register,
    security(()),
    responses((status = 201, description = "Signed in; browsers also get the session cookies",
        body = identity::SessionAnswer),
        crate::http::openapi::PublicWriteErrors))]
async fn register(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<identity::Register>,
) -> ApiResult<Response> {
    let (user, tokens) =
        state.auth().register(&body.email, &body.password, &body.name, &meta).await?;
    Ok(session_response(StatusCode::CREATED, &user, &tokens, is_cookie_client(&headers)))
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login",
    summary = "Sign in with email and password",
    request_body = identity::Login,
    security(()),
    responses((status = 200, description = "Signed in; browsers also get the session cookies",
        body = identity::SessionAnswer),
        crate::http::openapi::PublicWriteErrors))]
async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<identity::Login>,
) -> ApiResult<Response> {
    let (user, tokens) = state.auth().login(&body.email, &body.password, &meta).await?;
    Ok(session_response(StatusCode::OK, &user, &tokens, is_cookie_client(&headers)))
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    summary = "Rotate the refresh token for a new access token",
    request_body = Option<identity::Refresh>,
    security(()),
    responses((status = 200,
        description = "Refreshed; browsers send no body and the `br_refresh` cookie",
        body = identity::SessionAnswer),
        crate::http::openapi::PublicWriteErrors))]
async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // Browsers refresh with the cookie and no body; other clients send the token in JSON.
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<identity::Refresh>(&body)
            .map_err(|e| ApiError::new(ErrorCode::MalformedBody, format!("invalid body: {e}")))?
            .refresh_token
    };
    // A refresh token sent as the cookie marks a cookie client too.
    let (token, from_cookie) = match from_body {
        Some(token) => (token, false),
        None => (
            cookie(&headers, REFRESH_COOKIE)
                .ok_or_else(|| ApiError::unauthenticated("refresh_token is required"))?,
            true,
        ),
    };
    let (user, tokens) = state.auth().refresh(&token, &meta).await?;
    let cookie_client = from_cookie || is_cookie_client(&headers);
    Ok(session_response(StatusCode::OK, &user, &tokens, cookie_client))
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    summary = "End this session",
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Signed out; cookies cleared"),
        crate::http::openapi::WriteErrors))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let (user, session) = caller.require_session()?;
    state.auth().end_session(user, session, AuditAction::Logout, &caller.meta).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&mut response);
    Ok(response)
}

#[utoipa::path(post, path = "/auth/password", tag = "auth", operation_id = "change_password",
    summary = "Change the password (other sessions end)",
    request_body = identity::ChangePassword,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Changed; fresh tokens for this session",
        body = identity::SessionAnswer), crate::http::openapi::WriteErrors))]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<identity::ChangePassword>,
) -> ApiResult<Response> {
    let (user, session) = caller.require_session()?;
    let (account, tokens) = state
        .auth()
        .change_password(user, session, &body.current_password, &body.new_password, &caller.meta)
        .await?;
    Ok(session_response(StatusCode::OK, &account, &tokens, is_cookie_client(&headers)))
}

#[utoipa::path(get, path = "/auth/sessions", tag = "auth", operation_id = "list_sessions",
    summary = "The caller's live sessions",
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The sessions",
        body = identity::SessionList), crate::http::openapi::ReadErrors))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<identity::SessionList>> {
    let (user, current) = caller.require_session()?;
    let sessions = state.store().live_sessions(user).await?;
    Ok(Json(wire::sessions(&sessions, current)))
}

#[utoipa::path(delete, path = "/auth/sessions/{session}", tag = "auth", operation_id = "revoke_session",
    summary = "End one of the caller's sessions",
    params(("session" = uuid::Uuid, Path, description = "The session")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Ended"), crate::http::openapi::WriteErrors))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (user, _) = caller.require_session()?;
    state.auth().end_session(user, id, AuditAction::SessionRevoked, &caller.meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/me", tag = "auth", operation_id = "me",
    summary = "The caller: user, and the session or API key used",
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The caller", body = identity::Me),
        crate::http::openapi::ReadErrors))]
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<identity::Me>> {
    let user = state
        .store()
        .user_by_id(caller.user_id())
        .await?
        .ok_or_else(|| ApiError::unauthenticated("account no longer exists"))?;
    Ok(Json(wire::me(&user, &caller.principal)))
}

#[utoipa::path(patch, path = "/me", tag = "auth", operation_id = "change_email",
    summary = "Move to a new email address: a link is sent to it, and the old one is told",
    description = "The account keeps its address until the link sent to the new one is used \
        (`POST /auth/verify-email`). Needs the current password; wrong ones count like wrong \
        password changes.",
    request_body = identity::ChangeEmail,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 202, description = "Link sent to the new address",
        body = identity::PendingEmailChange), crate::http::openapi::WriteErrors))]
async fn change_email(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<identity::ChangeEmail>,
) -> ApiResult<(StatusCode, Json<identity::PendingEmailChange>)> {
    let (user, _) = caller.require_session()?;
    let pending =
        state.auth().change_email(user, &body.current_password, &body.email, &caller.meta).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(identity::PendingEmailChange {
            pending_email: pending.email,
            expires_at: pending.expires_at,
        }),
    ))
}

#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", operation_id = "verify_email",
    summary = "Use a verification link's token: the address is verified (or becomes the account's, after PATCH /me)",
    request_body = identity::VerifyEmail,
    security(()),
    responses((status = 204, description = "Verified"),
        crate::http::openapi::PublicTokenErrors))]
async fn verify_email(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<identity::VerifyEmail>,
) -> ApiResult<StatusCode> {
    state.auth().verify_email(&body.token, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth",
        operation_id = "resend_verification",
    summary = "Send the caller a new verification link (rate-limited)",
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 202, description = "Queued"), crate::http::openapi::WriteErrors))]
async fn resend_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    let (user, _) = caller.require_session()?;
    state.auth().resend_verification(user).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/auth/password-reset", tag = "auth",
        operation_id = "request_password_reset",
    summary = "Mail a password-reset link; 202 whether an account has the address or not",
    request_body = identity::PasswordResetRequest,
    security(()),
    responses((status = 202, description = "Accepted (nothing says whether an account exists)"),
        crate::http::openapi::PublicWriteErrors))]
async fn request_password_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<identity::PasswordResetRequest>,
) -> ApiResult<StatusCode> {
    state.auth().request_password_reset(&body.email, &meta).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth",
        operation_id = "confirm_password_reset",
    summary = "Set a new password with a reset link's token; every session and access token ends",
    request_body = identity::PasswordResetConfirm,
    security(()),
    responses((status = 204, description = "Password set; sign in again"),
        crate::http::openapi::PublicTokenErrors))]
async fn confirm_password_reset(
    State(state): State<AppState>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<identity::PasswordResetConfirm>,
) -> ApiResult<StatusCode> {
    state.auth().confirm_password_reset(&body.token, &body.new_password, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/me/deletion", tag = "auth", operation_id = "request_deletion",
    summary = "Ask for the account's deletion (erased after the grace period)",
    description = "An account with a password confirms with it (a wrong one is \
        `invalid_credentials`, as for a password change); an account that signs in only with \
        Google sends no password, from a session opened with Google in the last 10 minutes. The \
        only admin of an organization with other members is refused `409 last_admin`, naming the \
        organizations. Asking again while pending answers the same time.",
    request_body = identity::RequestDeletion,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 202, description = "Scheduled", body = identity::DeletionScheduled),
        crate::http::openapi::DeletionErrors))]
async fn request_deletion(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<identity::RequestDeletion>,
) -> ApiResult<(StatusCode, Json<identity::DeletionScheduled>)> {
    let scheduled_for = crate::deletion::request(&state, &caller, body.password.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(identity::DeletionScheduled { scheduled_for })))
}

#[utoipa::path(delete, path = "/me/deletion", tag = "auth", operation_id = "cancel_deletion",
    summary = "Cancel the account's pending deletion",
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Cancelled"), crate::http::openapi::WriteErrors))]
async fn cancel_deletion(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    crate::deletion::cancel(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
