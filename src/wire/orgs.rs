//! Organizations on the wire: an organization with the caller's role in it, and its members.

use boardroom_actors::roles::OrgRole;
use boardroom_protocol::orgs as wire;

use crate::storage::{MemberRow, OrganizationRow};

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
