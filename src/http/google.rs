//! `/auth/google/*`: Google sign-in.
//!
//! `start` sends the browser to Google; `callback` is where Google sends it back, and answers
//! like every sign-in: the session as JSON plus the browser cookies. Both answer
//! `404 not_found` when Google sign-in is not configured. The rules live in
//! [`crate::auth::google`].

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::session_response;
use super::extract::ApiQuery;
use super::AppState;
use crate::auth::caller::{cookie, is_cookie_client};
use crate::auth::google::GoogleCallback;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start)).routes(routes!(callback))
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Cookie binding a pending sign-in's state to the browser that started it.
const STATE_COOKIE: &str = "br_oauth_state";

#[utoipa::path(get, path = "/auth/google/start", tag = "auth", operation_id = "google_start",
    summary = "Start Google sign-in (redirects to Google)",
    security(()),
    responses((status = 302,
        description = "To Google's consent page; sets the `br_oauth_state` cookie"),
        crate::http::openapi::PublicReadErrors))]
async fn start(State(state): State<AppState>, meta: RequestMeta) -> ApiResult<Response> {
    let google = state.google().get()?;
    state.auth().limit_sign_in_start(&meta).await?;
    let (url, oauth_state) = state.auth().google_start(google).await?;
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    // SameSite=Lax: the provider's redirect back is a top-level navigation, which Lax allows.
    let cookie = HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={oauth_state}; Path=/api/v1/auth/google; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
    ))
    .map_err(ApiError::internal)?;
    Ok((StatusCode::FOUND, [(LOCATION, location), (CACHE_CONTROL, NO_STORE), (SET_COOKIE, cookie)])
        .into_response())
}

#[utoipa::path(get, path = "/auth/google/callback", tag = "auth", operation_id = "google_callback",
    summary = "Finish Google sign-in",
    params(boardroom_protocol::identity::GoogleCallback),
    security(()),
    responses((status = 200, description = "Signed in; browsers also get the session cookies",
        body = boardroom_protocol::identity::SessionAnswer),
        crate::http::openapi::PublicReadErrors))]
async fn callback(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    query: Result<ApiQuery<GoogleCallback>, ApiError>,
) -> ApiResult<Response> {
    // Not configured is the answer whatever the query holds.
    let google = state.google().get()?;
    let ApiQuery(callback) = query?;
    let browser_state = cookie(&headers, STATE_COOKIE);
    let (user, tokens) =
        state.auth().google_callback(google, &callback, browser_state.as_deref(), &meta).await?;
    let mut response = session_response(StatusCode::OK, &user, &tokens, is_cookie_client(&headers));
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{STATE_COOKIE}=; Path=/api/v1/auth/google; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
    )) {
        response.headers_mut().append(SET_COOKIE, clear);
    }
    Ok(response)
}
