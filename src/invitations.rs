//! Invitations to organizations, and adding a member by email.
//!
//! Naming an address never makes an unverified account a member: `POST /orgs/{org}/members`
//! adds at once only the account whose address is verified ([`add_or_invite`]); for any other
//! address (no account, or an account that never proved it) it opens an invitation, mailed to
//! the address. An invitation is accepted only by a signed-in person whose *verified* address
//! is the invited one; to anyone else it does not exist (404). A squatter who registered
//! someone's address first therefore gets nothing from being named, and the real person, once
//! they prove the address (a reset link proves it too), accepts.
//!
//! Membership changes go through the org actor ([`boardroom_actors::org::Orgs::change`]), so
//! plan limits and the last-admin rule hold here as everywhere.

use boardroom_actors::audit::AuditAction;
use boardroom_actors::org::{MemberChange, OrgError};
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::cluster::Invalidation;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{Caller, OrgAccess};
use crate::error::ApiError;
use crate::mail::templates;
use crate::state::AppState;
use crate::storage::{Closed, InvitationRow, MemberRow};

/// What adding by email did.
pub enum Added {
    /// The verified account is a member now.
    Member(MemberRow),
    /// The address was invited instead.
    Invited(InvitationRow),
}

/// Adds the account whose verified address is `email`, or invites the address when there is
/// none. Audited `member.added` or `invitation.created`.
pub async fn add_or_invite(
    state: &AppState,
    caller: &Caller,
    access: OrgAccess,
    email: &str,
    role: OrgRole,
) -> Result<Added, ApiError> {
    let org = access.org_id;
    match state.store().user_by_email(email).await? {
        Some(user) if user.email_verified => {
            state.auth().orgs().change(org, user.id, MemberChange::Add(role)).await?;
            // Every node's view of the membership is renewed (a role cached there as absent).
            state
                .auth()
                .announce(Invalidation::OrgMember { organization_id: org, user_id: user.id });
            state.auth().audit(AuditAction::MemberAdded, &caller.meta, |e| {
                e.organization_id = Some(org);
                e.actor_id = Some(caller.user_id());
                e.target = Some(user.id.to_string());
                e.bypass = access.bypass;
                e.metadata = json!({ "role": role.as_str() });
            });
            let member = state
                .store()
                .tenant(org)
                .member(user.id)
                .await?
                .ok_or_else(|| ApiError::not_found("member"))?;
            Ok(Added::Member(member))
        }
        _ => invite(state, caller, access, email, role).await.map(Added::Invited),
    }
}

/// Opens an invitation of `email` to the organization with `role` (replacing an open one to
/// the same address) and mails it. Audited `invitation.created`.
pub async fn invite(
    state: &AppState,
    caller: &Caller,
    access: OrgAccess,
    email: &str,
    role: OrgRole,
) -> Result<InvitationRow, ApiError> {
    let org = access.org_id;
    let tenant = state.store().tenant(org);
    if let Some(user) = state.store().user_by_email(email).await? {
        if user.email_verified && tenant.membership(user.id).await?.is_some() {
            return Err(ApiError::conflict("already a member"));
        }
    }
    let organization =
        tenant.organization().await?.ok_or_else(|| ApiError::not_found("organization"))?;
    let inviter = state
        .store()
        .user_by_id(caller.user_id())
        .await?
        .map(|u| u.name)
        .unwrap_or_else(|| "An administrator".to_owned());
    let ttl = chrono::Duration::days(i64::from(state.settings().invitation_ttl_days));
    let mail = state.auth().mail().clone();
    let invitation = tenant
        .create_invitation(email, role.as_str(), caller.user_id(), ttl, |id, expires_at| {
            let link = mail.link(&format!("/invitations/{id}"), None);
            let expires = expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
            templates::invitation(
                email,
                &organization.name,
                &inviter,
                role.as_str(),
                &expires,
                &link,
            )
        })
        .await?;
    mail.wake();
    state.auth().audit(AuditAction::InvitationCreated, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(caller.user_id());
        e.target = Some(invitation.id.to_string());
        e.bypass = access.bypass;
        e.metadata = json!({ "email": email, "role": role.as_str() });
    });
    Ok(invitation)
}

/// Withdraws an open invitation of the organization; 404 when there is none. Audited
/// `invitation.revoked`.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    access: OrgAccess,
    id: Uuid,
) -> Result<(), ApiError> {
    if !state.store().tenant(access.org_id).revoke_invitation(id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    state.auth().audit(AuditAction::InvitationRevoked, &caller.meta, |e| {
        e.organization_id = Some(access.org_id);
        e.actor_id = Some(caller.user_id());
        e.target = Some(id.to_string());
        e.bypass = access.bypass;
    });
    Ok(())
}

/// The caller's verified address, if they have one: the only address invitations are shown to
/// and accepted for.
async fn verified_email(state: &AppState, user: Uuid) -> Result<Option<String>, ApiError> {
    Ok(state.store().user_by_id(user).await?.filter(|u| u.email_verified).map(|u| u.email))
}

/// The open invitations to the signed-in person's verified address (none while it is not).
pub async fn mine(state: &AppState, user: Uuid) -> Result<Vec<InvitationRow>, ApiError> {
    match verified_email(state, user).await? {
        Some(email) => Ok(state.store().invitations_for(&email).await?),
        None => Ok(Vec::new()),
    }
}

/// Accepts invitation `id` for the signed-in `user`: they become a member with its role. Only
/// when their verified address is the invited one; otherwise, and for an invitation no longer
/// open, 404. Audited `member.added`, naming the invitation.
pub async fn accept(
    state: &AppState,
    caller: &Caller,
    user: Uuid,
    id: Uuid,
) -> Result<MemberRow, ApiError> {
    let not_found = || ApiError::not_found("invitation");
    let email = verified_email(state, user).await?.ok_or_else(not_found)?;
    let invitation = state.store().invitation_for(id, &email).await?.ok_or_else(not_found)?;
    let org = invitation.organization_id;
    let role = OrgRole::parse(&invitation.role).unwrap_or(OrgRole::Member);
    match state.auth().orgs().change(org, user, MemberChange::Add(role)).await {
        Ok(_) => {
            state.auth().announce(Invalidation::OrgMember { organization_id: org, user_id: user });
        }
        Err(OrgError::AlreadyMember) => {
            // Nothing left for the invitation to do.
            state.store().close_invitation(id, &email, Closed::Accepted).await?;
            return Err(ApiError::conflict("already a member"));
        }
        Err(err) => return Err(err.into()),
    }
    state.store().close_invitation(id, &email, Closed::Accepted).await?;
    state.auth().audit(AuditAction::MemberAdded, &caller.meta, |e| {
        e.organization_id = Some(org);
        e.actor_id = Some(user);
        e.target = Some(user.to_string());
        e.metadata = json!({
            "role": role.as_str(),
            "invitation_id": id,
            "invited_by": invitation.invited_by,
        });
    });
    state.store().tenant(org).member(user).await?.ok_or_else(|| ApiError::not_found("member"))
}

/// Declines invitation `id` for the signed-in `user` (the same 404 rule as [`accept`]).
/// Audited `invitation.declined`.
pub async fn decline(
    state: &AppState,
    caller: &Caller,
    user: Uuid,
    id: Uuid,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found("invitation");
    let email = verified_email(state, user).await?.ok_or_else(not_found)?;
    let invitation = state.store().invitation_for(id, &email).await?.ok_or_else(not_found)?;
    if !state.store().close_invitation(id, &email, Closed::Declined).await? {
        return Err(not_found());
    }
    state.auth().audit(AuditAction::InvitationDeclined, &caller.meta, |e| {
        e.organization_id = Some(invitation.organization_id);
        e.actor_id = Some(user);
        e.target = Some(id.to_string());
    });
    Ok(())
}
