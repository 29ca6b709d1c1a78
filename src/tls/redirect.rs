//! The plain-HTTP listener (`BOARDROOM_HTTP_REDIRECT_LISTEN`): it does no application work.
//!
//! - `GET` and `HEAD` outside `/api/` are answered `308` to the same path and query on
//!   `BOARDROOM_PUBLIC_URL` (never on the request's `Host`, which the client chooses).
//! - Anything under `/api/`, whatever the method, is answered `403 https_required` and not
//!   redirected: a client that sent a credential over plain HTTP must learn of it rather than
//!   have it silently resent (ASVS 4.1.2).
//! - Any other method is `403 https_required` too: its body has already crossed the network in
//!   the clear, and a `308` would make the client send it again.
//!
//! The answers carry the security headers of every answer, but never HSTS: browsers ignore it
//! over plain HTTP, and the HTTPS answer it leads to carries it.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use boardroom_protocol::ErrorCode;

use crate::error::ApiError;

/// The redirect listener's router; `public_url` is where the HTTPS server is reached.
pub fn router(public_url: &url::Url) -> Router {
    let base = public_url.as_str().trim_end_matches('/').to_owned();
    Router::new()
        .fallback(answer)
        .with_state(std::sync::Arc::<str>::from(base))
        .layer(crate::http::security::plain_layer())
}

async fn answer(State(base): State<std::sync::Arc<str>>, request: Request) -> Response {
    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    let is_read = request.method() == Method::GET || request.method() == Method::HEAD;
    if is_api || !is_read {
        let message = if is_api {
            "the API is served over HTTPS only; this request crossed the network unencrypted, so \
             treat any credential it carried as exposed"
        } else {
            "this server accepts only GET and HEAD over plain HTTP; use HTTPS"
        };
        return ApiError::new(ErrorCode::HttpsRequired, message).into_response();
    }
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match HeaderValue::from_str(&format!("{base}{path_and_query}")) {
        Ok(location) => {
            (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response()
        }
        Err(_) => ApiError::bad_request("the request target cannot be redirected").into_response(),
    }
}
