//! Integration tests: each starts the real server on 127.0.0.1:0 against a fresh database and
//! speaks HTTP to it. Every test runs twice, once per backend (see [`harness::both_backends`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod accounts;
mod api_keys;
mod attachments;
mod attachments_vault;
mod audit;
mod backup;
mod billing;
mod board_authz;
mod boards;
mod bounds;
mod cli;
mod cluster;
mod cluster_events;
mod cluster_invalidation;
mod column_retype;
mod deletion;
mod exports;
mod google;
mod health;
mod hostile_input;
mod identity;
mod limits;
mod metrics;
mod openapi;
mod orgs;
mod plans;
mod realtime;
mod resume;
mod structure;
mod tls;
mod web;
mod web_admin;
mod web_board;
mod web_items;
mod webhook_access;
mod webhooks;
