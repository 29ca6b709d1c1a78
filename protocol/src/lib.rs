//! # boardroom-protocol
//!
//! The wire vocabulary shared by the Boardroom server and its clients. It depends on serde and
//! rmp-serde only, so a Rust client can take this crate alone.
//!
//! ## Layout
//! - [`error`]: the stable error codes, shared by REST error bodies and WebSocket error replies,
//!   with the HTTP status each maps to.
//! - [`scope`]: the API key scopes.
//!
//! [`PROTOCOL_VERSION`] names the version of the whole vocabulary. Codes and message tags are
//! append-only: a retired name is never reused for something else.

pub mod error;
pub mod scope;

pub use error::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use scope::Scope;

/// Version of the wire protocol. A client speaking another major version is refused before any
/// upgrade.
pub const PROTOCOL_VERSION: u32 = 1;
