//! `/orgs`: organizations and their members.
//!
//! Anyone signed in may create an organization and becomes its admin. Reading needs membership;
//! changing membership and invitations needs the admin role. Another organization answers 404.
//! A person's own invitations (`/invitations`) are theirs to accept or decline; the rules live in
//! [`crate::invitations`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boardroom_actors::audit::AuditAction;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::cluster::Invalidation;
use boardroom_protocol::orgs;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::AppState;
use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::invitations::{self, Added};
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
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(my_invitations))
        .routes(routes!(accept_invitation))
        .routes(routes!(decline_invitation))
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
    summary = "Add the account with this verified email (admins); any other address is invited",
    description = "An account whose email is verified is added at once (201). For an unknown \
        address, or an account that never verified it, nobody is added: an invitation is \
        mailed instead (202), which only the holder of the verified address can accept.",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    request_body = orgs::AddOrgMember,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Added", body = orgs::OrgMember),
        (status = 202, description = "Invited instead", body = orgs::InvitationSent),
        crate::http::openapi::PlanWriteErrors))]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<orgs::AddOrgMember>,
) -> ApiResult<Response> {
    caller.require_session()?;
    let email = validate::email(&body.email)?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let role = parse_role(&body.role)?;
    Ok(match invitations::add_or_invite(&state, &caller, access, &email, role).await? {
        Added::Member(member) => (StatusCode::CREATED, Json(wire::member(&member))).into_response(),
        Added::Invited(invitation) => (
            StatusCode::ACCEPTED,
            Json(orgs::InvitationSent { invitation: wire::invitation(&invitation) }),
        )
            .into_response(),
    })
}

#[utoipa::path(post, path = "/orgs/{org}/invitations", tag = "orgs",
        operation_id = "create_invitation",
    summary = "Invite an address to the organization (admins); the invitation is mailed",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    request_body = orgs::CreateInvitation,
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 201, description = "Invited", body = orgs::Invitation),
        crate::http::openapi::WriteErrors))]
async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
    ApiJson(body): ApiJson<orgs::CreateInvitation>,
) -> ApiResult<(StatusCode, Json<orgs::Invitation>)> {
    caller.require_session()?;
    let email = validate::email(&body.email)?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let role = parse_role(&body.role)?;
    let invitation = invitations::invite(&state, &caller, access, &email, role).await?;
    Ok((StatusCode::CREATED, Json(wire::invitation(&invitation))))
}

#[utoipa::path(get, path = "/orgs/{org}/invitations", tag = "orgs",
        operation_id = "list_org_invitations",
    summary = "The organization's open invitations (admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization")),
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The invitations", body = orgs::InvitationList),
        crate::http::openapi::ReadErrors))]
async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<Uuid>,
) -> ApiResult<Json<orgs::InvitationList>> {
    caller.require_session()?;
    state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    let rows = state.store().tenant(org).invitations().await?;
    Ok(Json(wire::invitations(&rows)))
}

#[utoipa::path(delete, path = "/orgs/{org}/invitations/{invitation}", tag = "orgs",
        operation_id = "revoke_invitation",
    summary = "Withdraw an open invitation (admins)",
    params(("org" = uuid::Uuid, Path, description = "The organization"),
        ("invitation" = uuid::Uuid, Path, description = "The invitation")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Withdrawn"), crate::http::openapi::WriteErrors))]
async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    caller.require_session()?;
    let access = state.auth().org_access(&caller, org, OrgRole::Admin).await?;
    invitations::revoke(&state, &caller, access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/invitations", tag = "orgs", operation_id = "my_invitations",
    summary = "Open invitations to the caller's verified email address",
    security(("session" = []), ("cookie" = [])),
    responses((status = 200, description = "The invitations (none while the address is not verified)",
        body = orgs::InvitationList), crate::http::openapi::ReadErrors))]
async fn my_invitations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<orgs::InvitationList>> {
    let (user, _) = caller.require_session()?;
    let rows = invitations::mine(&state, user).await?;
    Ok(Json(wire::invitations(&rows)))
}

#[utoipa::path(post, path = "/invitations/{invitation}/accept", tag = "orgs",
        operation_id = "accept_invitation",
    summary = "Join the organization with the invited role (the caller's verified email must be the invited one, else 404)",
    params(("invitation" = uuid::Uuid, Path, description = "The invitation")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 200, description = "A member now", body = orgs::OrgMember),
        crate::http::openapi::PlanWriteErrors))]
async fn accept_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<orgs::OrgMember>> {
    let (user, _) = caller.require_session()?;
    let member = invitations::accept(&state, &caller, user, id).await?;
    Ok(Json(wire::member(&member)))
}

#[utoipa::path(post, path = "/invitations/{invitation}/decline", tag = "orgs",
        operation_id = "decline_invitation",
    summary = "Decline an invitation (the same rule as accepting)",
    params(("invitation" = uuid::Uuid, Path, description = "The invitation")),
    security(("session" = []), ("cookie" = [], "csrf" = [])),
    responses((status = 204, description = "Declined"), crate::http::openapi::WriteErrors))]
async fn decline_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let (user, _) = caller.require_session()?;
    invitations::decline(&state, &caller, user, id).await?;
    Ok(StatusCode::NO_CONTENT)
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
    // A former admin may no longer see boards they are not on: their sockets, on every node,
    // check now.
    state.auth().announce(Invalidation::OrgMember { organization_id: org, user_id: user });
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
    state.auth().announce(Invalidation::OrgMember { organization_id: org, user_id: user });
    state.auth().audit(AuditAction::MemberRemoved, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(user.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "role": previous.as_str() });
    });
    Ok(StatusCode::NO_CONTENT)
}
