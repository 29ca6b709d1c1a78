//! The OpenAPI 3.1 document and `GET /api/v1/openapi.json`, which serves it.
//!
//! The document is generated, never written by hand: each handler carries a `#[utoipa::path]`
//! attribute naming its route, parameters, bodies (the `boardroom_protocol` types), error
//! answers and security, and every router is a `utoipa_axum` `OpenApiRouter` registering
//! handlers through `routes!()`, which takes the route from that attribute, so a route cannot
//! be served without being documented (`tests/openapi.rs` holds both ends to it). This module
//! holds what is not any one handler's: the document's top (info, security schemes, tags) and
//! the sets of error answers the handlers' attributes name.
//!
//! `docs/openapi.json` is the document, checked in (pretty-printed, keys sorted) so the web
//! client's types can be generated from it (`web/gen.mjs`); `tests/openapi.rs` fails when it
//! differs, and `BOARDROOM_WRITE_SCHEMA=1` on that test rewrites it.
//!
//! Security, as the `authenticate` middleware reads it (`crate::auth::caller`): `session` is an
//! access token (a JWT) in `Authorization: Bearer`; `api_key` is an API key (`brk_…`) in the
//! same header, and its requirement lists the key scopes the route needs (an empty list: any
//! key, bounded by the user's roles); `cookie` is the browser's `br_access` cookie, which
//! writes pair with `csrf` (the `X-CSRF-Token` header echoing the `br_csrf` cookie). Routes a
//! key may not use (sessions, keys, membership, the audit log) leave `api_key` out; public
//! routes have the empty requirement `{}`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use boardroom_protocol::{ErrorBody, ErrorCode, ErrorEnvelope, Scope};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// The top of the document; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boardroom",
        description = "A real-time work-management server: organizations own boards; boards hold \
                       groups of items with typed column values; every change is an event, live \
                       over the WebSocket `/api/v1/ws` (frames: `docs/protocol.schema.json`) and \
                       in `GET /api/v1/boards/{board}/events`. Errors are \
                       `{\"error\":{\"code\",\"message\"}}`; clients branch on `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCode, Scope)),
    tags(
        (name = "auth", description = "Registration, sign-in, sessions, `GET /me`"),
        (name = "orgs", description = "Organizations and their members"),
        (name = "api-keys", description = "API keys (managed with a session only)"),
        (name = "audit", description = "The organization's audit log"),
        (name = "boards", description = "Boards, their members, columns and groups; the event log"),
        (name = "items", description = "Items (rows) of a board"),
        (name = "updates", description = "Updates (comments) on items"),
        (name = "attachments", description = "Files attached to items and their comments"),
        (name = "webhooks", description = "Webhooks of a board and their deliveries"),
        (name = "exports", description = "Exports of your own data"),
        (name = "billing", description = "Plans with Stripe: checkout, the billing portal, Stripe's webhook"),
        (name = "realtime", description = "The WebSocket and its tickets"),
        (name = "health", description = "Health probes, at the root"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the security schemes (a derive cannot spell them all).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |format: &str, description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(format)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "session",
            bearer(
                "JWT",
                "An access token (`access_token` of a sign-in, 15 minutes) in \
                 `Authorization: Bearer`.",
            ),
        );
        components.add_security_scheme(
            "api_key",
            bearer(
                "brk_…",
                "An API key in `Authorization: Bearer brk_…`: acts as the user who made it, in \
                 its organization only, for what its scopes name (listed per operation).",
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::caller::ACCESS_COOKIE,
                "Browsers: the HttpOnly `br_access` cookie set by sign-in; writes also need \
                 `csrf`.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "Cookie-authenticated writes echo the `br_csrf` cookie (also `csrf_token` of \
                 the sign-in answer) in this header; a mismatch is 403 `csrf_failed`.",
            ))),
        );
        components.add_security_scheme(
            "ticket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A single-use ticket from `POST /api/v1/ws/ticket`, for WebSocket clients that \
                 cannot send headers.",
            ))),
        );
    }
}

/// The OpenAPI document of the whole server, built once from the routers.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // Serializing a document of plain maps and strings cannot fail; an empty object would
        // at least be valid JSON.
        serde_json::to_string(&super::openapi_document()).unwrap_or_else(|_| "{}".to_owned())
    })
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(openapi_json))
}

/// Serves the document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi",
    summary = "This OpenAPI 3.1 document", security(()),
    responses((status = 200, description = "The document", content_type = "application/json",
        body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document())
}

/// The error answers for `codes`, one response per HTTP status, each naming its codes.
fn error_responses(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for code in codes {
        by_status.entry(code.http_status()).or_default().push(code.as_str());
    }
    by_status
        .into_iter()
        .map(|(status, names)| {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            let response = ResponseBuilder::new()
                .description(format!("error code {}", names.join(" or ")))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorEnvelope")))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares sets of error answers: each is a type for the `responses(...)` of
/// `#[utoipa::path]`, documenting the listed codes under their statuses.
macro_rules! error_sets {
    ($( $(#[$doc:meta])* $name:ident = [$($code:ident),* $(,)?]; )+) => {
        $(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    error_responses(&[$(ErrorCode::$code),*])
                }
            }
        )+
    };
}

error_sets! {
    /// A public route that reads a body: registration, sign-in, refresh.
    PublicWriteErrors = [BadRequest, MalformedBody, InvalidCredentials, SessionRevoked,
        TokenExpired, CsrfFailed, Conflict, PayloadTooLarge, UnsupportedMediaType,
        ValidationFailed, RateLimited, Internal, Unavailable];
    /// A public route that reads only its query (Google sign-in).
    PublicReadErrors = [BadRequest, Unauthenticated, InvalidCredentials, Forbidden, NotFound,
        Conflict, ValidationFailed, RateLimited, Internal, Unavailable];
    /// An authenticated read.
    ReadErrors = [BadRequest, Unauthenticated, TokenExpired, SessionRevoked, Forbidden,
        InsufficientScope, NotFound, RateLimited, Internal, Unavailable];
    /// Downloading what is built in the background (an export): a read that is `conflict`
    /// until it is ready, or once it failed.
    DownloadErrors = [BadRequest, Unauthenticated, TokenExpired, SessionRevoked, Forbidden,
        InsufficientScope, NotFound, Conflict, RateLimited, Internal, Unavailable];
    /// An authenticated write.
    WriteErrors = [BadRequest, MalformedBody, Unauthenticated, TokenExpired, SessionRevoked,
        Forbidden, InsufficientScope, CsrfFailed, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, ValidationFailed, RateLimited, Internal, Unavailable];
    /// Asking for an account's deletion: a write that also checks the password and the
    /// last-admin rule.
    DeletionErrors = [BadRequest, MalformedBody, Unauthenticated, InvalidCredentials,
        TokenExpired, SessionRevoked, Forbidden, InsufficientScope, CsrfFailed, NotFound,
        Conflict, LastAdmin, PayloadTooLarge, UnsupportedMediaType, ValidationFailed,
        RateLimited, Internal, Unavailable];
    /// A write to a board's content, which the board's bounds and item versions also refuse.
    BoardWriteErrors = [BadRequest, MalformedBody, Unauthenticated, TokenExpired,
        SessionRevoked, Forbidden, InsufficientScope, CsrfFailed, NotFound, Conflict,
        VersionConflict, PayloadTooLarge, ContentTooLarge, UnsupportedMediaType,
        ValidationFailed, LimitReached, RateLimited, Internal, Unavailable];
    /// An authenticated write that creates something the organization's plan limits (a
    /// member, an API key, a webhook).
    PlanWriteErrors = [BadRequest, MalformedBody, Unauthenticated, TokenExpired,
        SessionRevoked, PlanLimit, Forbidden, InsufficientScope, CsrfFailed, NotFound, Conflict,
        PayloadTooLarge, UnsupportedMediaType, ValidationFailed, RateLimited, Internal,
        Unavailable];
    /// Creating a board or uploading a file: a board write that the plan's limits also refuse.
    BoardCreateErrors = [BadRequest, MalformedBody, Unauthenticated, TokenExpired,
        SessionRevoked, PlanLimit, Forbidden, InsufficientScope, CsrfFailed, NotFound,
        Conflict, VersionConflict, PayloadTooLarge, ContentTooLarge, UnsupportedMediaType,
        ValidationFailed, LimitReached, RateLimited, Internal, Unavailable];
    /// A public route that redeems an email link's token (verification, password reset).
    PublicTokenErrors = [BadRequest, MalformedBody, InvalidToken, CsrfFailed, Conflict,
        PayloadTooLarge, UnsupportedMediaType, ValidationFailed, RateLimited, Internal,
        Unavailable];
    /// The Stripe webhook: no session, a signature instead.
    StripeWebhookErrors = [BadRequest, InvalidSignature, MalformedBody, NotFound,
        PayloadTooLarge, RateLimited, Internal, Unavailable];
    /// The WebSocket upgrade, refused before it happens.
    UpgradeErrors = [BadRequest, Unauthenticated, TokenExpired, SessionRevoked, Forbidden,
        UnsupportedProtocolVersion, RateLimited, Internal, Unavailable];
}
