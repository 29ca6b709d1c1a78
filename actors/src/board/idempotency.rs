//! Idempotency: a command sent again with the key of an earlier one is answered with the first
//! answer instead of being applied twice. The caller's task asks the store first
//! ([`KeyLookup`]); the actor remembers the keys it committed or holds pending since it was
//! loaded, so it rarely needs to ask again, and it never repeats an answer whose batch failed.

use std::time::Instant;

use ractor::{ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::{BoardMessage, BoardState, CommandOutput, IdempotentResult, KeyLookup, Requester};
use crate::domain::BoardError;

/// How many recent idempotency keys a board remembers without asking the store.
const RECENT_KEYS: usize = 10_000;

impl BoardState {
    /// The answer to repeat for a command sent with `key`, or `None` if the key is new.
    pub(super) async fn repeated(
        &mut self,
        myself: &ActorRef<BoardMessage>,
        requester: &Requester,
        key: &str,
        key_lookup: KeyLookup,
    ) -> Result<Option<Result<CommandOutput, BoardError>>, ActorProcessingErr> {
        let cache_key = (requester.user_id, key.to_owned());
        let remembered = self.recent_keys.get(&cache_key).cloned();
        // The answer to repeat, and whether it is known to be committed.
        let known = match (key_lookup, remembered) {
            (KeyLookup::Found(output), _) => Some((*output, true)),
            (_, Some(output)) => Some((output, false)),
            (KeyLookup::Absent(at), None) if at >= self.keys_trusted_since => None,
            (_, None) => self
                .store
                .idempotent_result(self.org(), self.board.id, requester.user_id, key)
                .await
                .unwrap_or_else(|err| {
                    tracing::warn!(error = ?err, "idempotency lookup failed");
                    None
                })
                .map(|output| (output, true)),
        };
        let Some((output, committed)) = known else { return Ok(None) };
        // Answer only after any batch holding the original has committed. If that batch
        // failed, its keys were forgotten: the original never happened, and neither may its
        // repetition.
        self.flush(myself).await?;
        Ok(Some(if committed || self.recent_keys.contains_key(&cache_key) {
            Ok(output)
        } else {
            Err(BoardError::Unavailable("the first attempt was not saved; retry".into()))
        }))
    }

    /// Records `user`'s `key` with the answer of the command just applied, which joined the
    /// pending batch: it is written with the batch, and remembered until then (and after).
    pub(super) fn remember_key(&mut self, user: Uuid, key: String, output: CommandOutput) {
        let Some(pending) = self.pending.as_mut() else { return };
        // Past the bound (and past twice the pending keys, so a huge batch is not re-inserted
        // on every command).
        if self.recent_keys.len() >= RECENT_KEYS.max(2 * pending.idempotent.len()) {
            // Committed keys are all in the store from now on; pending ones are not yet, so
            // they stay.
            self.recent_keys.clear();
            for pending in &pending.idempotent {
                self.recent_keys
                    .insert((pending.user_id, pending.key.clone()), pending.output.clone());
            }
            self.keys_trusted_since = Instant::now();
        }
        self.recent_keys.insert((user, key.clone()), output.clone());
        pending.idempotent.push(IdempotentResult { user_id: user, key, output });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use ractor::Actor;

    use super::*;
    use crate::board::{now, BoardActor, BoardArgs, LoadedBoard};
    use crate::bounds::BoardLimits;
    use crate::domain::{Board, BoardCommand, BoardRole, Group, Placement};
    use crate::event_bus::EventBus;
    use crate::roles::OrgRole;
    use crate::test_stores::{unused_orgs, TestBoards};

    /// A retry that arrives while its original still waits in the batch is answered after the
    /// batch's commit; when that commit fails, the original never happened, so neither did the
    /// retry: both are told to try again, and a later retry applies it once.
    #[tokio::test]
    async fn a_repeat_of_a_command_whose_batch_failed_is_not_a_success() {
        let (org, board_id, group_id, user) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let at = now();
        let store = Arc::new(TestBoards::holding(LoadedBoard {
            board: Board {
                id: board_id,
                organization_id: org,
                name: "b".into(),
                description: String::new(),
                created_at: at,
                updated_at: at,
            },
            seq: 1,
            members: HashMap::from([(user, BoardRole::Owner)]),
            columns: Vec::new(),
            groups: vec![Group {
                id: group_id,
                title: "g".into(),
                color: None,
                position: "a".into(),
            }],
            items: Vec::new(),
            attachment_counts: HashMap::new(),
        }));
        store.failing.store(true, Ordering::SeqCst);
        let orgs = unused_orgs().await;
        let args = BoardArgs {
            loaded: store.board.clone().unwrap(),
            store: store.clone(),
            bus: EventBus::default(),
            orgs,
            idle_timeout: Duration::from_secs(60),
            limits: BoardLimits::default(),
        };
        let (actor, _) = Actor::spawn(None, BoardActor, args).await.unwrap();
        let create = |reply| BoardMessage::Command {
            requester: Requester { user_id: user, org_role: OrgRole::Member, scopes: None },
            command: BoardCommand::CreateItem {
                group_id,
                name: "once".into(),
                values: BTreeMap::new(),
                placement: Placement::default(),
            },
            idempotency_key: Some("k".into()),
            key_lookup: KeyLookup::Absent(Instant::now()),
            reply,
        };
        // Both wait in the mailbox before the first is applied: the second finds the key
        // remembered from the first, whose batch then fails.
        let (first_tx, first) = ractor::concurrency::oneshot();
        let (retry_tx, retry) = ractor::concurrency::oneshot();
        actor.cast(create(first_tx.into())).unwrap();
        actor.cast(create(retry_tx.into())).unwrap();
        assert!(matches!(first.await.unwrap(), Err(BoardError::Unavailable(_))));
        assert!(matches!(retry.await.unwrap(), Err(BoardError::Unavailable(_))));
        // The store works again: the next retry applies the command, once.
        store.failing.store(false, Ordering::SeqCst);
        let (again_tx, again) = ractor::concurrency::oneshot();
        actor.cast(create(again_tx.into())).unwrap();
        assert!(again.await.unwrap().is_ok());
        assert_eq!(*store.committed_keys.lock().unwrap(), vec!["k".to_owned()]);
        actor.stop(None);
    }
}
