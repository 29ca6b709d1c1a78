//! Account deletion's rows (GDPR erasure): the schedule on `users`, the organizations a deletion
//! would leave without an admin, and [`Store::erase_account`], the one transaction that takes a
//! person's data out of every table once the actors have ended their memberships.

use boardroom_actors::audit::{AuditAction, AuditEvent};
use boardroom_actors::audit_chain::{self, ErasableField, HashVersion};
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::audit::{append_to_chain, AuditRow, AUDIT_COLUMNS};
use super::{now, Backend, StorageError, StorageResult, Store};
use crate::{on_pool, transaction};

/// What an erasure took out, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    /// Logged board events whose data named them, now naming the deleted user (the nil id).
    pub events_rewritten: u64,
    /// Items whose person cells named them, now naming the deleted user.
    pub items_rewritten: u64,
    /// Audit rows with a field about them taken out (their commitments kept).
    pub audit_rows_erased: u64,
    /// Audit rows from before erasable rows existed (hash version 1) that mention them: left as
    /// they are, since changing them would break the chain.
    pub audit_rows_unerasable: u64,
    /// The boards whose rows changed (content they authored, person cells, logged events,
    /// memberships): their actors must load them again.
    #[serde(skip)]
    pub boards: BTreeSet<Uuid>,
}

/// The stand-in for an erased person wherever a reference must keep its shape (an event's
/// `user_id`, a person cell): the nil id, which the wire shows as "Deleted user".
pub const DELETED_USER: Uuid = Uuid::nil();

impl Store {
    /// Schedules the deletion of `user` at `at`; a deletion already pending keeps its time.
    /// Answers the time in effect.
    pub async fn schedule_deletion(
        &self,
        user: Uuid,
        at: DateTime<Utc>,
    ) -> StorageResult<DateTime<Utc>> {
        let (scheduled,): (Option<DateTime<Utc>>,) = crate::write_on_pool!(self, pool => {
            sqlx::query_as(
                "UPDATE users SET deletion_scheduled_for = COALESCE(deletion_scheduled_for, $2) \
                 WHERE id = $1 RETURNING deletion_scheduled_for",
            )
            .bind(user)
            .bind(at)
            .fetch_one(pool)
            .await
        })?;
        scheduled.ok_or(StorageError::NotFound)
    }

    /// Cancels the pending deletion of `user`; `false` when none was pending.
    pub async fn cancel_deletion(&self, user: Uuid) -> StorageResult<bool> {
        let done = crate::write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE users SET deletion_scheduled_for = NULL \
                 WHERE id = $1 AND deletion_scheduled_for IS NOT NULL",
            )
            .bind(user)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// The accounts whose deletion is due at `at`, oldest first.
    pub async fn due_deletions(&self, at: DateTime<Utc>) -> StorageResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id FROM users WHERE deletion_scheduled_for IS NOT NULL \
                 AND deletion_scheduled_for <= $1 ORDER BY deletion_scheduled_for",
            )
            .bind(at)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The organizations (id, name) `user` is the only admin of while others are members: their
    /// deletion would leave those without an admin.
    pub async fn orgs_needing_another_admin(
        &self,
        user: Uuid,
    ) -> StorageResult<Vec<(Uuid, String)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT o.id, o.name FROM memberships m \
                 JOIN organizations o ON o.id = m.organization_id \
                 WHERE m.user_id = $1 AND m.role = 'admin' \
                 AND NOT EXISTS (SELECT 1 FROM memberships a WHERE a.organization_id = \
                     m.organization_id AND a.user_id <> $1 AND a.role = 'admin') \
                 AND EXISTS (SELECT 1 FROM memberships x WHERE x.organization_id = \
                     m.organization_id AND x.user_id <> $1) \
                 ORDER BY o.name, o.id",
            )
            .bind(user)
            .fetch_all(pool)
            .await
        })?)
    }

    /// The organizations `user` is a member of.
    pub async fn organizations_of(&self, user: Uuid) -> StorageResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT organization_id FROM memberships WHERE user_id = $1")
                .bind(user)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The boards (organization, board) `user` holds a role on.
    pub async fn boards_of(&self, user: Uuid) -> StorageResult<Vec<(Uuid, Uuid)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT m.organization_id, m.board_id FROM board_members m \
                 JOIN boards b ON b.id = m.board_id \
                 WHERE m.user_id = $1 AND b.deleted_at IS NULL",
            )
            .bind(user)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Disables the enabled webhooks `user` created (reason `creator_deleted`), before their
    /// memberships end, so the webhook actor finds none left to judge; answers how many.
    pub async fn disable_webhooks_created_by(&self, user: Uuid) -> StorageResult<u64> {
        Ok(crate::write_on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhooks SET enabled = false, disabled_reason = 'creator_deleted', \
                 updated_at = $2 WHERE created_by = $1 AND enabled",
            )
            .bind(user)
            .bind(now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// Erases `user` (whose email is `email`) in one transaction: their id taken out of logged
    /// events and person cells (the nil id in its place), the idempotency records naming them
    /// and set-aside audit entries about them deleted, the audit rows about them erased to keyed
    /// commitments, and the user row deleted (sessions, API keys, memberships and exports go
    /// with it; what they authored keeps a NULL author). Appends `account.deleted` (target:
    /// their pseudonym). Needs the audit key.
    pub async fn erase_account(&self, user: Uuid, email: &str) -> StorageResult<Erasure> {
        let key = self
            .audit_key()
            .cloned()
            .ok_or(StorageError::Rule("erasing an account needs the audit key"))?;
        let backend = self.backend();
        let id = user.to_string();
        let email = email.to_lowercase();
        // Postgres keeps JSON as jsonb: searched as its text.
        let (payload, values, metadata, response) = match backend {
            Backend::Postgres => {
                ("payload::text", "column_values::text", "metadata::text", "response::text")
            }
            Backend::Sqlite => ("payload", "column_values", "metadata", "response"),
        };
        let idempotency_sql =
            format!("DELETE FROM idempotency_keys WHERE user_id = $1 OR {response} LIKE $2");
        let like_id = format!("%{id}%");
        let like_email = format!("%{email}%");
        let events_sql =
            format!("SELECT board_id, seq, payload FROM board_events WHERE {payload} LIKE $1");
        let items_sql =
            format!("SELECT id, board_id, column_values FROM items WHERE {values} LIKE $1");
        let audit_sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE actor_id = $1 OR target LIKE $2 \
             OR target = $3 OR {metadata} LIKE $2 OR {metadata} LIKE $4"
        );
        transaction!(self, conn => {
            let mut erasure = Erasure::default();
            let touched: Vec<(Uuid,)> = sqlx::query_as(
                "SELECT board_id FROM items WHERE created_by = $1 \
                 UNION SELECT board_id FROM updates WHERE author_id = $1 \
                 UNION SELECT board_id FROM attachments WHERE created_by = $1 \
                 UNION SELECT board_id FROM board_members WHERE user_id = $1 \
                 UNION SELECT board_id FROM board_events WHERE actor = $1",
            )
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
            erasure.boards.extend(touched.into_iter().map(|(board,)| board));
            sqlx::query("UPDATE board_events SET actor = NULL WHERE actor = $1")
                .bind(user)
                .execute(&mut *conn)
                .await?;
            let events: Vec<(Uuid, i64, Json<Value>)> =
                sqlx::query_as(&events_sql).bind(&like_id).fetch_all(&mut *conn).await?;
            for (board, seq, Json(mut data)) in events {
                replace_id(&mut data, &id);
                sqlx::query("UPDATE board_events SET payload = $3 WHERE board_id = $1 AND seq = $2")
                    .bind(board)
                    .bind(seq)
                    .bind(Json(&data))
                    .execute(&mut *conn)
                    .await?;
                erasure.boards.insert(board);
                erasure.events_rewritten += 1;
            }
            let items: Vec<(Uuid, Uuid, Json<Value>)> =
                sqlx::query_as(&items_sql).bind(&like_id).fetch_all(&mut *conn).await?;
            for (item, board, Json(mut values)) in items {
                erasure.boards.insert(board);
                replace_id(&mut values, &id);
                sqlx::query("UPDATE items SET column_values = $2 WHERE id = $1")
                    .bind(item)
                    .bind(Json(&values))
                    .execute(&mut *conn)
                    .await?;
                erasure.items_rewritten += 1;
            }
            // Recorded answers that name them go too: a retry within the window is then new.
            sqlx::query(&idempotency_sql).bind(user).bind(&like_id).execute(&mut *conn).await?;
            // Mail to their address (sent or waiting: a sent row keeps the address) and
            // invitations naming it; the invitations they sent lose the sender by the key.
            sqlx::query("DELETE FROM mail_outbox WHERE lower(to_email) = $1")
                .bind(&email)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM invitations WHERE lower(email) = $1")
                .bind(&email)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM audit_dead_letters WHERE entry LIKE $1 OR entry LIKE $2")
                .bind(&like_id)
                .bind(&like_email)
                .execute(&mut *conn)
                .await?;
            let rows: Vec<AuditRow> = sqlx::query_as(&audit_sql)
                .bind(user)
                .bind(&like_id)
                .bind(&email)
                .bind(&like_email)
                .fetch_all(&mut *conn)
                .await?;
            for row in rows {
                if row.hash_version != HashVersion::V2.number() {
                    erasure.audit_rows_unerasable += 1;
                    continue;
                }
                let seq = row.seq;
                let Ok(mut stored) = row.into_stored() else { continue };
                let fields = fields_about(&stored.event, user, &id, &email);
                if fields.is_empty() {
                    continue;
                }
                audit_chain::erase_fields(&key, &mut stored.event, &mut stored.erased, &fields);
                let event = &stored.event;
                sqlx::query(
                    "UPDATE audit_log SET actor_id = $2, target = $3, ip = $4, user_agent = $5, \
                     metadata = $6, erased = $7 WHERE seq = $1",
                )
                .bind(seq)
                .bind(event.actor_id)
                .bind(event.target.as_deref())
                .bind(event.ip.as_deref())
                .bind(event.user_agent.as_deref())
                .bind(Json(&event.metadata))
                .bind(Json(&stored.erased))
                .execute(&mut *conn)
                .await?;
                erasure.audit_rows_erased += 1;
            }
            let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(user)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(StorageError::NotFound);
            }
            let mut done = AuditEvent::new(AuditAction::AccountDeleted);
            done.target = Some(audit_chain::pseudonym(&key, user));
            done.metadata = serde_json::to_value(&erasure).unwrap_or_default();
            let key = Some(key.clone());
            append_to_chain!(backend, conn, [&done], key);
            Ok(erasure)
        })
    }
}

/// Replaces every string in `value` that is `id` (and every object key that is) with the nil id.
fn replace_id(value: &mut Value, id: &str) {
    match value {
        Value::String(text) if text == id => *text = DELETED_USER.to_string(),
        Value::Array(items) => items.iter_mut().for_each(|item| replace_id(item, id)),
        Value::Object(map) => {
            if let Some(inner) = map.remove(id) {
                map.insert(DELETED_USER.to_string(), inner);
            }
            map.values_mut().for_each(|item| replace_id(item, id));
        }
        _ => {}
    }
}

/// The fields of an audit row that are about the person: their actor id, a target naming them
/// (by id or email), metadata keys whose value names them, and the IP and User-Agent of a row
/// they made (or that someone made against their account without signing in).
fn fields_about(event: &AuditEvent, user: Uuid, id: &str, email: &str) -> Vec<ErasableField> {
    let mut fields = Vec::new();
    let acted = event.actor_id == Some(user);
    if acted {
        fields.push(ErasableField::Actor);
    }
    let targeted =
        event.target.as_deref().is_some_and(|t| t.contains(id) || t.to_lowercase() == email);
    if targeted {
        fields.push(ErasableField::Target);
    }
    if let Some(map) = event.metadata.as_object() {
        for (name, value) in map {
            let text = value.to_string().to_lowercase();
            if text.contains(id) || text.contains(email) {
                fields.push(ErasableField::Metadata(name.clone()));
            }
        }
    }
    // An attempt nobody was signed in for (a failed login on their email) came from them, or
    // at them: its address goes with it.
    if acted || (!fields.is_empty() && event.actor_id.is_none()) {
        fields.extend([ErasableField::Ip, ErasableField::UserAgent]);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_replaced_wherever_they_stand() {
        let id = Uuid::now_v7().to_string();
        let mut value =
            serde_json::json!({"user_id": id, "values": {"c": {"ids": [id, "x"]}}, id.clone(): 1});
        replace_id(&mut value, &id);
        assert!(!value.to_string().contains(&id));
        assert_eq!(value["user_id"], DELETED_USER.to_string());
        assert_eq!(value["values"]["c"]["ids"][1], "x");
    }
}
