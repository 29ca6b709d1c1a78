//! The one error type at the edge.
//!
//! Handlers return [`ApiError`]. Client errors carry a stable [`ErrorCode`] and a message meant
//! for the caller; internal errors are logged with the request's span and answered with a
//! generic `internal` body, so internals never leak.
//!
//! Every internal error type the edge meets (board, org, sign-in, SSRF, storage, anything
//! else) becomes an [`ApiError`] in one place, [`mapping`], so `?` works in every handler and
//! in the socket alike.

mod mapping;

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use boardroom_protocol::{ErrorBody, ErrorCode, ErrorEnvelope};

/// An error answered to a REST caller.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    retry_after_secs: Option<u64>,
    internal: Option<anyhow::Error>,
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A client error with a stable code and a message for the caller.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError { code, message: message.into(), retry_after_secs: None, internal: None }
    }

    /// An internal failure: logged in full, answered as `internal`.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError {
            code: ErrorCode::Internal,
            message: Cow::Borrowed("internal error; see the server log for this request id"),
            retry_after_secs: None,
            internal: Some(err.into()),
        }
    }

    /// The body a client is shown, REST or WebSocket; an internal failure is logged here, once,
    /// and never shown.
    pub fn to_body(&self) -> ErrorBody {
        if let Some(internal) = &self.internal {
            tracing::error!(error = ?internal, "internal error");
        }
        ErrorBody { code: self.code, message: self.message.to_string() }
    }

    /// `404 not_found` for `what` (also used for other organizations' resources).
    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// `422 validation_failed`.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::ValidationFailed, message)
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// `409 conflict`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// `429 rate_limited` with a `Retry-After` of `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        let mut err = ApiError::new(ErrorCode::RateLimited, "too many requests; retry later");
        err.retry_after_secs = Some(secs.max(1));
        err
    }

    /// Adds a `Retry-After` of `secs` to the answer.
    pub fn set_retry_after(&mut self, secs: u64) {
        self.retry_after_secs = Some(secs.max(1));
    }

    /// The `Retry-After` the answer will carry, if any.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The caller-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope { error: self.to_body() };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_do_not_leak() {
        let response =
            ApiError::internal(anyhow::anyhow!("password=hunter2 at db row 7")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(r#""code":"internal""#), "{text}");
    }

    #[tokio::test]
    async fn rate_limited_carries_retry_after() {
        let response = ApiError::rate_limited(42).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "42");
    }
}
