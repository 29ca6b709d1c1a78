//! Exports over REST. `POST /me/exports` asks for a personal data export (sessions only; one
//! pending at a time, 409 past that; audited `data.exported`), built in the background;
//! `GET /me/exports/{id}` says where it stands and `…/download` serves the zip, to its owner
//! alone (anyone else, and everyone once it expired, gets 404).
//!
//! `POST /orgs/{org}/exports` asks for an export of the whole organization (its admins'
//! sessions only: a member is 403, another organization 404; one pending per organization, 409
//! past that; audited `org.exported`); `GET /orgs/{org}/exports/{id}` and `…/download` as
//! above, to the admin who asked for it alone, and only while they are still an admin there
//! (another admin, like anyone else, gets 404: an export is one person's copy of the data, not
//! the organization's). Downloads are decrypted from the vault as they stream.
//!
//! `GET /boards/{board}/export?format=csv|json`, for anyone who may read
//! the board and its items (API keys need `boards:read` and `items:read`). A board of another
//! organization, or one the caller is not on, is 404, as for `GET /boards/{board}`. Every
//! export is audited `board.exported`. What a CSV holds is `exports::board`'s.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::exports::{BoardExportFormat, BoardExportQuery, Export};
use boardroom_protocol::Scope;
use futures::TryStreamExt;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiPath, ApiQuery};
use super::AppState;
use crate::access::requester_for;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::exports;
use crate::storage::{now, ExportRow, StorageError};
use crate::wire::boards as to_wire;
use crate::wire::exports as to_wire_export;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board_export))
        .routes(routes!(create_personal_export))
        .routes(routes!(get_personal_export))
        .routes(routes!(download_personal_export))
        .routes(routes!(create_org_export))
        .routes(routes!(get_org_export))
        .routes(routes!(download_org_export))
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
    let snapshot = state.boards().snapshot(org, board, requester).await?;
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

#[utoipa::path(post, path = "/me/exports", tag = "exports", operation_id = "create_personal_export",
    summary = "Ask for an export of your data (GDPR access and portability); built in the \
               background, one at a time",
    security(("session" = []), ("cookie" = [])),
    responses((status = 202, description = "Accepted; poll it until `ready`",
        body = boardroom_protocol::exports::Export), crate::http::openapi::WriteErrors))]
async fn create_personal_export(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Response> {
    let (user_id, _) = caller.require_session()?;
    let row = state.exports().request_personal(user_id).await.map_err(|err| match err {
        StorageError::Unique(_) => {
            ApiError::conflict("an export of your data is already being built; wait for it")
        }
        other => other.into(),
    })?;
    state.auth().audit(AuditAction::DataExported, &caller.meta, |e| {
        e.actor_id = Some(user_id);
        e.target = Some(user_id.to_string());
        e.metadata = json!({ "export_id": row.id, "scope": "personal" });
    });
    Ok((StatusCode::ACCEPTED, Json(to_wire_export::export(&row))).into_response())
}

/// The caller's own export `id`; anyone else's, or an expired one, is 404.
async fn own_export(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<ExportRow> {
    let (user_id, _) = caller.require_session()?;
    state
        .store()
        .export_of(id, user_id, None, now())
        .await?
        .ok_or_else(|| ApiError::not_found("export"))
}

#[utoipa::path(get, path = "/me/exports/{export}", tag = "exports",
        operation_id = "get_personal_export",
    summary = "Where your export stands (yours only; expired ones are 404)",
    params(("export" = uuid::Uuid, Path, description = "The export")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The export",
        body = boardroom_protocol::exports::Export), crate::http::openapi::ReadErrors))]
async fn get_personal_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Export>> {
    Ok(Json(to_wire_export::export(&own_export(&state, &caller, id).await?)))
}

#[utoipa::path(get, path = "/me/exports/{export}/download", tag = "exports",
        operation_id = "download_personal_export",
    summary = "Your export: a zip of JSON files (yours only; 409 until it is ready)",
    params(("export" = uuid::Uuid, Path, description = "The export")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The zip, as an attachment",
        content((Vec<u8> = "application/zip"))),
        crate::http::openapi::DownloadErrors))]
async fn download_personal_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let row = own_export(&state, &caller, id).await?;
    serve(&state, &row).await
}

/// A ready export's zip, decrypted as it streams; 409 while pending or once failed.
async fn serve(state: &AppState, row: &ExportRow) -> ApiResult<Response> {
    match row.status.as_str() {
        "ready" => {}
        "pending" => return Err(ApiError::conflict("the export is still being built")),
        _ => return Err(ApiError::conflict("the export failed; ask for a new one")),
    }
    let stream = state.exports().open(row).await?;
    let export = row.id;
    let stream = stream.inspect_err(move |err| {
        tracing::error!(%export, error = %err, "an export failed while streaming; answer cut");
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Some(size) = row.size {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    }
    let disposition = format!("attachment; filename=\"boardroom-export-{export}.zip\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

#[utoipa::path(post, path = "/orgs/{org}/exports", tag = "exports",
        operation_id = "create_org_export",
    summary = "Ask for an export of the whole organization (admins); built in the background, \
               one at a time per organization",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 202, description = "Accepted; poll it until `ready`",
        body = boardroom_protocol::exports::Export), crate::http::openapi::WriteErrors))]
async fn create_org_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let (user_id, _) = caller.require_session()?;
    state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let row = state.exports().request_org(org, user_id).await.map_err(|err| match err {
        StorageError::Unique(_) => {
            ApiError::conflict("an export of this organization is already being built; wait for it")
        }
        other => other.into(),
    })?;
    state.auth().audit(AuditAction::OrgExported, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(user_id);
        e.target = Some(org.to_string());
        e.metadata = json!({ "export_id": row.id, "scope": "organization" });
    });
    Ok((StatusCode::ACCEPTED, Json(to_wire_export::export(&row))).into_response())
}

/// The organization export `id`, if the caller asked for it and is still an admin of `org`;
/// anything else (another admin's, another organization's, an expired one) is 404.
async fn org_export(
    state: &AppState,
    caller: &Caller,
    org: Uuid,
    id: Uuid,
) -> ApiResult<ExportRow> {
    let (user_id, _) = caller.require_session()?;
    state.auth().org_access(caller, org, OrgRole::Admin).await?;
    state
        .store()
        .export_of(id, user_id, Some(org), now())
        .await?
        .ok_or_else(|| ApiError::not_found("export"))
}

#[utoipa::path(get, path = "/orgs/{org}/exports/{export}", tag = "exports",
        operation_id = "get_org_export",
    summary = "Where an organization export stands (the admin who asked for it only; expired \
               ones are 404)",
    params(("org" = uuid::Uuid, Path, description = "The organization"),
        ("export" = uuid::Uuid, Path, description = "The export")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The export",
        body = boardroom_protocol::exports::Export), crate::http::openapi::ReadErrors))]
async fn get_org_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<Export>> {
    Ok(Json(to_wire_export::export(&org_export(&state, &caller, org, id).await?)))
}

#[utoipa::path(get, path = "/orgs/{org}/exports/{export}/download", tag = "exports",
        operation_id = "download_org_export",
    summary = "An organization export: a zip of JSON files (the admin who asked for it only; \
               409 until it is ready)",
    params(("org" = uuid::Uuid, Path, description = "The organization"),
        ("export" = uuid::Uuid, Path, description = "The export")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The zip, as an attachment",
        content((Vec<u8> = "application/zip"))),
        crate::http::openapi::DownloadErrors))]
async fn download_org_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let row = org_export(&state, &caller, org, id).await?;
    serve(&state, &row).await
}
