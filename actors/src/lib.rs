//! # boardroom-actors
//!
//! The supervised actors of Boardroom and the domain rules they enforce. Each actor owns one
//! entity's state and serializes its writes; the edges (HTTP, WebSocket) talk to actors through
//! handles, and actors reach the database through the storage traits defined here and
//! implemented by the server crate.
//!
//! ## Layout
//! - [`supervisor`]: the root supervisor; starts the children and restarts those that fail.
//! - [`audit`]: the audit actor; appends security events to the tamper-evident audit log off the
//!   request path, in batches.
//! - [`audit_chain`]: the hash chain that makes the audit log tamper-evident.
//! - [`roles`]: organization roles and the rules on changing them.

pub mod audit;
pub mod audit_chain;
pub mod roles;
pub mod supervisor;
