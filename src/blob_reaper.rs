//! Deleting the files of what was deleted: listens to committed board events and, after an
//! item, group or comment was deleted (their attachment rows went with them, by `ON DELETE
//! CASCADE`), asks the vault's sweep for a pass; after a board was deleted (softly, so its rows
//! stay), takes its attachment rows out and deletes their blobs. A deleted attachment's own blob
//! is deleted by its route. The sweep is the backstop for anything missed here (a crash, a
//! listener that lagged behind the bus).

use boardroom_actors::domain::EventData;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Starts the listener; it ends when the bus closes.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    let mut events = state.boards().bus().subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => match event.data {
                    EventData::ItemDeleted { .. }
                    | EventData::GroupDeleted { .. }
                    | EventData::UpdateDeleted { .. } => state.sweeper().poke(),
                    EventData::BoardDeleted => {
                        let tenant = state.store().tenant(event.organization_id);
                        match tenant.take_board_attachments(event.board_id).await {
                            Ok(blobs) => {
                                for blob in blobs {
                                    if let Err(err) = state.vault().delete(&blob).await {
                                        tracing::warn!(error = %err, "a deleted board's blob was not deleted; the sweep will");
                                    }
                                }
                                state.sweeper().poke();
                            }
                            Err(err) => {
                                tracing::error!(board = %event.board_id, error = %err, "a deleted board's attachments were not taken out");
                            }
                        }
                    }
                    _ => {}
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the blob reaper lagged behind the event bus");
                    state.sweeper().poke();
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}
