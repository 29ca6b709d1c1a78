//! Roles, and what each may do.
//!
//! An organization has admins and members; only admins change membership, and an organization
//! always keeps at least one admin. Board roles (owner, editor, viewer) arrive with boards; an
//! org admin acts as owner on every board of the org.

use serde::{Deserialize, Serialize};

/// A person's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Uses the organization's boards they are on.
    Member,
    /// Manages membership, API keys of the org, and reads the audit log.
    Admin,
}

impl OrgRole {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgRole::Member => "member",
            OrgRole::Admin => "admin",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(name: &str) -> Option<OrgRole> {
        match name {
            "member" => Some(OrgRole::Member),
            "admin" => Some(OrgRole::Admin),
            _ => None,
        }
    }
}

/// Why a membership change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRule {
    /// The change would leave the organization without an admin.
    #[error("an organization must keep at least one admin")]
    LastAdmin,
}

/// Checks that demoting or removing someone whose current role is `current` keeps an admin,
/// given how many admins the organization has now.
pub fn check_keeps_an_admin(
    current: OrgRole,
    next: Option<OrgRole>,
    admins: i64,
) -> Result<(), MembershipRule> {
    let loses_admin = current == OrgRole::Admin && next != Some(OrgRole::Admin);
    if loses_admin && admins <= 1 {
        Err(MembershipRule::LastAdmin)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_admin_cannot_leave_or_be_demoted() {
        assert_eq!(check_keeps_an_admin(OrgRole::Admin, None, 1), Err(MembershipRule::LastAdmin));
        assert_eq!(
            check_keeps_an_admin(OrgRole::Admin, Some(OrgRole::Member), 1),
            Err(MembershipRule::LastAdmin)
        );
        assert_eq!(check_keeps_an_admin(OrgRole::Admin, Some(OrgRole::Admin), 1), Ok(()));
        assert_eq!(check_keeps_an_admin(OrgRole::Admin, None, 2), Ok(()));
        assert_eq!(check_keeps_an_admin(OrgRole::Member, None, 1), Ok(()));
    }

    #[test]
    fn names_round_trip() {
        for role in [OrgRole::Member, OrgRole::Admin] {
            assert_eq!(OrgRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(OrgRole::parse("owner"), None);
    }
}
