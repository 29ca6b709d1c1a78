//! # boardroom-protocol
//!
//! The wire vocabulary shared by the Boardroom server and its clients. It depends on serde and
//! rmp-serde only, so a Rust client can take this crate alone.
//!
//! ## Layout
//! - [`error`]: the stable error codes, shared by REST error bodies and WebSocket error replies,
//!   with the HTTP status each maps to.
//! - [`scope`]: the API key scopes.
//! - [`frames`]: the WebSocket frames: client requests, replies, events, close codes.
//! - [`codec`]: JSON (text frames) and MessagePack (binary frames), chosen per connection by
//!   `Sec-WebSocket-Protocol`.
//!
//! [`PROTOCOL_VERSION`] names the version of the whole vocabulary. Codes and message tags are
//! append-only: a retired name is never reused for something else.

pub mod codec;
pub mod error;
pub mod frames;
pub mod scope;

pub use codec::Encoding;
pub use error::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use frames::{ClientFrame, ClientMessage, RequestId, ServerFrame};
pub use scope::Scope;

/// Version of the wire protocol. A client speaking another major version is refused before any
/// upgrade.
pub const PROTOCOL_VERSION: u32 = 1;
