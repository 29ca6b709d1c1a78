//! Extractors whose rejections speak the API's error format, and the ones that need the
//! [`AppState`]: the [`Caller`] left by the `authenticate` middleware, and [`RequestMeta`].
//!
//! axum's own `Json` and `Path` reject with plain text; these wrap them so that malformed input
//! gets `{"error":{"code","message"}}` with a stable code, like every other error.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use boardroom_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use super::authenticate::Outcome;
use super::AppState;
use crate::auth::{Caller, RequestMeta};
use crate::error::ApiError;

/// A JSON body of type `T`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected a body with content-type application/json",
        ),
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::new(ErrorCode::MalformedBody, format!("malformed JSON: {}", err.body_text()))
        }
        JsonRejection::JsonDataError(err) => {
            ApiError::new(ErrorCode::MalformedBody, format!("invalid body: {}", err.body_text()))
        }
        JsonRejection::BytesRejection(err) => body_read_error(&err),
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Path parameters of type `T`; an unparsable id is 404, as if it named nothing.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::new(ErrorCode::NotFound, "not found (malformed id in path)"))
            }
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}

/// Query parameters of type `T`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(err) => Err(ApiError::bad_request(format!("invalid query: {}", err.body_text()))),
        }
    }
}

/// The answer to a request body that could not be read: too large (413), or cut off.
pub fn body_read_error(err: &axum::extract::rejection::BytesRejection) -> ApiError {
    if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
    } else {
        ApiError::bad_request("could not read the request body")
    }
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

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(meta) = parts.extensions.get::<RequestMeta>() {
            return Ok(meta.clone());
        }
        let meta = RequestMeta::from_parts(parts, &state.settings().trusted_proxies);
        parts.extensions.insert(meta.clone());
        Ok(meta)
    }
}
