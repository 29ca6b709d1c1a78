//! Webhooks over REST: `/boards/{board}/webhooks` and everything under it.
//!
//! Only the board's owners (and org admins, who act as owners) manage webhooks; a board the
//! caller cannot see, or one of another organization, is 404, as on every board route. The URL
//! is judged by the SSRF guard at creation and on change (422 `validation_failed`, the guard's
//! reason first in the message); delivery judges it again. The signing secret is in the answer
//! of the create and of `rotate-secret` only.
//!
//! A webhook sees no more than its creator may: creating one, or changing its URL or kinds or
//! enabling it, is refused with 403 `insufficient_scope` when the caller's key could not read
//! every event kind it subscribes to (`webhook::scope_lacking`, the rule of sockets and
//! `GET /events`), and otherwise records the caller (and key) as the creator whose access the
//! deliveries ride on; a caller who reaches the board only through the superadmin bypass is
//! no member to ride on and is refused (403). Changes are audited (`webhook.updated`, hosts
//! only: URLs carry tokens).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::board::Requester;
use boardroom_actors::domain::{BoardError, EventKind};
use boardroom_actors::plans::Resource;
use boardroom_actors::webhook::{may_own, scope_lacking};
use boardroom_protocol::webhooks::{
    CreateWebhook, CreatedWebhook, DeliveriesQuery, DeliveryList, Redelivery, RotatedSecret,
    UpdateWebhook, Webhook, WebhookList,
};
use boardroom_protocol::ErrorCode;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::access::requester_for;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::ssrf::Guard;
use crate::storage::{NewWebhook, StorageError, WebhookChanges, WEBHOOK_LIMIT_REACHED};
use crate::webhooks::{generate_secret, RETRY_WINDOW, ROTATION_OVERLAP};
use crate::wire::webhooks as to_wire;

/// Longest webhook URL accepted.
const MAX_URL_LEN: usize = 2048;

/// Most webhooks one board may have: each one multiplies the board's outbound traffic.
pub const MAX_WEBHOOKS_PER_BOARD: i64 = 20;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(rotate_secret))
}

/// The board's organization and the caller there, once the caller is known to own the board.
async fn owner_of(state: &AppState, caller: &Caller, board: Uuid) -> ApiResult<(Uuid, Requester)> {
    let (org, requester) = requester_for(state, caller, board).await?;
    may_own(state.boards(), org, board, &requester, &[]).await.map_err(|err| match err {
        BoardError::Forbidden(_) => {
            ApiError::forbidden("managing webhooks needs the board's owner role")
        }
        other => other.into(),
    })?;
    Ok((org, requester))
}

/// Refuses kinds the caller could not read themselves: a webhook sees no more than its creator.
fn check_scope(requester: &Requester, events: &[String]) -> ApiResult<()> {
    match scope_lacking(requester, events) {
        Some(scope) => Err(ApiError::new(
            ErrorCode::InsufficientScope,
            format!(
                "this API key lacks the {scope} scope, which the subscribed event kinds need; \
                 a webhook may receive only what its creator may read"
            ),
        )),
        None => Ok(()),
    }
}

/// A webhook rides on a member's access: the superadmin bypass reaches the board, but it is no
/// membership the webhook actor could go on checking, which would disable the webhook at its
/// first delivery. Refused up front instead.
async fn check_member(state: &AppState, org: Uuid, caller: &Caller) -> ApiResult<()> {
    match state.auth().orgs().role(org, caller.user_id()).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::forbidden(
            "a webhook must belong to a member of the organization; the superadmin bypass cannot \
             create or take over one",
        )),
    }
}

/// The creator to record: the user, and the key if one was used.
fn creator_of(caller: &Caller) -> (Uuid, Option<Uuid>) {
    match &caller.principal {
        Principal::ApiKey(grant) => (grant.user_id, Some(grant.key_id)),
        Principal::User { user_id, .. } => (*user_id, None),
    }
}

/// The host of a checked URL, for audit rows: never the path or query, which carry tokens.
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned))
}

fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    if url.len() > MAX_URL_LEN {
        return Err(ApiError::validation(format!("url must be at most {MAX_URL_LEN} characters")));
    }
    let target = Guard::system(state.settings().webhook_allow.clone()).validate(url)?;
    Ok(target.url().to_string())
}

fn check_events(events: &[String]) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Err(ApiError::validation("events must name at least one event kind, or \"*\""));
    }
    let mut kept: Vec<String> = Vec::new();
    for kind in events {
        if kind != "*" && EventKind::parse(kind).is_none() {
            return Err(ApiError::validation(format!("events: unknown event kind {kind:?}")));
        }
        if !kept.contains(kind) {
            kept.push(kind.clone());
        }
    }
    Ok(kept)
}

#[utoipa::path(post, path = "/boards/{board}/webhooks", tag = "webhooks",
        operation_id = "create_webhook",
    summary = "Create a webhook (owners); its secret is answered this once",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    request_body = boardroom_protocol::webhooks::CreateWebhook,
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created",
        body = boardroom_protocol::webhooks::CreatedWebhook),
        crate::http::openapi::PlanWriteErrors))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let (org, requester) = owner_of(&state, &caller, board).await?;
    let url = check_url(&state, &body.url)?;
    let events = check_events(&body.events)?;
    check_scope(&requester, &events)?;
    check_member(&state, org, &caller).await?;
    let _admission = state.auth().orgs().admit(org, Resource::Webhooks, 1).await?;
    let tenant = state.store().tenant(org);
    let secret = generate_secret();
    let (created_by, created_by_key) = creator_of(&caller);
    let row = tenant
        .create_webhook(&NewWebhook {
            board_id: board,
            url: &url,
            events: &events,
            secret: &secret,
            created_by,
            created_by_key,
            max_per_board: MAX_WEBHOOKS_PER_BOARD,
        })
        .await
        .map_err(|e| match e {
            StorageError::NotFound => ApiError::not_found("board"),
            StorageError::Rule(WEBHOOK_LIMIT_REACHED) => ApiError::validation(format!(
                "a board can have at most {MAX_WEBHOOKS_PER_BOARD} webhooks"
            )),
            other => other.into(),
        })?;
    state.auth().audit(AuditAction::WebhookCreated, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(row.id.to_string());
        e.metadata = json!({
            "board_id": board,
            "host": host_of(&row.url),
            "events": row.events.0,
            "created_by_key": created_by_key,
        });
    });
    Ok((StatusCode::CREATED, Json(to_wire::created(&row, secret))))
}

#[utoipa::path(get, path = "/boards/{board}/webhooks", tag = "webhooks",
        operation_id = "list_webhooks",
    summary = "The board's webhooks (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board")),
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The webhooks, without secrets",
        body = boardroom_protocol::webhooks::WebhookList), crate::http::openapi::ReadErrors))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(board): ApiPath<Uuid>,
) -> ApiResult<Json<WebhookList>> {
    let (org, _) = owner_of(&state, &caller, board).await?;
    let rows = state.store().tenant(org).webhooks(board).await?;
    Ok(Json(to_wire::list(&rows)))
}

#[utoipa::path(patch, path = "/boards/{board}/webhooks/{webhook}", tag = "webhooks",
        operation_id = "update_webhook",
    summary = "Change a webhook's URL, kinds or state (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("webhook" = uuid::Uuid, Path,
        description = "The webhook")),
    request_body = boardroom_protocol::webhooks::UpdateWebhook,
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated",
        body = boardroom_protocol::webhooks::Webhook), crate::http::openapi::WriteErrors))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    let (org, requester) = owner_of(&state, &caller, board).await?;
    let tenant = state.store().tenant(org);
    let mut changes = WebhookChanges {
        url: body.url.as_deref().map(|u| check_url(&state, u)).transpose()?,
        events: body.events.as_deref().map(check_events).transpose()?,
        enabled: body.enabled,
        creator: None,
    };
    // Pointing it somewhere, choosing what it gets, or turning it on makes the caller the one
    // whose access it rides on; only turning it off needs no more than owning the board.
    if changes.url.is_some() || changes.events.is_some() || changes.enabled == Some(true) {
        let events = match changes.events.take() {
            Some(events) => events,
            None => {
                tenant
                    .webhook(board, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("webhook"))?
                    .events
                    .0
            }
        };
        check_scope(&requester, &events)?;
        check_member(&state, org, &caller).await?;
        // Written back as checked, so a concurrent change of kinds cannot slip past this check.
        changes.events = Some(events);
        changes.creator = Some(creator_of(&caller));
    }
    let update = tenant
        .update_webhook(board, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let row = update.row.as_ref().ok_or_else(|| ApiError::not_found("webhook"))?;
    if row.enabled {
        state.runtime().webhooks().poke();
    }
    let mut changed = serde_json::Map::new();
    if update.previous_url != row.url {
        changed.insert(
            "url".into(),
            json!({ "from_host": host_of(&update.previous_url), "to_host": host_of(&row.url) }),
        );
    }
    if update.previous_events != row.events.0 {
        changed
            .insert("events".into(), json!({ "from": update.previous_events, "to": row.events.0 }));
    }
    if update.was_enabled != row.enabled {
        changed.insert("enabled".into(), json!({ "from": update.was_enabled, "to": row.enabled }));
    }
    let (user, key) = update.previous_creator;
    if (user, key) != (row.created_by, row.created_by_key) {
        // Whose access it rides on changed: who can later make it stop is a security fact.
        changed.insert(
            "creator".into(),
            json!({
                "from": { "user_id": user, "key_id": key },
                "to": { "user_id": row.created_by, "key_id": row.created_by_key },
            }),
        );
    }
    if !changed.is_empty() {
        state.auth().audit(AuditAction::WebhookUpdated, &caller.meta, |e| {
            e.organization_id = Some(org);
            e.actor_id = Some(caller.user_id());
            e.target = Some(id.to_string());
            changed.insert("board_id".into(), json!(board));
            e.metadata = Value::Object(changed);
        });
    }
    Ok(Json(to_wire::webhook(row)))
}

#[utoipa::path(delete, path = "/boards/{board}/webhooks/{webhook}", tag = "webhooks",
        operation_id = "delete_webhook",
    summary = "Delete a webhook (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("webhook" = uuid::Uuid, Path,
        description = "The webhook")),
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Deleted"), crate::http::openapi::WriteErrors))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (org, _) = owner_of(&state, &caller, board).await?;
    if !state.store().tenant(org).delete_webhook(board, id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    state.auth().audit(AuditAction::WebhookDeleted, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(id.to_string());
        e.metadata = json!({ "board_id": board });
    });
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/boards/{board}/webhooks/{webhook}/deliveries", tag = "webhooks",
        operation_id = "list_deliveries",
    summary = "A webhook's deliveries, newest first (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("webhook" = uuid::Uuid, Path,
        description = "The webhook"), boardroom_protocol::webhooks::DeliveriesQuery),
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The deliveries",
        body = boardroom_protocol::webhooks::DeliveryList), crate::http::openapi::ReadErrors))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let (org, _) = owner_of(&state, &caller, board).await?;
    let tenant = state.store().tenant(org);
    tenant.webhook(board, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let rows = tenant.webhook_deliveries(id, limit).await?;
    Ok(Json(to_wire::deliveries(&rows).map_err(ApiError::internal)?))
}

#[utoipa::path(post, path = "/boards/{board}/webhooks/{webhook}/deliveries/{delivery}/redeliver",
        tag = "webhooks", operation_id = "redeliver",
    summary = "Attempt a delivery again (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("webhook" = uuid::Uuid, Path,
        description = "The webhook"), ("delivery" = uuid::Uuid, Path,
        description = "The delivery")),
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 202, description = "Queued",
        body = boardroom_protocol::webhooks::Redelivery), crate::http::openapi::WriteErrors))]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id, delivery)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<(StatusCode, Json<Redelivery>)> {
    let (org, _) = owner_of(&state, &caller, board).await?;
    let tenant = state.store().tenant(org);
    tenant.webhook(board, id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    let give_up_at = crate::storage::now() + RETRY_WINDOW;
    if !tenant.redeliver(id, delivery, give_up_at).await? {
        return Err(ApiError::not_found("delivery"));
    }
    state.runtime().webhooks().poke();
    Ok((StatusCode::ACCEPTED, Json(to_wire::redelivery(delivery))))
}

#[utoipa::path(post, path = "/boards/{board}/webhooks/{webhook}/rotate-secret", tag = "webhooks",
        operation_id = "rotate_webhook_secret",
    summary = "New signing secret; the old one signs too for 24 hours (owners)",
    params(("board" = uuid::Uuid, Path, description = "The board"), ("webhook" = uuid::Uuid, Path,
        description = "The webhook")),
    security(("session" = []), ("api_key" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Rotated",
        body = boardroom_protocol::webhooks::RotatedSecret), crate::http::openapi::WriteErrors))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((board, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<RotatedSecret>> {
    let (org, _) = owner_of(&state, &caller, board).await?;
    let secret = generate_secret();
    let until = crate::storage::now() + ROTATION_OVERLAP;
    if !state.store().tenant(org).rotate_webhook_secret(board, id, &secret, until).await? {
        return Err(ApiError::not_found("webhook"));
    }
    state.auth().audit(AuditAction::WebhookSecretRotated, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(id.to_string());
        e.metadata = json!({ "board_id": board, "previous_secret_expires_at": until });
    });
    Ok(Json(to_wire::rotated(id, secret, until)))
}
