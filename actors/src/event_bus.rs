//! The in-process event bus: committed board events, in order, to whoever listens.
//!
//! A board actor publishes each event after its transaction commits, in `seq` order. Listeners
//! (sockets, the webhook actor) subscribe; one that falls behind the buffer learns how
//! many it missed and catches up from `board_events`, which holds every event durably.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::BoardEvent;

/// Events buffered per listener before a slow one starts missing them.
pub const BUS_CAPACITY: usize = 4096;

/// The bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<BoardEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { sender: broadcast::channel(BUS_CAPACITY).0 }
    }
}

impl EventBus {
    /// Publishes a committed event.
    pub fn publish(&self, event: Arc<BoardEvent>) {
        // No listener is fine: the event is already durable in board_events.
        let _ = self.sender.send(event);
    }

    /// Starts listening from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BoardEvent>> {
        self.sender.subscribe()
    }
}
