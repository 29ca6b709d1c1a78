//! Board access at the edges: turns a caller's organization access into the board
//! [`Requester`] the board actor judges, the same way for REST handlers and sockets.
//!
//! The board's organization is looked up from the board; a board of an organization the
//! caller does not belong to is 404 `not_found` (never 403), so a board's existence does not
//! leak across organizations. Roles and scopes on the board itself are the actor's to judge.

use boardroom_actors::board::Requester;
use boardroom_actors::roles::OrgRole;
use boardroom_protocol::{ErrorCode, Scope};
use uuid::Uuid;

use crate::auth::{Caller, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The scopes of an API key principal (`None` for a session, which is not scoped).
pub fn scopes_of(principal: &Principal) -> Option<&[Scope]> {
    match principal {
        Principal::ApiKey(grant) => Some(&grant.scopes),
        Principal::User { .. } => None,
    }
}

/// The board's organization and who is asking there. A board the caller's organizations do
/// not hold is 404.
pub async fn requester_for(
    state: &AppState,
    caller: &Caller,
    board: Uuid,
) -> ApiResult<(Uuid, Requester)> {
    requester(state, caller, board, false).await
}

/// [`requester_for`] when re-confirming access granted earlier (a superadmin's bypass is not
/// audited again).
pub async fn requester_recheck(
    state: &AppState,
    caller: &Caller,
    board: Uuid,
) -> ApiResult<(Uuid, Requester)> {
    requester(state, caller, board, true).await
}

async fn requester(
    state: &AppState,
    caller: &Caller,
    board: Uuid,
    recheck: bool,
) -> ApiResult<(Uuid, Requester)> {
    let not_found = || ApiError::not_found("board");
    let org =
        state.boards().org_of(board).await.map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let access = if recheck {
        state.auth().org_access_recheck(caller, org, OrgRole::Member).await
    } else {
        state.auth().org_access(caller, org, OrgRole::Member).await
    };
    let access =
        access.map_err(|err| if err.code() == ErrorCode::NotFound { not_found() } else { err })?;
    Ok((
        org,
        Requester {
            user_id: caller.user_id(),
            org_role: access.role,
            scopes: scopes_of(&caller.principal).map(<[Scope]>::to_vec),
        },
    ))
}
