//! Organizations on the wire: an organization with the caller's role in it, and its members.

use boardroom_actors::billing::BillingStatus;
use boardroom_actors::org::PlanView;
use boardroom_actors::plans::Resource;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::orgs as wire;

use crate::storage::{InvitationRow, MemberRow, OrganizationRow};

/// A role in an organization.
pub const fn role(role: OrgRole) -> wire::OrgRole {
    match role {
        OrgRole::Member => wire::OrgRole::Member,
        OrgRole::Admin => wire::OrgRole::Admin,
    }
}

/// An organization, with the caller's role in it.
pub fn organization(org: &OrganizationRow, caller_role: OrgRole) -> wire::Organization {
    wire::Organization {
        id: org.id,
        name: org.name.clone(),
        plan: org.plan.clone(),
        created_at: org.created_at,
        role: role(caller_role),
        billing_status: None,
        limits: None,
    }
}

/// An organization with its plan's limits and current use (`GET /orgs/{org}`).
pub fn organization_with_plan(
    org: &OrganizationRow,
    caller_role: OrgRole,
    status: BillingStatus,
    view: &PlanView,
) -> wire::Organization {
    let of = |resource| wire::LimitUse {
        limit: view.limits.get(resource),
        used: view.usage.get(resource),
    };
    wire::Organization {
        // The actor's plan is the one enforced; the row read may be a moment older.
        plan: view.plan.as_str().to_owned(),
        billing_status: Some(status),
        limits: Some(wire::PlanUsage {
            boards: of(Resource::Boards),
            members: of(Resource::Members),
            api_keys: of(Resource::ApiKeys),
            webhooks: of(Resource::Webhooks),
            storage_bytes: of(Resource::StorageBytes),
        }),
        ..organization(org, caller_role)
    }
}

/// A member of an organization.
pub fn member(member: &MemberRow) -> wire::OrgMember {
    wire::OrgMember {
        user_id: member.user_id,
        email: member.email.clone(),
        name: member.name.clone(),
        role: role(member.role()),
        joined_at: member.created_at,
    }
}

/// An organization's members.
pub fn members(members: &[MemberRow]) -> wire::OrgMemberList {
    wire::OrgMemberList { members: members.iter().map(member).collect() }
}

/// An open invitation.
pub fn invitation(row: &InvitationRow) -> wire::Invitation {
    wire::Invitation {
        id: row.id,
        organization_id: row.organization_id,
        organization_name: row.organization_name.clone(),
        email: row.email.clone(),
        role: role(OrgRole::parse(&row.role).unwrap_or(OrgRole::Member)),
        expires_at: row.expires_at,
        invited_by: row.invited_by,
        created_at: row.created_at,
    }
}

/// Open invitations.
pub fn invitations(rows: &[InvitationRow]) -> wire::InvitationList {
    wire::InvitationList { invitations: rows.iter().map(invitation).collect() }
}
