//! # boardroom-protocol
//!
//! The wire vocabulary shared by the Boardroom server and its clients: every REST body, every
//! socket frame and every event's data, as typed serde values. It depends on serde, serde_json,
//! rmp-serde, uuid, chrono and utoipa (for the OpenAPI schemas) only, so a Rust client can take
//! this crate alone.
//!
//! ## Layout
//! - [`boards`]: boards, columns, groups, items, updates and board members; the snapshot; the
//!   bodies of board writes (one type for the REST body and the socket command).
//! - [`attachments`]: file attachments' metadata (the bytes never travel in these types).
//! - [`events`]: the event kinds, each kind's `data` ([`events::EventData`]), and the REST log.
//! - [`identity`]: registration, sign-in, refresh and password bodies; the session answer;
//!   sessions; `GET /me`; the socket ticket.
//! - [`orgs`]: organizations and their members.
//! - [`api_keys`]: API keys.
//! - [`webhooks`]: webhooks, deliveries, and the body POSTed to a webhook.
//! - [`audit`]: the audit log.
//! - [`billing`]: plans, billing status, checkout and portal bodies, the Stripe webhook answer.
//! - [`exports`]: the board export's format and query; a personal data export's state.
//! - [`health`]: the health probes.
//! - [`client`]: the public client configuration (`GET /config`).
//! - [`cluster`]: the messages between the nodes of a cluster (NATS), versioned.
//! - [`error`]: the stable error codes, shared by REST error bodies and WebSocket error replies,
//!   with the HTTP status each maps to.
//! - [`scope`]: the API key scopes.
//! - [`frames`]: the WebSocket frames: client requests, replies, events, close codes.
//! - [`schema`]: the JSON Schema of the frames, generated from their derives (checked in as
//!   `docs/protocol.schema.json`).
//! - [`codec`]: JSON (text frames) and MessagePack (binary frames), chosen per connection by
//!   `Sec-WebSocket-Protocol`.
//!
//! Every type derives `utoipa::ToSchema`. Golden tests pin each one's JSON and MessagePack;
//! `tests/wire.rs` decodes answers captured from the running server and re-encodes them
//! unchanged.
//!
//! [`PROTOCOL_VERSION`] names the version of the whole vocabulary. Codes and message tags are
//! append-only: a retired name is never reused for something else.

pub mod api_keys;
pub mod attachments;
pub mod audit;
pub mod billing;
pub mod boards;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod error;
pub mod events;
pub mod exports;
pub mod frames;
#[cfg(test)]
mod golden;
pub mod health;
pub mod identity;
pub mod orgs;
pub mod schema;
pub mod scope;
pub mod webhooks;

pub use codec::Encoding;
pub use error::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use frames::{ClientFrame, ClientMessage, RequestId, ServerFrame};
pub use scope::Scope;

/// Version of the wire protocol. A client speaking another major version is refused before any
/// upgrade.
pub const PROTOCOL_VERSION: u32 = 1;
