//! The HTTP edge: the router, shared state, and the middleware every request passes.
//!
//! Each resource module exposes `router()`, an `OpenApiRouter` whose routes come from their
//! handlers' `#[utoipa::path]` attributes; this module nests them under `/api/v1`, adds the
//! health probes at the root, and builds the OpenAPI document from the same routers
//! ([`openapi_document`]), so the document lists exactly what is served. Handlers are thin:
//! parse, call the store or an actor, map the result; the rules live beneath them.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod boards;
pub mod extract;
pub mod google;
pub mod health;
pub mod linger;
pub mod openapi;
pub mod orgs;
pub mod security;
pub mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use boardroom_protocol::ErrorCode;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use boardroom_actors::supervisor::Runtime;

use crate::auth::google::Google;
use crate::auth::Auth;
use crate::config::Settings;
use crate::error::ApiError;
use crate::storage::Store;

/// State shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<AppInner>,
}

struct AppInner {
    store: Store,
    settings: Settings,
    auth: Auth,
    runtime: Runtime,
    google: Google,
    ws: crate::ws::Gateway,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(store: Store, settings: Settings, auth: Auth, runtime: Runtime) -> Self {
        let google = Google::from_settings(&settings);
        let ws = crate::ws::Gateway::start(&settings, runtime.boards().bus());
        AppState { inner: Arc::new(AppInner { store, settings, auth, runtime, google, ws }) }
    }

    /// Authentication and org-level authorization.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// The board registry.
    pub fn boards(&self) -> &boardroom_actors::boards::Boards {
        self.inner.runtime.boards()
    }

    /// The supervised actors.
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The WebSocket gateway.
    pub fn ws(&self) -> &crate::ws::Gateway {
        &self.inner.ws
    }

    /// Google sign-in, as configured.
    pub fn google(&self) -> &Google {
        &self.inner.google
    }
}

/// Largest request body accepted anywhere, in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Every route under `/api/v1`, documented.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(orgs::router())
        .merge(api_keys::router())
        .merge(audit::router())
        .merge(boards::router())
        .merge(google::router())
        .merge(webhooks::router())
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
    let api = api.fallback(not_found).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::caller::authenticate,
    ));
    root.nest("/api/v1", api)
        .fallback(not_found)
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
