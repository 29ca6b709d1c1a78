//! A person's data export (GDPR access and portability): a zip (deflate) of JSON files.
//!
//! - `profile.json`: the account (never its password hash);
//! - `sessions.json`: every session, revoked and expired ones too (never refresh secrets);
//! - `memberships.json`: the organizations and roles;
//! - `items.json`, `comments.json`, `attachments.json`: what the person authored in their
//!   organizations (attachments as metadata only);
//! - `audit.json`: the audit entries whose actor or target is the person. Where someone else
//!   acted on the person, that actor's address and browser are left out: they are the other
//!   person's data.

use serde_json::{json, Value};
use uuid::Uuid;

use super::archive::Files;
use crate::storage::Store;
use crate::wire::identity as identity_wire;

/// Puts the files of `user_id`'s export into `files`.
pub async fn collect(store: &Store, user_id: Uuid, files: &Files) -> anyhow::Result<()> {
    let user =
        store.user_by_id(user_id).await?.ok_or_else(|| anyhow::anyhow!("the user is gone"))?;
    let sessions = store.sessions_record(user_id).await?;
    let orgs = store.orgs_of_user(user_id).await?;
    let (mut items, mut comments, mut attachments) = (Vec::new(), Vec::new(), Vec::new());
    for (org, _) in &orgs {
        let tenant = store.tenant(org.id);
        items.extend(tenant.items_created_by(user_id).await?);
        comments.extend(tenant.comments_by(user_id).await?);
        attachments.extend(tenant.attachments_by(user_id).await?);
    }
    let memberships: Vec<Value> = orgs
        .iter()
        .map(|(org, role)| {
            json!({ "organization_id": org.id, "name": org.name, "role": role.as_str() })
        })
        .collect();
    let audit: Vec<Value> = store
        .audit_about_user(user_id)
        .await?
        .into_iter()
        .map(|row| {
            let own = row.actor_id == Some(user_id);
            json!({
                "id": row.id,
                "organization_id": row.organization_id,
                "action": row.action,
                "actor_id": row.actor_id,
                "target": row.target,
                "ip": if own { row.ip } else { None },
                "user_agent": if own { row.user_agent } else { None },
                "metadata": row.metadata.0,
                "created_at": row.created_at,
            })
        })
        .collect();
    files.json("profile.json", &identity_wire::user(&user)).await?;
    files.json("sessions.json", &sessions).await?;
    files.json("memberships.json", &memberships).await?;
    files.json("items.json", &items).await?;
    files.json("comments.json", &comments).await?;
    files.json("attachments.json", &attachments).await?;
    files.json("audit.json", &audit).await
}
