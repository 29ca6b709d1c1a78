//! Stable error codes.
//!
//! One table maps each [`ErrorCode`] to its snake_case name and its HTTP status. REST answers
//! carry it as `{"error":{"code":…,"message":…}}`; WebSocket replies carry the same
//! `{"code","message"}` object. Clients branch on `code`, never on `message`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $status:literal), )+) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The snake_case name used on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )+ }
            }

            /// The HTTP status a REST answer with this code carries.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
            }
        }
    };
}

error_codes! {
    /// The request is malformed: bad syntax, a missing header, an unparsable id.
    BadRequest = ("bad_request", 400),
    /// The body is not valid JSON (or MessagePack) for the expected shape.
    MalformedBody = ("malformed_body", 400),
    /// An email link's token (verification, address change, password reset) that is unknown,
    /// used already, expired, or no longer matches the account's address.
    InvalidToken = ("invalid_token", 400),
    /// A signed delivery (a Stripe webhook) whose signature is missing, malformed, outside the
    /// timestamp tolerance, or matches nothing; nothing was applied.
    InvalidSignature = ("invalid_signature", 400),
    /// No credentials, or credentials that do not identify anyone.
    Unauthenticated = ("unauthenticated", 401),
    /// Login failed: the email is unknown or the password is wrong (never says which).
    InvalidCredentials = ("invalid_credentials", 401),
    /// The access token has expired; refresh it.
    TokenExpired = ("token_expired", 401),
    /// The session or key behind the credentials was revoked.
    SessionRevoked = ("session_revoked", 401),
    /// The organization's plan allows no more of something (boards, members, API keys,
    /// webhooks, attachment storage); the message names which. Nothing was created; an upgrade
    /// lifts it.
    PlanLimit = ("plan_limit", 402),
    /// Authenticated, but the role is insufficient for this action.
    Forbidden = ("forbidden", 403),
    /// Authenticated with an API key whose scopes do not cover this action.
    InsufficientScope = ("insufficient_scope", 403),
    /// A cookie-authenticated write without a matching CSRF token.
    CsrfFailed = ("csrf_failed", 403),
    /// A request reached the plain-HTTP listener (`BOARDROOM_HTTP_REDIRECT_LISTEN`) where only
    /// HTTPS is served: it was not carried out, and any credential it carried was exposed.
    HttpsRequired = ("https_required", 403),
    /// Not found, or not visible to the caller (another organization's resources included).
    NotFound = ("not_found", 404),
    /// The method is not allowed on this path.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// The request conflicts with the current state.
    Conflict = ("conflict", 409),
    /// The expected version does not match the stored one.
    VersionConflict = ("version_conflict", 409),
    /// The change would leave an organization with other members and no admin (an account
    /// deletion by its last admin, for one); the message names the organizations (name and
    /// id). Make someone else an admin first.
    LastAdmin = ("last_admin", 409),
    /// The body is larger than the server accepts.
    PayloadTooLarge = ("payload_too_large", 413),
    /// What the change would store is larger than the server keeps: an item's values, an
    /// update's body (the settings `BOARDROOM_ITEM_VALUES_MAX_BYTES`,
    /// `BOARDROOM_UPDATE_BODY_MAX_BYTES`). Nothing was changed.
    ContentTooLarge = ("content_too_large", 413),
    /// The media type is not supported.
    UnsupportedMediaType = ("unsupported_media_type", 415),
    /// The request is well-formed but a field fails validation.
    ValidationFailed = ("validation_failed", 422),
    /// The board already holds the most columns, groups or items it may (the settings
    /// `BOARDROOM_BOARD_MAX_*`). Nothing was changed; delete some first.
    LimitReached = ("limit_reached", 422),
    /// A WebSocket upgrade offered only Boardroom subprotocols of another protocol version;
    /// `Sec-WebSocket-Protocol` on the answer names the supported ones.
    UnsupportedProtocolVersion = ("unsupported_protocol_version", 426),
    /// Too many requests; `Retry-After` says when to try again.
    RateLimited = ("rate_limited", 429),
    /// An internal failure; details are in the server log under the request id.
    Internal = ("internal", 500),
    /// A dependency (the database) is unavailable.
    Unavailable = ("unavailable", 503),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `{"code","message"}` object carried by REST error bodies and WebSocket error replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; not stable, never contains internals.
    pub message: String,
}

/// The REST error body: `{"error":{"code":…,"message":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn serde_name_matches_table() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn statuses_are_client_or_server_errors() {
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.http_status()), "{code}");
        }
    }

    #[test]
    fn bound_codes_are_pinned() {
        assert_eq!(serde_json::to_string(&ErrorCode::LimitReached).unwrap(), r#""limit_reached""#);
        assert_eq!(ErrorCode::LimitReached.http_status(), 422);
        assert_eq!(
            serde_json::to_string(&ErrorCode::ContentTooLarge).unwrap(),
            r#""content_too_large""#
        );
        assert_eq!(ErrorCode::ContentTooLarge.http_status(), 413);
    }

    #[test]
    fn envelope_json_is_pinned() {
        let body = ErrorEnvelope {
            error: ErrorBody { code: ErrorCode::NotFound, message: "board not found".into() },
        };
        assert_golden(
            &body,
            r#"{"error":{"code":"not_found","message":"board not found"}}"#,
            "81a56572726f7282a4636f6465a96e6f745f666f756e64a76d657373616765af626f617264206e6f7420666f756e64",
        );
    }
}
