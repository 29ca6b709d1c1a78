//! The HTTP edge: the router and the middleware every request passes. The state handlers share
//! is [`AppState`] (`crate::state`), re-exported here.
//!
//! Each resource module exposes `router()`, an `OpenApiRouter` whose routes come from their
//! handlers' `#[utoipa::path]` attributes; this module nests them under `/api/v1`, adds the
//! health probes at the root, and builds the OpenAPI document from the same routers
//! ([`openapi_document`]), so the document lists exactly what is served. Whatever no route
//! claims falls to [`web::serve`]: the embedded web client, or the JSON 404 under `/api`. Handlers are thin:
//! parse, call the store or an actor, map the result; the rules live beneath them.

pub mod api_keys;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod authenticate;
pub mod billing;
pub mod boards;
pub mod client_config;
pub mod exports;
pub mod extract;
pub mod google;
pub mod health;
pub mod linger;
pub mod openapi;
pub mod orgs;
pub mod security;
pub mod web;
pub mod webhooks;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use boardroom_protocol::ErrorCode;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
pub use crate::state::AppState;

/// Largest request body accepted anywhere, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Every route under `/api/v1`, documented.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(client_config::router())
        .merge(orgs::router())
        .merge(api_keys::router())
        .merge(audit::router())
        .merge(boards::router())
        .merge(attachments::router())
        .merge(exports::router())
        .merge(google::router())
        .merge(webhooks::router())
        .merge(billing::router())
        .merge(crate::ws::router())
        .merge(openapi::router())
}

/// The OpenAPI document: [`openapi::ApiDoc`]'s top, the probes at the root and the API under
/// `/api/v1`, taken from the routers [`router`] serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, root) = health::router().split_for_parts();
    let (_, api) = api_routes().split_for_parts();
    let mut document = openapi::ApiDoc::openapi();
    document.merge(root);
    document.nest("/api/v1", api)
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let (root, _) = health::router().split_for_parts();
    let api = api
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate::authenticate));
    root.nest("/api/v1", api)
        .fallback(web::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::telemetry::request_log))
        .layer(axum::middleware::from_fn(linger::linger))
        .layer(security::layer(state.settings()))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> impl IntoResponse {
    let err = ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route");
    (StatusCode::METHOD_NOT_ALLOWED, err)
}
