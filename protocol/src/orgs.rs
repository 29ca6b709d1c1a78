//! Organizations on the wire: the organization as its members see it, its members, and the
//! bodies that create one and change its membership.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::billing::BillingStatus;

/// A person's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Sees the boards they are on; makes boards and API keys for themselves.
    Member,
    /// Also manages members, every board, every key, and reads the audit log.
    Admin,
}

/// An organization, with the caller's role in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Plan, such as `free`.
    pub plan: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The caller's role (`admin` for a superadmin acting in another organization).
    pub role: OrgRole,
    /// The plan's subscription status (`GET /orgs/{org}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_status: Option<BillingStatus>,
    /// The plan's limits with the organization's current use (`GET /orgs/{org}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PlanUsage>,
}

/// One limit of a plan and what the organization holds of it. An organization may hold more
/// than its limit (after a downgrade: nothing is deleted); it then creates no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LimitUse {
    /// The plan's limit; `null` is unlimited.
    pub limit: Option<u64>,
    /// What the organization holds now.
    pub used: u64,
}

/// A plan's limits with their current use; past one, creations answer `402 plan_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanUsage {
    /// Boards (not deleted).
    pub boards: LimitUse,
    /// Members.
    pub members: LimitUse,
    /// API keys (neither revoked nor expired).
    pub api_keys: LimitUse,
    /// Webhooks.
    pub webhooks: LimitUse,
    /// Bytes of attachments stored.
    pub storage_bytes: LimitUse,
}

/// `GET /orgs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrganizationList {
    /// The caller's organizations (an API key's own only).
    pub organizations: Vec<Organization>,
}

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgMember {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: OrgRole,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// `GET /orgs/{org}/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgMemberList {
    /// The members.
    pub members: Vec<OrgMember>,
}

/// `POST /orgs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateOrganization {
    /// Name.
    pub name: String,
}

/// `POST /orgs/{org}/members`: adds the account with this verified email at once (`201`), or
/// invites the address (`202`) when no account has it verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AddOrgMember {
    /// The account's email.
    pub email: String,
    /// `admin` or `member` (a text, so another word is refused as `validation_failed`).
    pub role: String,
}

/// `POST /orgs/{org}/invitations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateInvitation {
    /// The address to invite.
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
}

/// An open invitation to an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Invitation {
    /// Id.
    pub id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
    /// Its name.
    pub organization_name: String,
    /// The invited address.
    pub email: String,
    /// The role accepting gives.
    pub role: OrgRole,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Who invited (absent once their account is gone).
    #[schema(required = true)]
    pub invited_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// `GET /orgs/{org}/invitations`, `GET /invitations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvitationList {
    /// Open invitations, newest first.
    pub invitations: Vec<Invitation>,
}

/// The `202` of `POST /orgs/{org}/members` for an address with no verified account: an
/// invitation was sent instead of adding anyone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvitationSent {
    /// The invitation.
    pub invitation: Invitation,
}

/// `PATCH /orgs/{org}/members/{user}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeOrgMember {
    /// `admin` or `member`.
    pub role: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{assert_golden, at, id};

    #[test]
    fn organizations_are_pinned() {
        let org = Organization {
            id: id(2),
            name: "Acme".into(),
            plan: "free".into(),
            created_at: at("2026-01-02T03:04:05.000006Z"),
            role: OrgRole::Admin,
            billing_status: None,
            limits: None,
        };
        assert_golden(&org, ORG_JSON, ORG_MSGPACK);
        let list = OrganizationList { organizations: vec![org] };
        assert_golden(&list, ORG_LIST_JSON, ORG_LIST_MSGPACK);
    }

    #[test]
    fn an_organization_with_its_plan_is_pinned() {
        let used = |limit, used| LimitUse { limit, used };
        let org = Organization {
            id: id(2),
            name: "Acme".into(),
            plan: "free".into(),
            created_at: at("2026-01-02T03:04:05Z"),
            role: OrgRole::Admin,
            billing_status: Some(BillingStatus::PastDue),
            limits: Some(PlanUsage {
                boards: used(Some(3), 4),
                members: used(Some(5), 1),
                api_keys: used(Some(2), 0),
                webhooks: used(None, 1),
                storage_bytes: used(Some(104_857_600), 10),
            }),
        };
        assert_golden(&org, ORG_PLAN_JSON, ORG_PLAN_MSGPACK);
    }

    #[test]
    fn members_are_pinned() {
        let member = OrgMember {
            user_id: id(6),
            email: "ada@example.com".into(),
            name: "Ada".into(),
            role: OrgRole::Member,
            joined_at: at("2026-01-02T03:04:05Z"),
        };
        assert_golden(&member, MEMBER_JSON, MEMBER_MSGPACK);
        let list = OrgMemberList { members: vec![member] };
        assert_golden(&list, MEMBER_LIST_JSON, MEMBER_LIST_MSGPACK);
    }

    #[test]
    fn bodies_are_pinned() {
        assert_golden(&CreateOrganization { name: "Acme".into() }, CREATE_JSON, CREATE_MSGPACK);
        let add = AddOrgMember { email: "ada@example.com".into(), role: "member".into() };
        assert_golden(&add, ADD_MEMBER_JSON, ADD_MEMBER_MSGPACK);
        let change = ChangeOrgMember { role: "admin".into() };
        assert_golden(&change, CHANGE_MEMBER_JSON, CHANGE_MEMBER_MSGPACK);
    }

    const ORG_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000002","name":"Acme","plan":"free","created_at":"2026-01-02T03:04:05.000006Z","role":"admin"}"#;
    const ORG_MSGPACK: &str = "85a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a441636d65a4706c616ea466726565aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aa4726f6c65a561646d696e";
    const ORG_LIST_JSON: &str = r#"{"organizations":[{"id":"00000000-0000-0000-0000-000000000002","name":"Acme","plan":"free","created_at":"2026-01-02T03:04:05.000006Z","role":"admin"}]}"#;
    const ORG_LIST_MSGPACK: &str = "81ad6f7267616e697a6174696f6e739185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a441636d65a4706c616ea466726565aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aa4726f6c65a561646d696e";
    const ORG_PLAN_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000002","name":"Acme","plan":"free","created_at":"2026-01-02T03:04:05Z","role":"admin","billing_status":"past_due","limits":{"boards":{"limit":3,"used":4},"members":{"limit":5,"used":1},"api_keys":{"limit":2,"used":0},"webhooks":{"limit":null,"used":1},"storage_bytes":{"limit":104857600,"used":10}}}"#;
    const ORG_PLAN_MSGPACK: &str = "87a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a441636d65a4706c616ea466726565aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aa4726f6c65a561646d696eae62696c6c696e675f737461747573a8706173745f647565a66c696d69747385a6626f6172647382a56c696d697403a47573656404a76d656d6265727382a56c696d697405a47573656401a86170695f6b65797382a56c696d697402a47573656400a8776562686f6f6b7382a56c696d6974c0a47573656401ad73746f726167655f627974657382a56c696d6974ce06400000a4757365640a";
    const MEMBER_JSON: &str = r#"{"user_id":"00000000-0000-0000-0000-000000000006","email":"ada@example.com","name":"Ada","role":"member","joined_at":"2026-01-02T03:04:05Z"}"#;
    const MEMBER_MSGPACK: &str = "85a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a5656d61696caf616461406578616d706c652e636f6da46e616d65a3416461a4726f6c65a66d656d626572a96a6f696e65645f6174b4323032362d30312d30325430333a30343a30355a";
    const MEMBER_LIST_JSON: &str = r#"{"members":[{"user_id":"00000000-0000-0000-0000-000000000006","email":"ada@example.com","name":"Ada","role":"member","joined_at":"2026-01-02T03:04:05Z"}]}"#;
    const MEMBER_LIST_MSGPACK: &str = "81a76d656d626572739185a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a5656d61696caf616461406578616d706c652e636f6da46e616d65a3416461a4726f6c65a66d656d626572a96a6f696e65645f6174b4323032362d30312d30325430333a30343a30355a";
    const CREATE_JSON: &str = r#"{"name":"Acme"}"#;
    const CREATE_MSGPACK: &str = "81a46e616d65a441636d65";
    const ADD_MEMBER_JSON: &str = r#"{"email":"ada@example.com","role":"member"}"#;
    const ADD_MEMBER_MSGPACK: &str =
        "82a5656d61696caf616461406578616d706c652e636f6da4726f6c65a66d656d626572";
    const CHANGE_MEMBER_JSON: &str = r#"{"role":"admin"}"#;
    const CHANGE_MEMBER_MSGPACK: &str = "81a4726f6c65a561646d696e";
}
