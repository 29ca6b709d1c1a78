//! Every internal error → [`ApiError`]: the one table from the refusals of the actors, the
//! sign-in, the SSRF guard and the storage to the stable codes of `boardroom-protocol`.
//!
//! Each `From` keeps the refusal's own message (they are written for the caller) and adds a
//! `Retry-After` where retrying is the answer. Anything unexpected becomes `internal`: logged,
//! never shown.

use boardroom_actors::domain::BoardError;
use boardroom_actors::org::OrgError;
use boardroom_protocol::{ErrorBody, ErrorCode};

use super::ApiError;
use crate::attachments::VaultError;
use crate::auth::google::SignInError;
use crate::auth::password::HashError;
use crate::billing::event::EventError;
use crate::billing::signature::SignatureError;
use crate::billing::StripeError;
use crate::ssrf::SsrfError;
use crate::storage::StorageError;

/// `503 unavailable`, to be retried after `secs`.
fn unavailable(message: impl Into<std::borrow::Cow<'static, str>>, secs: u64) -> ApiError {
    let mut err = ApiError::new(ErrorCode::Unavailable, message);
    err.set_retry_after(secs);
    err
}

impl From<BoardError> for ApiError {
    fn from(err: BoardError) -> Self {
        let message = err.to_string();
        let code = match err {
            BoardError::NotFound(_) => ErrorCode::NotFound,
            BoardError::Forbidden(_) => ErrorCode::Forbidden,
            BoardError::MissingScope(_) => ErrorCode::InsufficientScope,
            BoardError::Invalid(_) => ErrorCode::ValidationFailed,
            BoardError::VersionConflict { .. } => ErrorCode::VersionConflict,
            BoardError::Conflict(_) => ErrorCode::Conflict,
            BoardError::LimitReached(_) => ErrorCode::LimitReached,
            BoardError::TooLarge(_) => ErrorCode::ContentTooLarge,
            BoardError::Unavailable(_) => return unavailable(message, 1),
        };
        ApiError::new(code, message)
    }
}

impl From<OrgError> for ApiError {
    fn from(err: OrgError) -> Self {
        match err {
            OrgError::NotFound(what) => ApiError::not_found(what),
            OrgError::AlreadyMember | OrgError::LastAdmin => ApiError::conflict(err.to_string()),
            OrgError::PlanLimit(_) => ApiError::new(ErrorCode::PlanLimit, err.to_string()),
            OrgError::Unavailable(message) => unavailable(message, 1),
        }
    }
}

/// A Stripe delivery whose signature does not check: `400 invalid_signature`, nothing applied.
impl From<SignatureError> for ApiError {
    fn from(err: SignatureError) -> Self {
        ApiError::new(ErrorCode::InvalidSignature, err.to_string())
    }
}

/// A signed Stripe event that cannot be read: `400 malformed_body`, so Stripe retries it and
/// the dashboard shows the failure.
impl From<EventError> for ApiError {
    fn from(err: EventError) -> Self {
        ApiError::new(ErrorCode::MalformedBody, err.to_string())
    }
}

/// A Checkout or Portal session Stripe did not create: the details are logged, the caller is
/// told to retry; a missing price or key is the operator's to fix (`503` too, said plainly).
impl From<StripeError> for ApiError {
    fn from(err: StripeError) -> Self {
        match err {
            StripeError::Api(_) => {
                tracing::error!(error = %err, "Stripe API call failed");
                unavailable("the payment provider did not answer; retry", 5)
            }
            StripeError::NotConfigured | StripeError::NoPrice(_) => {
                ApiError::new(ErrorCode::Unavailable, err.to_string())
            }
        }
    }
}

/// A saturated bcrypt pool is load, not a fault: `503 unavailable`, retried after a second.
impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => unavailable("the server is busy; retry shortly", 1),
            HashError::Failed(_) => ApiError::internal(err),
        }
    }
}

/// `401 unauthenticated` for a refused sign-in; `503 unavailable` when the provider could not
/// be asked (retried after 5 s: a provider outage is rarely shorter).
impl From<SignInError> for ApiError {
    fn from(err: SignInError) -> Self {
        if err.is_unavailable() {
            unavailable(err.message(), 5)
        } else {
            ApiError::unauthenticated(err.message())
        }
    }
}

/// A URL the guard refuses is the caller's input: `422 validation_failed`, the guard's stable
/// reason first so clients can tell the refusals apart.
impl From<SsrfError> for ApiError {
    fn from(err: SsrfError) -> Self {
        ApiError::validation(format!("{}: {err}", err.reason()))
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            StorageError::Unique(_) => ApiError::conflict("already exists"),
            StorageError::Transient(_) => {
                unavailable("a concurrent change got in the way; retry", 1)
            }
            StorageError::Database(sqlx::Error::PoolTimedOut) => database_busy(),
            other => ApiError::internal(other),
        }
    }
}

/// A file past the limit is the caller's (`413 payload_too_large`), as is a body that could not
/// be read (`400 malformed_body`); a missing blob is `404`. A damaged blob, a missing master
/// key or a failing blob store is `internal`: logged, never described to the caller.
impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::TooLarge { .. } => {
                ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
            }
            VaultError::NotFound => ApiError::not_found("attachment"),
            VaultError::Body(_) => ApiError::new(ErrorCode::MalformedBody, err.to_string()),
            VaultError::Integrity | VaultError::Store(_) | VaultError::Key(_) => {
                ApiError::internal(err)
            }
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        let busy = matches!(err.downcast_ref(), Some(sqlx::Error::PoolTimedOut))
            || matches!(
                err.downcast_ref(),
                Some(StorageError::Database(sqlx::Error::PoolTimedOut))
            );
        if busy {
            return database_busy();
        }
        ApiError::internal(err)
    }
}

/// Every database connection stayed busy for the pool's whole wait: an overload that passes,
/// not a fault, so `503` with a retry rather than `500`.
fn database_busy() -> ApiError {
    tracing::warn!("no database connection came free in time");
    unavailable("the database is busy; retry", 1)
}

/// A socket's error frame says what a REST body says: the same code and message (an internal
/// failure is logged here, once, and not shown).
impl From<ApiError> for ErrorBody {
    fn from(err: ApiError) -> Self {
        err.to_body()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_refusals_keep_their_code_and_message() {
        let cases = [
            (BoardError::NotFound("item"), ErrorCode::NotFound, "item not found"),
            (
                BoardError::Forbidden("editor"),
                ErrorCode::Forbidden,
                "this needs the board's editor role",
            ),
            (
                BoardError::MissingScope("boards:write"),
                ErrorCode::InsufficientScope,
                "this API key lacks the boards:write scope",
            ),
            (BoardError::Invalid("bad".into()), ErrorCode::ValidationFailed, "bad"),
            (
                BoardError::VersionConflict { current: 3, expected: 2 },
                ErrorCode::VersionConflict,
                "item is at version 3, not 2",
            ),
            (BoardError::Conflict("taken".into()), ErrorCode::Conflict, "taken"),
            (BoardError::LimitReached("full".into()), ErrorCode::LimitReached, "full"),
            (BoardError::TooLarge("big".into()), ErrorCode::ContentTooLarge, "big"),
        ];
        for (err, code, message) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.code(), api.message(), api.retry_after()), (code, message, None));
        }
        let api = ApiError::from(BoardError::Unavailable("busy".into()));
        assert_eq!(
            (api.code(), api.message(), api.retry_after()),
            (ErrorCode::Unavailable, "busy", Some(1))
        );
    }

    #[test]
    fn org_refusals_keep_their_messages() {
        let api = ApiError::from(OrgError::NotFound("member"));
        assert_eq!((api.code(), api.message()), (ErrorCode::NotFound, "member not found"));
        let api = ApiError::from(OrgError::AlreadyMember);
        assert_eq!((api.code(), api.message()), (ErrorCode::Conflict, "already a member"));
        let api = ApiError::from(OrgError::LastAdmin);
        assert_eq!(
            (api.code(), api.message()),
            (ErrorCode::Conflict, "an organization must keep at least one admin")
        );
        let api = ApiError::from(OrgError::Unavailable("down".into()));
        assert_eq!((api.code(), api.retry_after()), (ErrorCode::Unavailable, Some(1)));
    }

    #[test]
    fn a_busy_hasher_is_retried_and_a_failed_one_is_internal() {
        let api = ApiError::from(HashError::Busy);
        assert_eq!((api.code(), api.retry_after()), (ErrorCode::Unavailable, Some(1)));
        let api = ApiError::from(HashError::Failed("pool died at 0xdead".into()));
        assert_eq!(api.code(), ErrorCode::Internal);
        assert!(!api.message().contains("0xdead"));
    }

    #[test]
    fn ssrf_refusals_are_validation_errors_naming_the_reason() {
        let api = ApiError::from(SsrfError::Userinfo);
        assert_eq!(api.code(), ErrorCode::ValidationFailed);
        assert!(api.message().starts_with("userinfo: webhook URL must not"), "{}", api.message());
    }

    #[test]
    fn vault_errors_map_to_codes_and_hide_internals() {
        let api = ApiError::from(VaultError::TooLarge { limit: 10 });
        assert_eq!(
            (api.code(), api.message()),
            (ErrorCode::PayloadTooLarge, "the file is larger than 10 bytes")
        );
        assert_eq!(ApiError::from(VaultError::NotFound).code(), ErrorCode::NotFound);
        assert_eq!(ApiError::from(VaultError::Body("cut".into())).code(), ErrorCode::MalformedBody);
        for err in [
            VaultError::Integrity,
            VaultError::Store("bucket secret-bucket".into()),
            VaultError::Key("mk_secret".into()),
        ] {
            let api = ApiError::from(err);
            assert_eq!(api.code(), ErrorCode::Internal);
            assert!(!api.message().contains("secret") && !api.message().contains("integrity"));
        }
    }

    #[test]
    fn storage_errors_map_to_codes_and_hide_internals() {
        assert_eq!(ApiError::from(StorageError::NotFound).code(), ErrorCode::NotFound);
        assert_eq!(
            ApiError::from(StorageError::Unique("users_email".into())).code(),
            ErrorCode::Conflict
        );
        let api = ApiError::from(StorageError::Transient("deadlock".into()));
        assert_eq!((api.code(), api.retry_after()), (ErrorCode::Unavailable, Some(1)));
        let busy = ApiError::from(StorageError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(busy.code(), ErrorCode::Unavailable);
        let busy = ApiError::from(anyhow::Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(busy.code(), ErrorCode::Unavailable);
        let api = ApiError::from(StorageError::Rule("secret rule"));
        assert_eq!(api.code(), ErrorCode::Internal);
        assert!(!api.message().contains("secret"));
    }

    #[test]
    fn socket_error_frames_carry_the_rest_code_and_message() {
        let body = ErrorBody::from(ApiError::from(BoardError::NotFound("board")));
        assert_eq!((body.code, body.message.as_str()), (ErrorCode::NotFound, "board not found"));
        let body = ErrorBody::from(ApiError::from(StorageError::Rule("secret rule")));
        assert_eq!(body.code, ErrorCode::Internal);
        assert!(!body.message.contains("secret"), "{}", body.message);
    }
}
