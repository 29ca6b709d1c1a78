//! Exports: a board written out for people (`board`: the CSV of a board's items).
//!
//! What is rendered lives here; who may export and the routes live in `http::exports`.

pub mod board;
