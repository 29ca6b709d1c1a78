//! `GET /config`: the optional features this server offers (Google sign-in, billing), public, so
//! the web client shows a Google button or billing controls only when they work.

use axum::extract::State;
use axum::Json;
use boardroom_protocol::client::ClientConfig;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::google::Google;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(client_config))
}

#[utoipa::path(get, path = "/config", tag = "meta", operation_id = "client_config",
    summary = "Which optional features this server offers (public)",
    security(()),
    responses((status = 200, description = "The features", body = ClientConfig)))]
async fn client_config(State(state): State<AppState>) -> Json<ClientConfig> {
    Json(ClientConfig {
        // A configured client that could not be built answers `internal`: no button for it.
        google_sign_in: matches!(state.google(), Google::Ready(_)),
        billing: state.billing().is_some(),
    })
}
