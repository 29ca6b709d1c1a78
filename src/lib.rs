//! # Boardroom
//!
//! A real-time work-management server: organizations own boards, boards hold groups of items
//! with typed column values, people comment on items, and everyone sees every change live.
//!
//! ## Layout
//! - [`attachments`]: the attachment vault: files encrypted at rest under keys of their own,
//!   master keys and their rotation, the blob store (a directory or S3), the orphan sweep.
//! - [`access`]: a caller's organization access as the board `Requester`, for REST and sockets.
//! - [`auth`]: credentials to callers: passwords, sessions, JWTs, API keys, limits, and the
//!   org-level access check with the audited superadmin bypass.
//! - [`backup`]: snapshots of the database and the blobs while serving (by command and on a
//!   schedule), their retention, and restore.
//! - [`billing`]: Stripe: the webhook signature check, events reduced to their change, and the
//!   Checkout and Billing Portal sessions.
//! - [`blob_reaper`]: deletes the files of deleted items, comments and boards.
//! - [`commands`]: board writes' wire bodies as board commands, one function per write, for
//!   REST and sockets alike.
//! - [`deletion`]: account deletion (GDPR erasure): the request, its grace period, and the
//!   erasure of due accounts through the actors and one storage transaction.
//! - [`config`]: the clap command line; every setting is a flag and an environment variable.
//! - [`cluster`]: several nodes on one Postgres database: node registration and heartbeats, NATS
//!   between nodes, leases on actors, forwarded commands, events and invalidations.
//! - [`metrics`]: Prometheus metrics: the recorder, the `/metrics` listener, every series' name.
//! - [`secrets`]: secret settings that fall back to a value generated into the data dir.
//! - [`server`]: start-up (store, migrations, secret), serving, graceful shutdown.
//! - [`http`]: the HTTP edge, the router and its thin handlers.
//! - [`error`]: the one error type at the edge, mapped to the stable codes of
//!   `boardroom-protocol`.
//! - [`invitations`]: invitations to organizations, and adding a member by email (at once for
//!   a verified account, else by invitation).
//! - [`mail`]: account mail: the outbox, its sender (SMTP with `lettre`, retried with backoff)
//!   and the message templates.
//! - [`exports`]: exports written out for people: a board as CSV.
//! - [`state`]: [`state::AppState`], what the edges share: store, settings, auth, actors, gateway.
//! - [`ssrf`]: the SSRF guard for outbound webhooks: URL validation, address checks,
//!   the allowlist and a client pinned to the checked address.
//! - [`storage`]: one storage interface over SQLite and Postgres, with tenant-scoped handles.
//! - [`telemetry`]: logging and the per-request log line.
//! - [`tls`]: HTTPS on the main listener (rustls, reloads), and the plain-HTTP redirect listener.
//! - [`validate`]: identity fields (emails, names, passwords) checked at the edge.
//! - [`webhooks`]: webhook delivery: the webhook actor's outbox backend, signing, retries.
//! - [`wire`]: domain → wire: the one place per resource that maps what the actors answer to
//!   the types of `boardroom-protocol`.
//! - [`ws`]: the WebSocket gateway: upgrade, connections, the per-event encoded fan-out.
//!
//! The domain rules and the supervised actors live in `boardroom-actors`; the wire types in
//! `boardroom-protocol`. See `docs/ARCHITECTURE.md`.

pub mod access;
pub mod attachments;
pub mod auth;
pub mod backup;
pub mod billing;
pub mod blob_reaper;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod deletion;
pub mod error;
pub mod exports;
pub mod http;
pub mod invitations;
pub mod mail;
pub mod metrics;
pub mod secrets;
pub mod server;
pub mod ssrf;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod webhooks;
pub mod wire;
pub mod ws;
