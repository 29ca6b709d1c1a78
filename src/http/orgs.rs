//! `/orgs`: organizations and their members.
//!
//! Anyone signed in may create an organization and becomes its admin. Reading needs membership;
//! changing membership needs the admin role. Another organization answers 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::orgs;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::validate;
use crate::wire::orgs as wire;
use boardroom_actors::org::MemberChange;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org))
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_member, remove_member))
}

fn parse_role(role: &str) -> Result<OrgRole, ApiError> {
    OrgRole::parse(role).ok_or_else(|| ApiError::validation("role must be admin or member"))
}

#[utoipa::path(post, path = "/orgs", tag = "orgs", operation_id = "create_org",
    summary = "Create an organization; the caller is its admin",
    request_body = orgs::CreateOrganization,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Created",
        body = orgs::Organization), crate::http::openapi::WriteErrors))]
async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<orgs::CreateOrganization>,
) -> ApiResult<(StatusCode, Json<orgs::Organization>)> {
    let (user, _) = caller.require_session()?;
    let name = validate::name("name", &body.name)?;
    let org = state.store().create_org(&name, user).await?;
    state.auth().audit(AuditAction::OrgCreated, &caller.meta, |e| {
        e.organization_id = Some(org.id);
        e.actor_id = Some(user);
        e.target = Some(org.id.to_string());
    });
    Ok((StatusCode::CREATED, Json(wire::organization(&org, OrgRole::Admin))))
}

#[utoipa::path(get, path = "/orgs", tag = "orgs", operation_id = "list_orgs",
    summary = "The caller's organizations (an API key's own only)",
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The organizations",
        body = orgs::OrganizationList), crate::http::openapi::ReadErrors))]
async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<orgs::OrganizationList>> {
    let rows = state.store().orgs_of_user(caller.user_id()).await?;
    let organizations = rows
        .iter()
        .filter(|(org, _)| match &caller.principal {
            Principal::ApiKey(grant) => grant.org_id == org.id,
            Principal::User { .. } => true,
        })
        .map(|(org, role)| wire::organization(org, *role))
        .collect();
    Ok(Json(orgs::OrganizationList { organizations }))
}

#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs", operation_id = "get_org",
    summary = "An organization, with the caller's role, its billing status and its plan's limits with their current use",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The organization",
        body = orgs::Organization), crate::http::openapi::ReadErrors))]
async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<orgs::Organization>> {
    let access = state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let tenant = state.store().tenant(org);
    let row = tenant.organization().await?.ok_or_else(|| ApiError::not_found("organization"))?;
    let billing = tenant.billing().await?.ok_or_else(|| ApiError::not_found("organization"))?;
    let view = state
        .auth()
        .orgs()
        .plan_view(org)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(wire::organization_with_plan(&row, access.role, billing.status, &view)))
}

#[utoipa::path(get, path = "/orgs/{org}/members", tag = "orgs", operation_id = "list_org_members",
    summary = "The organization's members",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("api_key" = []), ("cookie" = [])),
    responses((status = 200, description = "The members",
        body = orgs::OrgMemberList), crate::http::openapi::ReadErrors))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<orgs::OrgMemberList>> {
    state.auth().org_access(&caller, org, OrgRole::Member).await?;
    let members = state.store().tenant(org).members().await?;
    Ok(Json(wire::members(&members)))
}

#[utoipa::path(post, path = "/orgs/{org}/members", tag = "orgs", operation_id = "add_org_member",
    summary = "Add an existing account (admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    request_body = orgs::AddOrgMember,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Added", body = orgs::OrgMember),
        crate::http::openapi::PlanWriteErrors))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<orgs::AddOrgMember>,
) -> ApiResult<(StatusCode, Json<orgs::OrgMember>)> {
    caller.require_session()?;
    let email = validate::email(&body.email)?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let role = parse_role(&body.role)?;
    let user = state
        .store()
        .user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::not_found("account with this email"))?;
    let tenant = state.store().tenant(org);
    state.auth().orgs().change(org, user.id, MemberChange::Add(role)).await?;
    state.auth().audit(AuditAction::MemberAdded, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(user.id.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "role": role.as_str() });
    });
    let member = tenant.member(user.id).await?.ok_or_else(|| ApiError::not_found("member"))?;
    Ok((StatusCode::CREATED, Json(wire::member(&member))))
}

#[utoipa::path(patch, path = "/orgs/{org}/members/{user}", tag = "orgs",
        operation_id = "change_org_member",
    summary = "Change a member's role (admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization"), ("user" = uuid::Uuid,
        Path, description = "The user")),
    request_body = orgs::ChangeOrgMember,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "Changed", body = orgs::OrgMember),
        crate::http::openapi::WriteErrors))]
async fn change_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, user)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<orgs::ChangeOrgMember>,
) -> ApiResult<Json<orgs::OrgMember>> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let role = parse_role(&body.role)?;
    let tenant = state.store().tenant(org);
    let previous = state
        .auth()
        .orgs()
        .change(org, user, MemberChange::SetRole(role))
        .await?
        .unwrap_or(OrgRole::Member);
    // A former admin may no longer see boards they are not on: their sockets check now.
    state.ws().recheck_user(user);
    state.auth().audit(AuditAction::MemberRoleChanged, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(user.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "from": previous.as_str(), "to": role.as_str() });
    });
    let member = tenant.member(user).await?.ok_or_else(|| ApiError::not_found("member"))?;
    Ok(Json(wire::member(&member)))
}

#[utoipa::path(delete, path = "/orgs/{org}/members/{user}", tag = "orgs",
        operation_id = "remove_org_member",
    summary = "Remove a member (admins, or oneself)",
    params(("org" = uuid::Uuid, Path, description = "The organization"), ("user" = uuid::Uuid,
        Path, description = "The user")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Removed"), crate::http::openapi::WriteErrors))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, user)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let previous = state
        .auth()
        .orgs()
        .change(org, user, MemberChange::Remove)
        .await?
        .unwrap_or(OrgRole::Member);
    state.auth().key_cache().invalidate_user(org, user);
    state.ws().recheck_user(user);
    state.auth().audit(AuditAction::MemberRemoved, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(user.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "role": previous.as_str() });
    });
    Ok(StatusCode::NO_CONTENT)
}
