//! Domain → wire: the one place per resource that turns what the actors answer
//! (`boardroom_actors::domain`, `boardroom_actors::board`) into the types of
//! `boardroom-protocol`. Handlers, the socket gateway, the fan-out, webhooks and the event log
//! call these; nothing else builds an entity's wire shape.
//!
//! - [`boards`]: the board, its columns, groups, items, updates and members; the snapshot.
//! - [`events`]: each event's `data`, the logged form of it, and the event as the REST log
//!   shows it.

pub mod boards;
pub mod events;
