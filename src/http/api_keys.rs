//! `/orgs/{org}/api-keys`: create, list, change and revoke API keys.
//!
//! Only people with a session manage keys; a key can never create another key. Any member may
//! make keys for themselves (a key is bounded by its user's roles); members see and manage their
//! own keys, admins every key of the organization. The whole key is answered once, at creation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::plans::Resource;
use boardroom_actors::roles::OrgRole;
use boardroom_actors::webhook::Affected;
use boardroom_protocol::cluster::Invalidation;
use boardroom_protocol::{api_keys, Scope};
use chrono::Utc;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::auth::api_keys::{
    GeneratedKey, DEFAULT_RATE_LIMIT_PER_MINUTE, MAX_RATE_LIMIT_PER_MINUTE,
};
use crate::auth::{Caller, OrgAccess};
use crate::error::{ApiError, ApiResult};
use crate::storage::{ApiKeyChanges, ApiKeyRow, NewApiKey, StorageError};
use crate::validate;
use crate::wire::api_keys as wire;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(update_key, revoke_key))
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<String>, ApiError> {
    if scopes.is_empty() {
        return Err(ApiError::validation("scopes must name at least one scope"));
    }
    let mut parsed = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let scope = Scope::parse(scope).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::validation(format!("unknown scope {scope:?}; known: {}", known.join(", ")))
        })?;
        parsed.push(scope);
    }
    parsed.sort();
    parsed.dedup();
    Ok(parsed.into_iter().map(|s| s.as_str().to_owned()).collect())
}

fn check_limit(limit: u32) -> Result<i64, ApiError> {
    if (1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&limit) {
        Ok(i64::from(limit))
    } else {
        Err(ApiError::validation(format!(
            "rate_limit_per_minute must be 1 to {MAX_RATE_LIMIT_PER_MINUTE}"
        )))
    }
}

#[utoipa::path(post, path = "/orgs/{org}/api-keys", tag = "api-keys",
        operation_id = "create_api_key",
    summary = "Create an API key; its secret is answered this once",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    request_body = api_keys::CreateApiKey,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created",
        body = api_keys::CreatedApiKey), crate::http::openapi::PlanWriteErrors))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<api_keys::CreateApiKey>,
) -> ApiResult<(StatusCode, Json<api_keys::CreatedApiKey>)> {
    let (user, _) = caller.require_session()?;
    let name = validate::name("name", &body.name)?;
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let scopes = parse_scopes(&body.scopes)?;
    let limit = check_limit(body.rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE))?;
    if body.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::validation("expires_at must be in the future"));
    }
    let tenant = state.store().tenant(org);
    // Held until the key is written, so a concurrent creation counts it.
    let _admission = state.auth().orgs().admit(org, Resource::ApiKeys, 1).await?;
    // Prefixes carry 41 random bits; a collision is rare enough that a few retries suffice.
    let mut attempts = 0;
    let (generated, row) = loop {
        let generated = GeneratedKey::new();
        let hash = state.auth().hasher().hash(generated.secret().to_owned()).await?;
        let created = tenant
            .create_api_key(NewApiKey {
                user_id: user,
                name: &name,
                prefix: generated.prefix(),
                secret_hash: &hash,
                scopes: scopes.clone(),
                rate_limit_per_minute: limit,
                expires_at: body.expires_at,
            })
            .await;
        match created {
            Ok(row) => break (generated, row),
            Err(StorageError::Unique(_)) if attempts < 3 => attempts += 1,
            Err(err) => return Err(err.into()),
        }
    };
    state.auth().audit(AuditAction::ApiKeyCreated, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(user);
        e.target = Some(row.id.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "prefix": row.prefix, "scopes": row.scopes.0, "name": row.name });
    });
    Ok((StatusCode::CREATED, Json(wire::created(&row, generated.key))))
}

/// A member manages their own keys; an admin every key of the org.
fn may_manage(access: &OrgAccess, caller: &Caller, key: &ApiKeyRow) -> bool {
    access.role == OrgRole::Admin || key.user_id == caller.user_id()
}

#[utoipa::path(get, path = "/orgs/{org}/api-keys", tag = "api-keys", operation_id = "list_api_keys",
    summary = "API keys of the organization the caller may manage",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The keys, without secrets",
        body = api_keys::ApiKeyList), crate::http::openapi::ReadErrors))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<api_keys::ApiKeyList>> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let keys = state.store().tenant(org).api_keys().await?;
    Ok(Json(wire::list(keys.iter().filter(|k| may_manage(&access, &caller, k)))))
}

#[utoipa::path(patch, path = "/orgs/{org}/api-keys/{key}", tag = "api-keys",
        operation_id = "update_api_key",
    summary = "Rename, re-scope or re-limit an API key",
    params(("org" = uuid::Uuid, Path, description = "The organization"), ("key" = uuid::Uuid, Path,
        description = "The API key")),
    request_body = api_keys::UpdateApiKey,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Updated",
        body = api_keys::ApiKey), crate::http::openapi::WriteErrors))]
async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<api_keys::UpdateApiKey>,
) -> ApiResult<Json<api_keys::ApiKey>> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let tenant = state.store().tenant(org);
    let key = tenant.api_key(id).await?.ok_or_else(|| ApiError::not_found("API key"))?;
    if !may_manage(&access, &caller, &key) {
        return Err(ApiError::not_found("API key"));
    }
    let changes = ApiKeyChanges {
        name: body.name.as_deref().map(|n| validate::name("name", n)).transpose()?,
        scopes: body.scopes.as_deref().map(parse_scopes).transpose()?,
        rate_limit_per_minute: body.rate_limit_per_minute.map(check_limit).transpose()?,
    };
    let rescoped = changes.scopes.is_some();
    let updated =
        tenant.update_api_key(id, changes).await?.ok_or_else(|| ApiError::not_found("API key"))?;
    state.auth().announce(Invalidation::ApiKey { key_id: id, user_id: key.user_id });
    if rescoped {
        // Webhooks made with this key may now see more than the key: they are judged again.
        state.runtime().webhooks().recheck(Affected::Key { org, key: id });
    }
    state.auth().audit(AuditAction::ApiKeyUpdated, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(id.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "scopes": updated.scopes.0, "rate_limit_per_minute": updated.rate_limit_per_minute });
    });
    Ok(Json(wire::api_key(&updated)))
}

#[utoipa::path(delete, path = "/orgs/{org}/api-keys/{key}", tag = "api-keys",
        operation_id = "revoke_api_key",
    summary = "Revoke an API key",
    params(("org" = uuid::Uuid, Path, description = "The organization"), ("key" = uuid::Uuid, Path,
        description = "The API key")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Revoked"), crate::http::openapi::WriteErrors))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let tenant = state.store().tenant(org);
    let key = tenant.api_key(id).await?.ok_or_else(|| ApiError::not_found("API key"))?;
    if !may_manage(&access, &caller, &key) || !tenant.revoke_api_key(id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.auth().announce(Invalidation::ApiKey { key_id: id, user_id: key.user_id });
    state.runtime().webhooks().recheck(Affected::Key { org, key: id });
    state.auth().audit(AuditAction::ApiKeyRevoked, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(id.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "prefix": key.prefix });
    });
    Ok(StatusCode::NO_CONTENT)
}
