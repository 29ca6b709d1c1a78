//! Health probes: `GET /healthz` (the process is up) and `GET /readyz` (the database answers and
//! its migrations are current; 503 otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use boardroom_protocol::health::{Backend, Health, Liveness, Readiness, ReadyStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::storage;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz",
    summary = "Liveness: the process is up",
    security(()),
    responses((status = 200, description = "Up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: Liveness::Ok })
}

#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz",
    summary = "Readiness: the database answers and its migrations are current",
    security(()),
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let readiness = state.store().readiness().await;
    let status =
        if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Readiness {
        status: if readiness.is_ready() { ReadyStatus::Ready } else { ReadyStatus::NotReady },
        backend: match state.store().backend() {
            storage::Backend::Sqlite => Backend::Sqlite,
            storage::Backend::Postgres => Backend::Postgres,
        },
        database: readiness.database,
        migrations_current: readiness.migrations_current,
        pending_migrations: readiness.pending_migrations,
    };
    (status, Json(body))
}
