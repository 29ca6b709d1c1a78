//! WebSocket tickets (`ws_tickets`), shared by every node on the database: stored by a keyed hash,
//! consumed by one atomic `DELETE … RETURNING`, and capped per holder (the session or API key the
//! ticket was made from). What a row holds and how it is sealed is `crate::ws::tickets`'s.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Backend, StorageResult, Store};
use crate::{transaction, write_on_pool};

/// Advisory-lock class of a holder's tickets (`pg_advisory_xact_lock(class, key)`), so counting
/// and adding one cannot interleave with another issue for the same holder.
const LOCK_CLASS: i32 = 0x7773_746b;

/// A ticket to store.
pub struct NewWsTicket<'a> {
    /// The ticket's keyed hash.
    pub hash: &'a [u8],
    /// The session or key it counts against.
    pub holder: Uuid,
    /// The credential it stands for, sealed.
    pub sealed: &'a [u8],
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A ticket taken out of the table by its redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedWsTicket {
    /// The session or key it counted against.
    pub holder: Uuid,
    /// The sealed credential.
    pub sealed: Vec<u8>,
    /// When it stopped or stops working.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores `ticket` unless its holder already holds `cap` unexpired tickets (`false`).
    /// Counted and added under a lock per holder, so concurrent issues cannot pass the cap
    /// together. Expired tickets do not count; they go on the maintenance tick
    /// ([`Self::prune_ws_tickets`]) or when redeemed.
    pub async fn issue_ws_ticket(&self, ticket: NewWsTicket<'_>, cap: u32) -> StorageResult<bool> {
        let now = super::now();
        let postgres = self.backend() == Backend::Postgres;
        let lock_key = holder_lock(ticket.holder);
        transaction!(self, conn => {
            if postgres {
                // A ticket lost in a crash is only asked for again: its commit need not wait
                // for the disk (a redemption's does).
                sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *conn).await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                    .bind(LOCK_CLASS)
                    .bind(lock_key)
                    .execute(&mut *conn)
                    .await?;
            }
            let added = sqlx::query(
                "INSERT INTO ws_tickets (ticket_hash, holder, sealed, expires_at) \
                 SELECT $1, $2, $3, $4 WHERE (SELECT count(*) FROM ws_tickets \
                 WHERE holder = $2 AND expires_at > $5) < $6",
            )
            .bind(ticket.hash)
            .bind(ticket.holder)
            .bind(ticket.sealed)
            .bind(ticket.expires_at)
            .bind(now)
            .bind(i64::from(cap))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(added == 1)
        })
    }

    /// Takes the ticket stored under `hash` out of the table, whether or not it has expired (the
    /// caller checks): a ticket is answered to one redemption at most, on any node.
    pub async fn redeem_ws_ticket(&self, hash: &[u8]) -> StorageResult<Option<RedeemedWsTicket>> {
        let row: Option<(Uuid, Vec<u8>, DateTime<Utc>)> = write_on_pool!(self, pool => {
            sqlx::query_as(
                "DELETE FROM ws_tickets WHERE ticket_hash = $1 \
                 RETURNING holder, sealed, expires_at",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(holder, sealed, expires_at)| RedeemedWsTicket { holder, sealed, expires_at }))
    }

    /// Tickets of `holder` in the table, expired ones not yet dropped included.
    pub async fn ws_tickets_held(&self, holder: Uuid) -> StorageResult<u32> {
        let (held,): (i64,) = crate::on_pool!(self, pool => {
            sqlx::query_as("SELECT count(*) FROM ws_tickets WHERE holder = $1")
                .bind(holder)
                .fetch_one(pool)
                .await
        })?;
        Ok(u32::try_from(held).unwrap_or(u32::MAX))
    }

    /// Drops every ticket expired at `now`; answers how many.
    pub async fn prune_ws_tickets(&self, now: DateTime<Utc>) -> StorageResult<u64> {
        let pruned = write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM ws_tickets WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(pruned)
    }
}

/// The advisory-lock key of a holder's tickets.
fn holder_lock(holder: Uuid) -> i32 {
    let digest = Sha256::digest(holder.as_bytes());
    i32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}
