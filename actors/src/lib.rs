//! # boardroom-actors
//!
//! The supervised actors of Boardroom and the domain rules they enforce. Each actor owns one
//! entity's state and serializes its writes; the edges (HTTP, WebSocket) talk to actors through
//! handles, and actors reach the database through the storage traits defined here and
//! implemented by the server crate.
//!
//! ## Layout
//! - [`supervisor`]: the root supervisor; starts the children and restarts those that fail.
//! - [`billing`]: a Stripe event's change to an organization and the rule applying it.
//! - [`board`]: the board actor: a board's authorization state and contents, its command rules,
//!   group commit and event log.
//! - [`boards`]: the registry that starts board actors on first use and restarts failed ones.
//! - [`domain`]: the board model, commands, events and errors.
//! - [`org`]: the org actor (memberships, roles, plan and its limits) and its registry.
//! - [`plans`]: what each plan allows an organization to hold, and the check against it.
//! - [`named`]: start-on-first-use under a name, and idle stops, for both registries.
//! - [`remote`]: actors on several nodes: the [`remote::Placement`] a cluster gives the
//!   registries (leases, calls to the owning node) and the calls and answers between nodes.
//! - [`event_bus`]: committed events, in order, to sockets and webhooks.
//! - [`position`]: fractional position keys, so reordering never renumbers.
//! - [`values`]: what each column type accepts.
//! - [`bounds`]: how much one board may hold (columns, groups, items, value and body sizes).
//! - [`text`]: which characters client text may hold, shared by every edge.
//! - [`audit`]: the audit actor; appends security events to the tamper-evident audit log off the
//!   request path, in batches.
//! - [`audit_chain`]: the hash chain that makes the audit log tamper-evident.
//! - [`webhook`]: the webhook actor; fills the durable outbox from board events and schedules
//!   delivery attempts, in order per webhook.
//! - [`roles`]: organization roles and the rules on changing them.

pub mod audit;
pub mod audit_chain;
pub mod billing;
pub mod board;
pub mod boards;
pub mod bounds;
pub mod domain;
pub mod event_bus;
pub mod named;
pub mod org;
pub mod plans;
pub mod position;
pub mod remote;
pub mod roles;
pub mod supervisor;
#[cfg(test)]
mod test_stores;
pub mod text;
pub mod values;
pub mod webhook;
