//! `/auth/google/*`: Google sign-in.
//!
//! `start` sends the browser to Google; `callback` is where Google sends it back, and answers
//! like every sign-in: the session as JSON plus the browser cookies. A browser's own navigation
//! back from Google (`Sec-Fetch-Mode: navigate`, the web client's "Sign in with Google") gets the
//! cookies with a `303` to the web client at `/` instead, so the person lands on the app signed
//! in rather than on JSON. Both answer `404 not_found` when Google sign-in is not configured. The
//! rules live in [`crate::auth::google`].

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
        (status = 303, description = "Signed in, for a browser's top-level navigation: the \
            session cookies, and on to the web client at `/`"),
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
    if is_navigation(&headers) {
        response = to_the_app(response);
    }
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{STATE_COOKIE}=; Path=/api/v1/auth/google; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
    )) {
        response.headers_mut().append(SET_COOKIE, clear);
    }
    Ok(response)
}

/// Whether the request is the browser's own top-level navigation (not a script's `fetch`).
fn is_navigation(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-mode").is_some_and(|mode| mode.as_bytes() == b"navigate")
}

/// The session's cookies with a `303` to the web client, without the JSON body (whose access
/// token a page does not need: the cookie carries it).
fn to_the_app(session: Response) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(LOCATION, HeaderValue::from_static("/")), (CACHE_CONTROL, NO_STORE)],
    )
        .into_response();
    for cookie in session.headers().get_all(SET_COOKIE) {
        response.headers_mut().append(SET_COOKIE, cookie.clone());
    }
    response
}
