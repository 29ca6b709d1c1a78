//! Health probes: `GET /healthz` (the process is up) and `GET /readyz` (the database answers and
//! its migrations are current; 503 otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    summary = "Liveness: the process is up",
    security(()),
    responses((status = 200, description = "Up", body = boardroom_protocol::health::Health)))]
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    summary = "Readiness: the database answers and its migrations are current",
    security(()),
    responses((status = 200, description = "Ready", body = boardroom_protocol::health::Readiness),
        (status = 503, description = "Not ready", body = boardroom_protocol::health::Readiness)))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = state.store().readiness().await;
    let status =
        if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if readiness.is_ready() { "ready" } else { "not_ready" },
        "backend": state.store().backend().as_str(),
        "database": readiness.database,
        "migrations_current": readiness.migrations_current,
        "pending_migrations": readiness.pending_migrations,
    });
    (status, Json(body))
}
