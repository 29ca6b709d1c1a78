//! Domain → wire: the one place per resource that turns what the actors answer
//! (`boardroom_actors::domain`, `boardroom_actors::board`) and the server's own rows (users,
//! sessions, organizations, API keys, webhooks, deliveries, audit) into the types of
//! `boardroom-protocol`. Handlers, the socket gateway, the fan-out, webhooks and the event log
//! call these; nothing else builds an entity's wire shape.
//!
//! - [`attachments`]: a file's metadata (never where its bytes are).
//! - [`boards`]: the board, its columns, groups, items, updates and members; the snapshot.
//! - [`events`]: each event's `data`, the logged form of it, and the event as the REST log
//!   shows it.
//! - [`identity`]: users, the sign-in answer, sessions and `GET /me`.
//! - [`orgs`]: organizations and their members.
//! - [`api_keys`]: API keys, listed and as created.
//! - [`webhooks`]: a webhook (never its secret), the answers that show a secret once, deliveries.
//! - [`audit`]: an organization's audit rows.

pub mod api_keys;
pub mod attachments;
pub mod audit;
pub mod boards;
pub mod events;
pub mod exports;
pub mod identity;
pub mod orgs;
pub mod webhooks;
