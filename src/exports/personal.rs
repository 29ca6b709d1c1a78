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

use std::io::Write;

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::storage::Store;
use crate::wire::identity as identity_wire;

/// The files of `user_id`'s export, by name.
pub async fn collect(store: &Store, user_id: Uuid) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
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
    Ok(vec![
        file("profile.json", &identity_wire::user(&user))?,
        file("sessions.json", &sessions)?,
        file("memberships.json", &memberships)?,
        file("items.json", &items)?,
        file("comments.json", &comments)?,
        file("attachments.json", &attachments)?,
        file("audit.json", &audit)?,
    ])
}

fn file(name: &str, value: &impl Serialize) -> anyhow::Result<(String, Vec<u8>)> {
    Ok((name.to_owned(), serde_json::to_vec_pretty(value)?))
}

/// The zip of `files` (deflate). Blocking work: call it off the async runtime.
pub fn zip(files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in files {
        writer.start_file(name.as_str(), options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}
