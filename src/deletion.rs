//! Account deletion (GDPR erasure): asking for it, cancelling it, and erasing accounts whose
//! grace period (`BOARDROOM_DELETION_GRACE_DAYS`) has ended.
//!
//! The rules live here; `/me/deletion` (src/http/auth.rs) only calls them. An erasure
//! ([`run_due`], hourly from the server's maintenance tick and from
//! `boardroom admin run-deletions`) goes in this order, each step through whoever owns it:
//!
//! 1. the last-admin rule again (it may have changed since the request): an account whose
//!    deletion would leave an organization with members and no admin is held back and logged;
//! 2. the person's webhooks are disabled (`creator_deleted`), before their access shrinks;
//! 3. their board roles end through each board's actor (`member.removed`), their organization
//!    memberships through each org actor (its roles in memory, API keys revoked, webhooks
//!    re-judged), cached keys are dropped and their sockets re-check (and close);
//! 4. their exports are deleted through the exporter's one delete path
//!    ([`Exporter::delete_all_of`](crate::exports::Exporter::delete_all_of));
//! 5. the attempts counted against their id and email are forgotten, then
//!    [`Store::erase_account`](crate::storage::Store::erase_account): one transaction that
//!    takes them out of every table (audit rows keep verifying through keyed commitments) and
//!    deletes the user row;
//! 6. cached sessions are dropped and the actors of the boards whose rows changed load them
//!    again, so what they authored shows as "Deleted user".

use boardroom_actors::audit::AuditAction;
use boardroom_actors::board::Requester;
use boardroom_actors::domain::BoardCommand;
use boardroom_actors::org::{MemberChange, OrgError};
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::cluster::Invalidation;
use boardroom_protocol::ErrorCode;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{Erasure, StorageError};

/// How often the server runs due deletions.
pub const RUN_EVERY: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Schedules the caller's account for erasure after the grace period, once they proved it is
/// them ([`crate::auth::Auth::confirm_owner`]) and no organization would be left without an
/// admin (`409 last_admin`, naming them). Asking again while pending answers the time already
/// set. Sessions only.
pub async fn request(
    state: &AppState,
    caller: &Caller,
    password: Option<&str>,
) -> Result<DateTime<Utc>, ApiError> {
    let (user, session) = caller.require_session()?;
    let meta = &caller.meta;
    let refused = AuditAction::AccountDeletionRefused;
    state.auth().confirm_owner(user, session, password, meta, refused).await?;
    let blocking = state.store().orgs_needing_another_admin(user).await?;
    if !blocking.is_empty() {
        state.auth().audit(refused, meta, |e| {
            e.actor_id = Some(user);
            e.target = Some(user.to_string());
            e.metadata = serde_json::json!({
                "reason": "last_admin",
                "organizations": blocking.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            });
        });
        return Err(last_admin(&blocking));
    }
    let grace = chrono::Duration::days(i64::from(state.settings().deletion_grace_days));
    let scheduled = state.store().schedule_deletion(user, crate::storage::now() + grace).await?;
    state.auth().audit(AuditAction::AccountDeletionRequested, meta, |e| {
        e.actor_id = Some(user);
        e.target = Some(user.to_string());
        e.metadata = serde_json::json!({ "scheduled_for": scheduled });
    });
    Ok(scheduled)
}

/// `409 last_admin` naming the organizations (name and id) that need another admin first.
fn last_admin(orgs: &[(Uuid, String)]) -> ApiError {
    let named: Vec<String> = orgs.iter().map(|(id, name)| format!("{name} ({id})")).collect();
    ApiError::new(
        ErrorCode::LastAdmin,
        format!(
            "you are the only admin of organizations with other members; make someone else an \
             admin first: {}",
            named.join(", ")
        ),
    )
}

/// Cancels the caller's pending deletion; `404` when none is pending. Sessions only.
pub async fn cancel(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let (user, _) = caller.require_session()?;
    if !state.store().cancel_deletion(user).await? {
        return Err(ApiError::not_found("pending deletion"));
    }
    state.auth().audit(AuditAction::AccountDeletionCancelled, &caller.meta, |e| {
        e.actor_id = Some(user);
        e.target = Some(user.to_string());
    });
    Ok(())
}

/// What one run of due deletions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ran {
    /// Accounts erased.
    pub erased: usize,
    /// Accounts held back (the last-admin rule): tried next run.
    pub held_back: usize,
    /// Accounts whose erasure failed (logged): tried next run.
    pub failed: usize,
}

/// Why an account's erasure did not happen this run.
enum Held {
    /// It would leave these organizations without an admin.
    LastAdmin(Vec<(Uuid, String)>),
}

/// Erases every account whose deletion is due now.
pub async fn run_due(state: &AppState) -> Result<Ran, StorageError> {
    let due = state.store().due_deletions(crate::storage::now()).await?;
    let mut ran = Ran::default();
    for user in due {
        match erase(state, user).await {
            Ok(Ok(erasure)) => {
                ran.erased += 1;
                tracing::info!(
                    audit_rows_erased = erasure.audit_rows_erased,
                    audit_rows_unerasable = erasure.audit_rows_unerasable,
                    "account erased"
                );
            }
            Ok(Err(Held::LastAdmin(orgs))) => {
                ran.held_back += 1;
                let orgs: Vec<Uuid> = orgs.into_iter().map(|(id, _)| id).collect();
                tracing::warn!(
                    %user, ?orgs,
                    "account deletion held back: it would leave organizations with members and \
                     no admin"
                );
            }
            Err(err) => {
                ran.failed += 1;
                tracing::error!(%user, error = %err, "account erasure failed; retried next run");
            }
        }
    }
    Ok(ran)
}

async fn erase(state: &AppState, user: Uuid) -> anyhow::Result<Result<Erasure, Held>> {
    let store = state.store();
    let Some(account) = store.user_by_id(user).await? else {
        return Ok(Ok(Erasure::default()));
    };
    let blocking = store.orgs_needing_another_admin(user).await?;
    if !blocking.is_empty() {
        return Ok(Err(Held::LastAdmin(blocking)));
    }
    // Everything queued about them (the request itself, with a zero grace) is written first,
    // so the erasure below finds it.
    state.runtime().audit().flush().await;
    store.disable_webhooks_created_by(user).await?;
    end_memberships(state, user).await?;
    state.exports().delete_all_of(user).await?;
    state.auth().forget_limits_of(user, &account.email).await?;
    // Rows appended while memberships ended (board member removals) are in the chain by now.
    state.runtime().audit().flush().await;
    let erasure = store.erase_account(user, &account.email).await?;
    state.auth().forget_user(user);
    for board in &erasure.boards {
        state.boards().reload(*board).await;
    }
    Ok(Ok(erasure))
}

/// Ends `user`'s board roles and organization memberships through their actors. A refusal (the
/// last owner of a board, the only member of an organization) is left to the user row's
/// deletion, whose cascade takes the row; the actor then loads again (boards) or holds a member
/// who can no longer sign in until it stops idle (organizations).
async fn end_memberships(state: &AppState, user: Uuid) -> anyhow::Result<()> {
    let store = state.store();
    for (org, board) in store.boards_of(user).await? {
        // They act on their own role, as an org admin would (admins act as owners).
        let requester = Requester { user_id: user, org_role: OrgRole::Admin, scopes: None };
        let command = BoardCommand::RemoveMember { user_id: user };
        if let Err(err) = state.boards().command(org, board, requester, command, None).await {
            tracing::info!(%board, error = %err, "board role left to the erasure's cascade");
        }
    }
    for org in store.organizations_of(user).await? {
        match state.auth().orgs().change(org, user, MemberChange::Remove).await {
            Ok(_) | Err(OrgError::NotFound(_)) | Err(OrgError::LastAdmin) => {}
            Err(err) => anyhow::bail!("ending the membership in {org}: {err}"),
        }
        state.auth().announce(Invalidation::OrgMember { organization_id: org, user_id: user });
    }
    Ok(())
}
