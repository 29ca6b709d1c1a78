//! `/auth/google/*`: Google sign-in.
//!
//! `start` sends the browser to Google; `callback` is where Google sends it back, and answers
//! like every sign-in: the session as JSON plus the browser cookies. Both answer
//! `404 not_found` when Google sign-in is not configured. The rules live in
//! [`crate::auth::google`].

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::session_response;
use super::extract::ApiQuery;
use super::AppState;
use crate::auth::google::GoogleCallback;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/google/start", get(start))
        .route("/auth/google/callback", get(callback))
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

async fn start(State(state): State<AppState>) -> ApiResult<Response> {
    let google = state.google().get()?;
    let url = state.auth().google_start(google).await?;
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    Ok((StatusCode::FOUND, [(LOCATION, location), (CACHE_CONTROL, NO_STORE)]).into_response())
}

async fn callback(
    State(state): State<AppState>,
    meta: RequestMeta,
    query: Result<ApiQuery<GoogleCallback>, ApiError>,
) -> ApiResult<Response> {
    // Not configured is the answer whatever the query holds.
    let google = state.google().get()?;
    let ApiQuery(callback) = query?;
    let (user, tokens) = state.auth().google_callback(google, &callback, &meta).await?;
    let mut response = session_response(StatusCode::OK, &user, &tokens);
    response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    Ok(response)
}
