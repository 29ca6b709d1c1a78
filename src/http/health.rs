//! Health probes: `GET /healthz` (the process is up) and `GET /readyz` (the database answers and
//! its migrations are current; 503 otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

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
