//! Invitations to organizations: by address, with a role, open until accepted, declined,
//! revoked, replaced by a newer one or expired. An organization's own are reached through its
//! [`TenantStore`]; a person's are looked up by their verified address across organizations
//! (deliberately not tenant-scoped: the address names whose they are).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::mail_outbox::insert_mail;
use super::{new_id, now, NewMail, StorageResult, Store, TenantStore};
use crate::{on_pool, write_on_pool};

/// A stored invitation, with its organization's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    /// Id.
    pub id: Uuid,
    /// The organization.
    pub organization_id: Uuid,
    /// Its name.
    pub organization_name: String,
    /// The invited address (lower-cased).
    pub email: String,
    /// The role it grants, as stored.
    pub role: String,
    /// Who invited; `None` once their account is gone.
    pub invited_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Stops working.
    pub expires_at: DateTime<Utc>,
}

const INVITATION_COLUMNS: &str = "i.id, i.organization_id, o.name AS organization_name, i.email, \
                                  i.role, i.invited_by, i.created_at, i.expires_at";

/// The open, unexpired invitations (`$1` is now) that `filter` (on `i`, from `$2`) picks,
/// newest first.
fn open_invitations(filter: &str) -> String {
    format!(
        "SELECT {INVITATION_COLUMNS} FROM invitations i \
         JOIN organizations o ON o.id = i.organization_id \
         WHERE i.closed_at IS NULL AND i.expires_at > $1 AND {filter} \
         ORDER BY i.created_at DESC, i.id"
    )
}

/// Why an invitation stopped being open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its person joined.
    Accepted,
    /// Its person said no.
    Declined,
    /// An admin withdrew it.
    Revoked,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::Accepted => "accepted",
            Closed::Declined => "declined",
            Closed::Revoked => "revoked",
        }
    }
}

impl TenantStore<'_> {
    /// Opens an invitation for `ttl` (closing an open one to the same address, which it
    /// replaces) and queues the `mail` made for its id and expiry, in one transaction.
    pub async fn create_invitation(
        &self,
        email: &str,
        role: &str,
        invited_by: Uuid,
        ttl: chrono::Duration,
        mail: impl FnOnce(Uuid, DateTime<Utc>) -> NewMail,
    ) -> StorageResult<InvitationRow> {
        let id = new_id();
        let at = now();
        let expires_at = at + ttl;
        let mail = mail(id, expires_at);
        let org = self.org_id();
        crate::transaction!(self, conn => {
            sqlx::query(
                "UPDATE invitations SET closed_at = $3, closed_reason = 'replaced' \
                 WHERE organization_id = $1 AND email = $2 AND closed_at IS NULL",
            )
            .bind(org)
            .bind(email)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO invitations (id, organization_id, email, role, invited_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(org)
            .bind(email)
            .bind(role)
            .bind(invited_by)
            .bind(at)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
            insert_mail!(&mut *conn, &mail)?;
            let sql = format!(
                "SELECT {INVITATION_COLUMNS} FROM invitations i \
                 JOIN organizations o ON o.id = i.organization_id WHERE i.id = $1"
            );
            Ok(sqlx::query_as::<_, InvitationRow>(&sql).bind(id).fetch_one(&mut *conn).await?)
        })
    }

    /// The organization's open invitations, newest first.
    pub async fn invitations(&self) -> StorageResult<Vec<InvitationRow>> {
        let sql = open_invitations("i.organization_id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, InvitationRow>(&sql)
                .bind(now())
                .bind(self.org_id())
                .fetch_all(pool)
                .await
        })?)
    }

    /// Revokes an open invitation of this organization; false when there is none.
    pub async fn revoke_invitation(&self, id: Uuid) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE invitations SET closed_at = $3, closed_reason = 'revoked' \
                 WHERE id = $1 AND organization_id = $2 AND closed_at IS NULL",
            )
            .bind(id)
            .bind(self.org_id())
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}

impl Store {
    /// Open, unexpired invitations to `email`, newest first.
    pub async fn invitations_for(&self, email: &str) -> StorageResult<Vec<InvitationRow>> {
        let sql = open_invitations("i.email = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, InvitationRow>(&sql).bind(now()).bind(email).fetch_all(pool).await
        })?)
    }

    /// The open, unexpired invitation `id` if it is addressed to `email`.
    pub async fn invitation_for(
        &self,
        id: Uuid,
        email: &str,
    ) -> StorageResult<Option<InvitationRow>> {
        let sql = open_invitations("i.id = $2 AND i.email = $3");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, InvitationRow>(&sql)
                .bind(now())
                .bind(id)
                .bind(email)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Closes the open invitation `id` to `email`; false when it was not open (any more).
    pub async fn close_invitation(
        &self,
        id: Uuid,
        email: &str,
        why: Closed,
    ) -> StorageResult<bool> {
        let done = write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE invitations SET closed_at = $3, closed_reason = $4 \
                 WHERE id = $1 AND email = $2 AND closed_at IS NULL",
            )
            .bind(id)
            .bind(email)
            .bind(now())
            .bind(why.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}
