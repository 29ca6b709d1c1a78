//! `GET /orgs/{org}/audit-log`: the organization's audit rows, newest first, for admins.

use axum::extract::State;
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::audit::{AuditLog, AuditQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiPath, ApiQuery};
use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_log))
}

#[utoipa::path(get, path = "/orgs/{org}/audit-log", tag = "audit", operation_id = "audit_log",
    summary = "The organization's audit log, newest first (admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization"),
        boardroom_protocol::audit::AuditQuery),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "One page",
        body = boardroom_protocol::audit::AuditLog), crate::http::openapi::ReadErrors))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditLog>> {
    caller.require_session()?;
    state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    if let Some(action) = &query.action {
        if AuditAction::parse(action).is_none() {
            return Err(ApiError::validation(format!("unknown action {action:?}")));
        }
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let rows = state
        .store()
        .tenant(org)
        .audit_entries(query.cursor, query.action.as_deref(), limit)
        .await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.seq)).flatten();
    Ok(Json(crate::wire::audit::page(rows, next_cursor)))
}
