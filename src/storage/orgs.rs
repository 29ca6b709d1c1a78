//! Organizations and their memberships.

use std::collections::HashMap;

use boardroom_actors::billing::{BillingEvent, BillingOutcome};
use boardroom_actors::org::{LoadedOrg, OrgStore};
use boardroom_actors::plans::Usage;
use boardroom_actors::roles::{check_keeps_an_admin, OrgRole};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{new_id, now, StorageError, StorageResult, Store, TenantStore};
use crate::{on_pool, transaction, write_on_pool};

/// A stored organization.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrganizationRow {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Billing plan.
    pub plan: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A member of an organization, with their account's public fields.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role, as stored.
    pub role: String,
    /// When they joined.
    pub created_at: DateTime<Utc>,
}

impl MemberRow {
    /// The parsed role (unknown stored values read as the least privileged).
    pub fn role(&self) -> OrgRole {
        OrgRole::parse(&self.role).unwrap_or(OrgRole::Member)
    }
}

impl Store {
    /// Creates an organization with `creator` as its admin.
    pub async fn create_org(&self, name: &str, creator: Uuid) -> StorageResult<OrganizationRow> {
        let org_id = new_id();
        let at = now();
        transaction!(self, conn => {
            let org = sqlx::query_as::<_, OrganizationRow>(
                "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3) \
                 RETURNING id, name, plan, created_at",
            )
            .bind(org_id)
            .bind(name)
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (organization_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'admin', $3)",
            )
            .bind(org_id)
            .bind(creator)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(org)
        })
    }

    /// The organizations `user_id` belongs to, with their role in each.
    pub async fn orgs_of_user(
        &self,
        user_id: Uuid,
    ) -> StorageResult<Vec<(OrganizationRow, OrgRole)>> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            id: Uuid,
            name: String,
            plan: String,
            created_at: DateTime<Utc>,
            role: String,
        }
        let rows: Vec<Joined> = on_pool!(self, pool => {
            sqlx::query_as::<_, Joined>(
                "SELECT o.id, o.name, o.plan, o.created_at, m.role FROM organizations o \
                 JOIN memberships m ON m.organization_id = o.id \
                 WHERE m.user_id = $1 ORDER BY o.id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let role = OrgRole::parse(&r.role).unwrap_or(OrgRole::Member);
                (
                    OrganizationRow {
                        id: r.id,
                        name: r.name,
                        plan: r.plan,
                        created_at: r.created_at,
                    },
                    role,
                )
            })
            .collect())
    }
}

impl TenantStore<'_> {
    /// The organization itself.
    pub async fn organization(&self) -> StorageResult<Option<OrganizationRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, OrganizationRow>(
                "SELECT id, name, plan, created_at FROM organizations WHERE id = $1",
            )
            .bind(self.org_id())
            .fetch_optional(pool)
            .await
        })?)
    }

    /// The role of `user_id` here, if they are a member.
    pub async fn membership(&self, user_id: Uuid) -> StorageResult<Option<OrgRole>> {
        let role: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
            )
            .bind(self.org_id())
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(role.map(|(r,)| OrgRole::parse(&r).unwrap_or(OrgRole::Member)))
    }

    /// Every member, oldest first.
    pub async fn members(&self) -> StorageResult<Vec<MemberRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, MemberRow>(
                "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                 JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 \
                 ORDER BY m.created_at, m.user_id",
            )
            .bind(self.org_id())
            .fetch_all(pool)
            .await
        })?)
    }

    /// One member.
    pub async fn member(&self, user_id: Uuid) -> StorageResult<Option<MemberRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, MemberRow>(
                "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
                 JOIN users u ON u.id = m.user_id \
                 WHERE m.organization_id = $1 AND m.user_id = $2",
            )
            .bind(self.org_id())
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// Adds `user_id` with `role`; an existing member is [`StorageError::Unique`].
    pub async fn add_member(&self, user_id: Uuid, role: OrgRole) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO memberships (organization_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(self.org_id())
            .bind(user_id)
            .bind(role.as_str())
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// What the organization holds of each resource its plan limits: boards not deleted,
    /// members, API keys neither revoked nor expired, webhooks of boards not deleted, and the
    /// bytes of its attachments.
    pub async fn usage(&self) -> StorageResult<Usage> {
        let row: (i64, i64, i64, i64, i64) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT \
                 (SELECT COUNT(*) FROM boards WHERE organization_id = $1 AND deleted_at IS NULL), \
                 (SELECT COUNT(*) FROM memberships WHERE organization_id = $1), \
                 (SELECT COUNT(*) FROM api_keys WHERE organization_id = $1 \
                    AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)), \
                 (SELECT COUNT(*) FROM webhooks w JOIN boards b ON b.id = w.board_id \
                    WHERE w.organization_id = $1 AND b.organization_id = $1 \
                    AND b.deleted_at IS NULL), \
                 (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments \
                    WHERE organization_id = $1)",
            )
            .bind(self.org_id())
            .bind(now())
            .fetch_one(pool)
            .await
        })?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(Usage {
            boards: count(row.0),
            members: count(row.1),
            api_keys: count(row.2),
            webhooks: count(row.3),
            storage_bytes: count(row.4),
        })
    }

    /// Changes a member's role (`Some`) or removes them (`None`), refusing to leave the
    /// organization without an admin. Returns the previous role.
    pub async fn set_member_role(
        &self,
        user_id: Uuid,
        next: Option<OrgRole>,
    ) -> StorageResult<OrgRole> {
        let org = self.org_id();
        transaction!(self.store, conn => {
            let current: Option<(String,)> = sqlx::query_as(
                "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2",
            )
            .bind(org)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
            let current = match current {
                Some((role,)) => OrgRole::parse(&role).unwrap_or(OrgRole::Member),
                None => return Err(StorageError::NotFound),
            };
            let (admins,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM memberships WHERE organization_id = $1 AND role = 'admin'",
            )
            .bind(org)
            .fetch_one(&mut *conn)
            .await?;
            check_keeps_an_admin(current, next, admins)
                .map_err(|_| StorageError::Rule("an organization must keep at least one admin"))?;
            match next {
                Some(role) => {
                    sqlx::query(
                        "UPDATE memberships SET role = $3 WHERE organization_id = $1 AND user_id = $2",
                    )
                    .bind(org)
                    .bind(user_id)
                    .bind(role.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2",
                    )
                    .bind(org)
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await?;
                    // Their keys in this org act for them; they go with the membership.
                    sqlx::query(
                        "UPDATE api_keys SET revoked_at = $3 WHERE organization_id = $1 \
                         AND user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(org)
                    .bind(user_id)
                    .bind(now())
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Ok(current)
        })
    }
}

#[async_trait::async_trait]
impl OrgStore for Store {
    async fn load_org(&self, org: Uuid) -> anyhow::Result<Option<LoadedOrg>> {
        let tenant = self.tenant(org);
        let Some(row) = tenant.organization().await? else { return Ok(None) };
        let members: Vec<(Uuid, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT user_id, role FROM memberships WHERE organization_id = $1")
                .bind(org)
                .fetch_all(pool)
                .await
        })?;
        let members: HashMap<Uuid, OrgRole> = members
            .into_iter()
            .map(|(user, role)| (user, OrgRole::parse(&role).unwrap_or(OrgRole::Member)))
            .collect();
        Ok(Some(LoadedOrg { plan: row.plan, members }))
    }

    async fn insert_member(&self, org: Uuid, user: Uuid, role: OrgRole) -> anyhow::Result<bool> {
        match self.tenant(org).add_member(user, role).await {
            Ok(()) => Ok(true),
            Err(StorageError::Unique(_)) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    async fn update_member(
        &self,
        org: Uuid,
        user: Uuid,
        role: Option<OrgRole>,
    ) -> anyhow::Result<()> {
        // The transaction re-checks the last-admin rule: another node may have changed roles.
        self.tenant(org).set_member_role(user, role).await?;
        Ok(())
    }

    async fn apply_billing(
        &self,
        org: Uuid,
        event: &BillingEvent,
    ) -> anyhow::Result<BillingOutcome> {
        Ok(self.apply_billing_event(org, event).await?)
    }

    async fn usage(&self, org: Uuid) -> anyhow::Result<Usage> {
        Ok(self.tenant(org).usage().await?)
    }
}
