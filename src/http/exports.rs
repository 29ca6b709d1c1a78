//! Exports over REST: `GET /boards/{board}/export?format=csv|json`, for anyone who may read
//! the board and its items (API keys need `boards:read` and `items:read`). A board of another
//! organization, or one the caller is not on, is 404, as for `GET /boards/{board}`. Every
//! export is audited `board.exported`. What a CSV holds is `exports::board`'s.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use boardroom_actors::audit::AuditAction;
use boardroom_protocol::exports::{BoardExportFormat, BoardExportQuery};
use boardroom_protocol::Scope;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiPath, ApiQuery};
use super::AppState;
use crate::access::requester_for;
use crate::auth::Caller;
use crate::error::{board_error, ApiError, ApiResult};
use crate::exports;
use crate::wire::boards as to_wire;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(board_export))
}

#[utoipa::path(get, path = "/boards/{board}/export", tag = "boards",
        operation_id = "export_board",
    summary = "The board as a download: CSV (one row per item, values as people read them) or \
               JSON (its snapshot)",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        boardroom_protocol::exports::BoardExportQuery),
    security(("session" = []), ("api_key" = ["boards:read", "items:read"]), ("cookie" = [])),
    responses((status = 200, description = "The export, as an attachment",
        content((String = "text/csv"),
            (boardroom_protocol::boards::Snapshot = "application/json"))),
        crate::http::openapi::ReadErrors))]
async fn board_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<BoardExportQuery>,
) -> ApiResult<Response> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    // Without `items:read` the snapshot would be an empty board, which reads as a lie.
    caller.require_scope(Scope::BoardsRead)?;
    caller.require_scope(Scope::ItemsRead)?;
    let snapshot = state.boards().snapshot(org, board, requester).await.map_err(board_error)?;
    let (body, content_type, extension) = match query.format {
        BoardExportFormat::Json => {
            let body =
                serde_json::to_vec(&to_wire::snapshot(&snapshot)).map_err(ApiError::internal)?;
            (body, "application/json", "json")
        }
        BoardExportFormat::Csv => {
            let names: HashMap<Uuid, String> = state
                .store()
                .tenant(org)
                .members()
                .await?
                .into_iter()
                .map(|member| (member.user_id, member.name))
                .collect();
            let body = exports::board::csv(&snapshot, &names).map_err(ApiError::internal)?;
            (body, "text/csv; charset=utf-8", "csv")
        }
    };
    let format = match query.format {
        BoardExportFormat::Csv => "csv",
        BoardExportFormat::Json => "json",
    };
    state.auth().audit(AuditAction::BoardExported, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(board.to_string());
        e.metadata = json!({ "format": format, "items": snapshot.items.len() });
    });
    // The file is named by the board's id: its name is someone's text, kept out of a header.
    let disposition = format!("attachment; filename=\"board-{board}.{extension}\"");
    Ok(([(CONTENT_TYPE, content_type.to_owned()), (CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}
