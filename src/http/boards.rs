//! Boards over REST: `/orgs/{org}/boards` and everything under `/boards/{board}`.
//!
//! Handlers are thin: they establish who is asking (organization role, key scopes), hand the
//! command or query to the board's actor through the registry, and map the answer. Every rule
//! (roles, scopes, validation, ordering, versions) lives in `boardroom_actors::board`. A board
//! of another organization, or one the caller is not on, is 404.
//!
//! A POST with an `Idempotency-Key` header returns the first result when retried within 24
//! hours (`server::IDEMPOTENCY_WINDOW`). A PATCH of an
//! item with `If-Match: "<version>"` (or `expected_version` in the body) is refused with 409
//! `version_conflict` when the item has moved on.

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boardroom_actors::board::{BoardQuery, CommandOutput, Requester};
use boardroom_actors::domain::{BoardCommand, EventData};
use boardroom_actors::plans::Resource;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::boards as wire;
use boardroom_protocol::events::{Event, EventLog, EventsQuery};
use boardroom_protocol::{ErrorCode, Scope};
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::access::{requester_for, scopes_of};
use crate::auth::Caller;
use crate::commands;
use crate::error::{ApiError, ApiResult};
use crate::wire::{boards as to_wire, events as events_to_wire};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_boards, create_board))
        .routes(routes!(snapshot, update_board, delete_board))
        .routes(routes!(members))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(create_column))
        .routes(routes!(update_column, delete_column))
        .routes(routes!(create_group))
        .routes(routes!(update_group, delete_group))
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item, update_item, delete_item))
        .routes(routes!(move_item))
        .routes(routes!(archive_item))
        .routes(routes!(list_updates, create_update))
        .routes(routes!(edit_update, delete_update))
        .routes(routes!(events))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

async fn run(
    state: &AppState,
    caller: &Caller,
    board: Uuid,
    command: BoardCommand,
    idempotency: Option<String>,
) -> ApiResult<CommandOutput> {
    let (org, requester) = requester_for(state, caller, board).await?;
    // A key names one request: the same key sent with another kind of write is a new request,
    // not a retry of the first (whose answer, a group say, would come back to an item's POST).
    let idempotency = idempotency.map(|key| format!("{}:{key}", write_name(&command)));
    Ok(state.boards().command(org, board, requester, command, idempotency).await?)
}

/// The kind of a write that takes an `Idempotency-Key`, scoping the key.
fn write_name(command: &BoardCommand) -> &'static str {
    match command {
        BoardCommand::CreateColumn { .. } => "create_column",
        BoardCommand::CreateGroup { .. } => "create_group",
        BoardCommand::CreateItem { .. } => "create_item",
        BoardCommand::CreateUpdate { .. } => "create_update",
        _ => "write",
    }
}

/// A command's answer: its event's data, as the wire carries it, serialized straight into the
/// body.
fn answer(board: Uuid, output: &CommandOutput) -> Json<events_to_wire::Payload> {
    Json(events_to_wire::Payload::of(board, &output.data))
}

fn created(board: Uuid, output: CommandOutput) -> Response {
    (StatusCode::CREATED, answer(board, &output)).into_response()
}

fn ok(board: Uuid, output: CommandOutput) -> Response {
    answer(board, &output).into_response()
}

/// An item's answer, with its version as the `ETag`.
fn with_etag(answer: impl IntoResponse, version: Option<i64>) -> Response {
    let mut response = answer.into_response();
    let etag = version.map(|v| format!("\"{v}\""));
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(axum::http::header::ETAG, value);
    }
    response
}

/// A command on an item answered with the item, its version as the `ETag`.
fn item_answer(board: Uuid, output: CommandOutput) -> Response {
    let version = output.data.item().map(|item| item.version);
    with_etag(answer(board, &output), version)
}

// ----- boards -------------------------------------------------------------------------------

#[utoipa::path(post, path = "/orgs/{org}/boards", tag = "boards", operation_id = "create_board",
    summary = "Create a board; the caller owns it",
    params(("org" = uuid::Uuid, Path, description = "The organization"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key within 24 hours answers the first result")),
    request_body = boardroom_protocol::boards::CreateBoard,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created, with its first group",
        body = boardroom_protocol::boards::CreatedBoard), crate::http::openapi::BoardCreateErrors))]
async fn create_board(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::CreateBoard>,
) -> ApiResult<Response> {
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    caller.require_scope(Scope::BoardsWrite)?;
    let key = idempotency_key(&headers)?;
    let tenant = state.store().tenant(org);
    if let Some(key) = &key {
        if let Some(first) = tenant.idempotent_create(caller.user_id(), key).await? {
            return Ok((StatusCode::CREATED, Json(first)).into_response());
        }
    }
    let requester = Requester {
        user_id: caller.user_id(),
        org_role: access.role,
        scopes: scopes_of(&caller.principal).map(<[Scope]>::to_vec),
    };
    // Held until the board is committed, so a concurrent creation counts it.
    let _admission = state.auth().orgs().admit(org, Resource::Boards, 1).await?;
    let output = state.boards().create(org, requester, body.name, body.description).await?;
    let EventData::BoardCreated { board, group, .. } = &output.data else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "a board's creation answered {:?}",
            output.data.kind()
        )));
    };
    let answer = to_wire::created_board(board, group, output.seq);
    let answer = serde_json::to_value(&answer).map_err(ApiError::internal)?;
    if let Some(key) = &key {
        if !tenant.record_idempotent_create(caller.user_id(), key, &answer).await? {
            // A concurrent retry recorded first; answer what it answered.
            if let Some(first) = tenant.idempotent_create(caller.user_id(), key).await? {
                return Ok((StatusCode::CREATED, Json(first)).into_response());
            }
        }
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(get, path = "/orgs/{org}/boards", tag = "boards", operation_id = "list_boards",
    summary = "Boards of the organization the caller may see",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("api_key" = ["boards:read"]), ("cookie" = [])),
    responses((status = 200, description = "The boards",
        body = boardroom_protocol::boards::BoardList), crate::http::openapi::ReadErrors))]
async fn list_boards(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<wire::BoardList>> {
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    caller.require_scope(Scope::BoardsRead)?;
    let boards = state
        .store()
        .tenant(org)
        .boards_for(caller.user_id(), access.role == OrgRole::Admin)
        .await?;
    let boards = boards.iter().map(|b| to_wire::board_with_role(&b.board, b.role)).collect();
    Ok(Json(wire::BoardList { boards }))
}

#[utoipa::path(get, path = "/boards/{board}", tag = "boards", operation_id = "get_board",
    summary = "The board's snapshot: columns, groups, items (with `items:read`) and `seq`",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    security(("session" = []), ("api_key" = ["boards:read"]), ("cookie" = [])),
    responses((status = 200, description = "The snapshot",
        body = boardroom_protocol::boards::Snapshot), crate::http::openapi::ReadErrors))]
async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
) -> ApiResult<Json<wire::Snapshot>> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    let snapshot = state.boards().snapshot(org, board, requester).await?;
    Ok(Json(to_wire::snapshot(&snapshot)))
}

#[utoipa::path(patch, path = "/boards/{board}", tag = "boards", operation_id = "update_board",
    summary = "Rename or re-describe the board (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    request_body = boardroom_protocol::boards::UpdateBoard,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated", body = boardroom_protocol::boards::Board),
        crate::http::openapi::BoardWriteErrors))]
async fn update_board(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::UpdateBoard>,
) -> ApiResult<Response> {
    Ok(ok(board, run(&state, &caller, board, commands::update_board(body), None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}", tag = "boards", operation_id = "delete_board",
    summary = "Delete the board (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_board(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::delete_board(), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- members ------------------------------------------------------------------------------

#[utoipa::path(get, path = "/boards/{board}/members", tag = "boards",
        operation_id = "list_board_members",
    summary = "The board's members",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    security(("session" = []), ("api_key" = ["boards:read"]), ("cookie" = [])),
    responses((status = 200, description = "The members",
        body = boardroom_protocol::boards::BoardMembers), crate::http::openapi::ReadErrors))]
async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
) -> ApiResult<Json<wire::BoardMembers>> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    let members = state.boards().members(org, board, requester).await?;
    Ok(Json(to_wire::members(&members)))
}

#[utoipa::path(put, path = "/boards/{board}/members/{user}", tag = "boards",
        operation_id = "set_board_member",
    summary = "Add a board member or change their role (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("user" = uuid::Uuid, Path,
        description = "The user")),
    request_body = boardroom_protocol::boards::SetMember,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Set",
        body = boardroom_protocol::events::MemberChanged), crate::http::openapi::BoardWriteErrors))]
async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, user)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::SetMember>,
) -> ApiResult<Response> {
    let command = commands::set_member(user, body)?;
    Ok(ok(board, run(&state, &caller, board, command, None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}/members/{user}", tag = "boards",
        operation_id = "remove_board_member",
    summary = "Remove a board member (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("user" = uuid::Uuid, Path,
        description = "The user")),
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Removed"), crate::http::openapi::BoardWriteErrors))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, user)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::remove_member(user), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- columns ------------------------------------------------------------------------------

#[utoipa::path(post, path = "/boards/{board}/columns", tag = "boards",
        operation_id = "create_column",
    summary = "Add a column (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key within 24 hours answers the first result")),
    request_body = boardroom_protocol::boards::CreateColumn,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created", body = boardroom_protocol::boards::Column),
        crate::http::openapi::BoardWriteErrors))]
async fn create_column(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(board): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::CreateColumn>,
) -> ApiResult<Response> {
    let command = commands::create_column(body)?;
    Ok(created(board, run(&state, &caller, board, command, idempotency_key(&headers)?).await?))
}

#[utoipa::path(patch, path = "/boards/{board}/columns/{column}", tag = "boards",
        operation_id = "update_column",
    summary = "Retitle, re-set or move a column (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("column" = uuid::Uuid, Path,
        description = "The column")),
    request_body = boardroom_protocol::boards::UpdateColumn,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated", body = boardroom_protocol::boards::Column),
        crate::http::openapi::BoardWriteErrors))]
async fn update_column(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, column)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::UpdateColumn>,
) -> ApiResult<Response> {
    Ok(ok(board, run(&state, &caller, board, commands::update_column(column, body)?, None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}/columns/{column}", tag = "boards",
        operation_id = "delete_column",
    summary = "Delete a column and its values (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("column" = uuid::Uuid, Path,
        description = "The column")),
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_column(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, column)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::delete_column(column), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- groups -------------------------------------------------------------------------------

#[utoipa::path(post, path = "/boards/{board}/groups", tag = "boards", operation_id = "create_group",
    summary = "Add a group (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key within 24 hours answers the first result")),
    request_body = boardroom_protocol::boards::CreateGroup,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created", body = boardroom_protocol::boards::Group),
        crate::http::openapi::BoardWriteErrors))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(board): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::CreateGroup>,
) -> ApiResult<Response> {
    let command = commands::create_group(body);
    Ok(created(board, run(&state, &caller, board, command, idempotency_key(&headers)?).await?))
}

#[utoipa::path(patch, path = "/boards/{board}/groups/{group}", tag = "boards",
        operation_id = "update_group",
    summary = "Retitle, recolor or move a group (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("group" = uuid::Uuid, Path,
        description = "The group")),
    request_body = boardroom_protocol::boards::UpdateGroup,
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated", body = boardroom_protocol::boards::Group),
        crate::http::openapi::BoardWriteErrors))]
async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, group)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::UpdateGroup>,
) -> ApiResult<Response> {
    Ok(ok(board, run(&state, &caller, board, commands::update_group(group, body), None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}/groups/{group}", tag = "boards",
        operation_id = "delete_group",
    summary = "Delete a group and its items (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("group" = uuid::Uuid, Path,
        description = "The group")),
    security(("session" = []), ("api_key" = ["boards:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, group)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::delete_group(group), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- items --------------------------------------------------------------------------------

#[utoipa::path(post, path = "/boards/{board}/items", tag = "items", operation_id = "create_item",
    summary = "Create an item (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key within 24 hours answers the first result")),
    request_body = boardroom_protocol::boards::CreateItem,
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created", body = boardroom_protocol::boards::Item),
        crate::http::openapi::BoardWriteErrors))]
async fn create_item(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(board): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::CreateItem>,
) -> ApiResult<Response> {
    let command = commands::create_item(body);
    Ok(created(board, run(&state, &caller, board, command, idempotency_key(&headers)?).await?))
}

#[utoipa::path(get, path = "/boards/{board}/items", tag = "items", operation_id = "list_items",
    summary = "The board's items, a page at a time",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        boardroom_protocol::boards::ItemsQuery),
    security(("session" = []), ("api_key" = ["items:read"]), ("cookie" = [])),
    responses((status = 200, description = "One page",
        body = boardroom_protocol::boards::ItemPage), crate::http::openapi::ReadErrors))]
async fn list_items(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<wire::ItemsQuery>,
) -> ApiResult<Json<wire::ItemPage>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let query = BoardQuery::Items { group_id: query.group_id, after: query.cursor, limit };
    let (org, requester) = requester_for(&state, &caller, board).await?;
    let page = state.boards().items(org, board, requester, query).await?;
    Ok(Json(to_wire::item_page(board, &page)))
}

#[utoipa::path(get, path = "/boards/{board}/items/{item}", tag = "items", operation_id = "get_item",
    summary = "One item; its `ETag` is its version",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    security(("session" = []), ("api_key" = ["items:read"]), ("cookie" = [])),
    responses((status = 200, description = "The item", body = boardroom_protocol::boards::Item),
        crate::http::openapi::ReadErrors))]
async fn get_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    let item = state.boards().item(org, board, requester, item).await?;
    Ok(with_etag(Json(to_wire::item(board, &item)), Some(item.version)))
}

/// `If-Match: "7"` (or `7`, or a weak `W/"7"`) names the version a change expects; `*` matches
/// any version (the item must exist, as it must anyway).
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must be an item version, like \"3\""))
}

#[utoipa::path(patch, path = "/boards/{board}/items/{item}", tag = "items",
        operation_id = "update_item",
    summary = "Rename an item or set its values (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item"), ("If-Match" = Option<String>, Header,
        description = "`\"<version>\"`: refuse with 409 `version_conflict` unless the item is at this version")),
    request_body = boardroom_protocol::boards::UpdateItem,
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated, with the values this change set",
        body = boardroom_protocol::events::ItemUpdated), crate::http::openapi::BoardWriteErrors))]
async fn update_item(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::UpdateItem>,
) -> ApiResult<Response> {
    let command = commands::update_item(item, body, if_match(&headers)?)?;
    Ok(item_answer(board, run(&state, &caller, board, command, None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}/items/{item}", tag = "items",
        operation_id = "delete_item",
    summary = "Delete an item (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::delete_item(item), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/boards/{board}/items/{item}/move", tag = "items",
        operation_id = "move_item",
    summary = "Move an item within or across groups (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    request_body = boardroom_protocol::boards::MoveItem,
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Moved, with the group it left",
        body = boardroom_protocol::events::ItemMoved), crate::http::openapi::BoardWriteErrors))]
async fn move_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::MoveItem>,
) -> ApiResult<Response> {
    let command = commands::move_item(item, body);
    Ok(item_answer(board, run(&state, &caller, board, command, None).await?))
}

#[utoipa::path(post, path = "/boards/{board}/items/{item}/archive", tag = "items",
        operation_id = "archive_item",
    summary = "Archive or restore an item (editors); the body may be empty",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    request_body = Option<boardroom_protocol::boards::ArchiveItem>,
    security(("session" = []), ("api_key" = ["items:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Archived or restored",
        body = boardroom_protocol::boards::Item), crate::http::openapi::BoardWriteErrors))]
async fn archive_item(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|e| super::extract::body_read_error(&e))?;
    let body: wire::ArchiveItem = if body.is_empty() {
        wire::ArchiveItem::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::MalformedBody, format!("invalid body: {e}")))?
    };
    let command = commands::archive_item(item, body);
    Ok(item_answer(board, run(&state, &caller, board, command, None).await?))
}

// ----- updates (comments) -------------------------------------------------------------------

#[utoipa::path(post, path = "/boards/{board}/items/{item}/updates", tag = "updates",
        operation_id = "create_update",
    summary = "Comment on an item, or reply to a comment (editors)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item"), ("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key within 24 hours answers the first result")),
    request_body = boardroom_protocol::boards::CreateUpdate,
    security(("session" = []), ("api_key" = ["updates:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created", body = boardroom_protocol::boards::Update),
        crate::http::openapi::BoardWriteErrors))]
async fn create_update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::CreateUpdate>,
) -> ApiResult<Response> {
    let command = commands::create_update(item, body);
    Ok(created(board, run(&state, &caller, board, command, idempotency_key(&headers)?).await?))
}

#[utoipa::path(get, path = "/boards/{board}/items/{item}/updates", tag = "updates",
        operation_id = "list_updates",
    summary = "An item's updates, oldest first",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item")),
    security(("session" = []), ("api_key" = ["updates:read"]), ("cookie" = [])),
    responses((status = 200, description = "The updates",
        body = boardroom_protocol::boards::UpdateList), crate::http::openapi::ReadErrors))]
async fn list_updates(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<wire::UpdateList>> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    state.boards().access(org, board, requester.clone(), Scope::UpdatesRead).await?;
    // The item must be on this board and visible: read it through the actor first.
    let items_requester = Requester { scopes: None, ..requester };
    state.boards().item(org, board, items_requester, item).await?;
    let updates = state.store().tenant(org).updates(board, item).await?;
    Ok(Json(to_wire::updates(board, &updates)))
}

#[utoipa::path(patch, path = "/boards/{board}/items/{item}/updates/{update}", tag = "updates",
        operation_id = "edit_update",
    summary = "Edit one's own update",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item"), ("update" = uuid::Uuid, Path,
        description = "The update (comment)")),
    request_body = boardroom_protocol::boards::EditUpdate,
    security(("session" = []), ("api_key" = ["updates:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Edited", body = boardroom_protocol::boards::Update),
        crate::http::openapi::BoardWriteErrors))]
async fn edit_update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item, update)): ApiPath<(Uuid, Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::EditUpdate>,
) -> ApiResult<Response> {
    let command = commands::edit_update(item, update, body);
    Ok(ok(board, run(&state, &caller, board, command, None).await?))
}

#[utoipa::path(delete, path = "/boards/{board}/items/{item}/updates/{update}", tag = "updates",
        operation_id = "delete_update",
    summary = "Delete an update (its author, or owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("item" = uuid::Uuid, Path,
        description = "The item"), ("update" = uuid::Uuid, Path,
        description = "The update (comment)")),
    security(("session" = []), ("api_key" = ["updates:write"]), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::BoardWriteErrors))]
async fn delete_update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, item, update)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    run(&state, &caller, board, commands::delete_update(item, update), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- the event log ------------------------------------------------------------------------

#[utoipa::path(get, path = "/boards/{board}/events", tag = "boards", operation_id = "board_events",
    summary = "The board's event log after a `seq` (the REST fallback of the live feed), filtered by the key's scopes",
    params(("board" = uuid::Uuid, Path, description = "The board"),
        boardroom_protocol::events::EventsQuery),
    security(("session" = []), ("api_key" = ["boards:read"]), ("cookie" = [])),
    responses((status = 200, description = "One page",
        body = boardroom_protocol::events::EventLog), crate::http::openapi::ReadErrors))]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventLog>> {
    let (org, requester) = requester_for(&state, &caller, board).await?;
    state.boards().access(org, board, requester.clone(), Scope::BoardsRead).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let page = state
        .store()
        .tenant(org)
        .board_events_page(
            board,
            query.after.unwrap_or(0).max(0),
            limit,
            i64::from(state.settings().events_page_bytes),
        )
        .await?;
    // A key sees item and update events only with their read scopes; `last_seq` still moves
    // past the ones it may not see. The rows move into the answer: a page is held once.
    let last_seq = page.rows.last().map(|e| e.seq);
    let events = page
        .rows
        .into_iter()
        .filter(|e| requester.may_see(&e.kind))
        .map(|e| {
            let data = events_to_wire::decode(&e.kind, e.payload.0).map_err(|err| {
                ApiError::internal(anyhow::anyhow!("event {} of board {board}: {err}", e.seq))
            })?;
            Ok(events_to_wire::logged(e.seq, data, e.actor, e.created_at))
        })
        .collect::<ApiResult<Vec<Event>>>()?;
    Ok(Json(EventLog { events, last_seq, has_more: page.more }))
}
