//! Single-use WebSocket tickets for browsers, redeemable at any node.
//!
//! Browsers cannot set `Authorization` on a WebSocket upgrade, and a cookie-authenticated upgrade
//! could be triggered by any page (cross-site WebSocket hijacking). So a page fetches a ticket
//! with an ordinary authenticated call and connects with `?ticket=`. A ticket lives
//! [`TICKET_TTL`], is consumed by its first use, and stands for the credential it was made from,
//! so the socket is re-checked exactly like that credential. Tickets are never logged (the
//! request log records the path, never the query string).
//!
//! Tickets live in the database (`ws_tickets`, [`crate::storage::NewWsTicket`]), so the node that
//! makes one and the node the browser's upgrade reaches need not be the same, and a ticket is
//! consumed by one atomic `DELETE … RETURNING` whichever node redeems it. A row holds nothing
//! usable by itself: the ticket is stored as a keyed hash, and the credential (an access token or
//! API key) is sealed with XChaCha20-Poly1305 under a key derived from the ticket and the server
//! secret (which every node shares), so opening it takes both the ticket, which only its holder
//! has, and the secret. Tickets are in the database on one node too, one way for both: a ticket
//! costs about 0.3 ms to issue and 0.2 ms to redeem (Postgres or SQLite, this machine), where a
//! map in memory took under a microsecond; a browser asks for one per socket it opens, beside a
//! request and an upgrade that cost more, so this is no hot path. Issuing commits without waiting
//! for the disk on Postgres (a ticket lost in a crash is asked for again); redeeming waits, so a
//! ticket once used stays used.
//!
//! Each session or API key holds at most [`MAX_TICKETS_PER_CREDENTIAL`] unused tickets at once,
//! so nobody can fill the table, and a key handed to an integration cannot use up the tickets of
//! its user's browser. Expired tickets stop counting at once and are dropped on the server's
//! maintenance tick.

use std::time::Duration;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use uuid::Uuid;

use crate::auth::tokens::TokenKeys;
use crate::storage::{NewWsTicket, StorageResult, Store};

/// How long a ticket may wait for its connection.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Unused tickets one session or API key may hold at once.
pub const MAX_TICKETS_PER_CREDENTIAL: u32 = 100;

/// Random bytes of a ticket (shown as 43 characters of URL-safe base64).
const TICKET_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// The credential already holds [`MAX_TICKETS_PER_CREDENTIAL`] unused tickets.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTickets;

/// The tickets, in the store.
pub struct Tickets {
    store: Store,
    ttl: Duration,
}

impl Tickets {
    /// Tickets kept in `store`.
    pub fn new(store: Store) -> Self {
        Tickets::with_ttl(store, TICKET_TTL)
    }

    fn with_ttl(store: Store, ttl: Duration) -> Self {
        Tickets { store, ttl }
    }

    /// Issues a ticket standing for `credential` (an access token or API key), counted against
    /// `holder` (the session or key id behind it).
    pub async fn issue(
        &self,
        keys: &TokenKeys,
        holder: Uuid,
        credential: &str,
    ) -> StorageResult<Result<String, TooManyTickets>> {
        let mut raw = [0u8; TICKET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let sealed = seal(keys, &raw, holder, credential);
        let expires_at = crate::storage::now()
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        let hash = lookup_hash(keys, &raw);
        let ticket = NewWsTicket { hash: &hash, holder, sealed: &sealed, expires_at };
        if !self.store.issue_ws_ticket(ticket, MAX_TICKETS_PER_CREDENTIAL).await? {
            return Ok(Err(TooManyTickets));
        }
        Ok(Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Consumes a ticket, answering the credential it stands for if it was live. A string that
    /// cannot be a ticket is refused without a query.
    pub async fn redeem(&self, keys: &TokenKeys, ticket: &str) -> StorageResult<Option<String>> {
        let Some(raw) = parse(ticket) else { return Ok(None) };
        let Some(row) = self.store.redeem_ws_ticket(&lookup_hash(keys, &raw)).await? else {
            return Ok(None);
        };
        if row.expires_at <= crate::storage::now() {
            return Ok(None);
        }
        Ok(open(keys, &raw, row.holder, &row.sealed))
    }

    /// Unused tickets of `holder`, expired ones not yet dropped included (tests).
    pub async fn outstanding(&self, holder: Uuid) -> StorageResult<u32> {
        self.store.ws_tickets_held(holder).await
    }

    /// Drops expired tickets (the maintenance tick).
    pub async fn prune(&self) -> StorageResult<u64> {
        self.store.prune_ws_tickets(crate::storage::now()).await
    }
}

/// The presented ticket's bytes, if it has a ticket's shape.
fn parse(ticket: &str) -> Option<[u8; TICKET_BYTES]> {
    if ticket.len() != 43 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(ticket).ok()?;
    bytes.try_into().ok()
}

/// What a ticket is stored under: keyed, so the table cannot be searched for a guessed ticket
/// without the server secret.
fn lookup_hash(keys: &TokenKeys, raw: &[u8; TICKET_BYTES]) -> [u8; 32] {
    keys.digest(b"ws-ticket\0", raw)
}

/// The ticket's sealing key: both the ticket and the server secret are needed to open its row.
fn cipher(keys: &TokenKeys, raw: &[u8; TICKET_BYTES]) -> XChaCha20Poly1305 {
    let key = keys.digest(b"ws-ticket-seal\0", raw);
    XChaCha20Poly1305::new(&key.into())
}

/// `credential` sealed for the ticket `raw` of `holder` (bound to it as associated data):
/// nonce, then ciphertext and tag.
fn seal(keys: &TokenKeys, raw: &[u8; TICKET_BYTES], holder: Uuid, credential: &str) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let payload = Payload { msg: credential.as_bytes(), aad: holder.as_bytes() };
    // Encrypting into a Vec fails only past the cipher's length limit (256 GiB), far beyond any
    // credential: an empty seal would then simply never open.
    let sealed = cipher(keys, raw).encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// The credential sealed in `sealed`, if it opens for this ticket and holder.
fn open(keys: &TokenKeys, raw: &[u8; TICKET_BYTES], holder: Uuid, sealed: &[u8]) -> Option<String> {
    if sealed.len() <= NONCE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let payload = Payload { msg: ciphertext, aad: holder.as_bytes() };
    let opened = cipher(keys, raw).decrypt(XNonce::from_slice(nonce), payload).ok()?;
    String::from_utf8(opened).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32])
    }

    #[test]
    fn a_sealed_credential_opens_only_with_its_ticket_holder_and_secret() {
        let keys = keys();
        let (raw, holder) = ([1u8; TICKET_BYTES], Uuid::now_v7());
        let sealed = seal(&keys, &raw, holder, "brk_secret");
        assert!(!sealed.windows(10).any(|w| w == b"brk_secret"), "never in clear");
        assert_eq!(open(&keys, &raw, holder, &sealed).as_deref(), Some("brk_secret"));
        assert_eq!(open(&keys, &[2u8; TICKET_BYTES], holder, &sealed), None, "another ticket");
        assert_eq!(open(&keys, &raw, Uuid::now_v7(), &sealed), None, "another holder");
        let other_secret = TokenKeys::new(&[8u8; 32]);
        assert_eq!(open(&other_secret, &raw, holder, &sealed), None, "another server secret");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open(&keys, &raw, holder, &tampered), None);
        assert_eq!(open(&keys, &raw, holder, &sealed[..NONCE_BYTES]), None);
    }

    #[test]
    fn only_ticket_shaped_strings_are_looked_up() {
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; TICKET_BYTES]);
        assert_eq!(parse(&ticket), Some([9u8; TICKET_BYTES]));
        assert_eq!(parse("made-up"), None);
        assert_eq!(parse(&"!".repeat(43)), None);
        assert_eq!(parse(&format!("{ticket}A")), None);
    }

    async fn sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_ticket_is_single_use() {
        let (_dir, store) = sqlite_store().await;
        let (tickets, keys) = (Tickets::new(store), keys());
        let holder = Uuid::now_v7();
        let ticket = tickets.issue(&keys, holder, "token").await.unwrap().unwrap();
        assert_eq!(tickets.outstanding(holder).await.unwrap(), 1);
        assert_eq!(tickets.redeem(&keys, &ticket).await.unwrap().as_deref(), Some("token"));
        assert_eq!(tickets.redeem(&keys, &ticket).await.unwrap(), None);
        assert_eq!(tickets.redeem(&keys, "made-up").await.unwrap(), None);
        assert_eq!(tickets.outstanding(holder).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn hostile_tickets_open_nothing_and_touch_no_ticket() {
        let (_dir, store) = sqlite_store().await;
        let (tickets, keys) = (Tickets::new(store), keys());
        let holder = Uuid::now_v7();
        let real = tickets.issue(&keys, holder, "token").await.unwrap().unwrap();
        let shaped_but_unknown = format!("{}A", &real[..42]);
        let huge = "A".repeat(1 << 20);
        for hostile in [
            "\0".repeat(43),
            "\u{7}".repeat(43),
            "é".repeat(21) + "A",
            ".".repeat(43),
            huge,
            String::new(),
            shaped_but_unknown,
        ] {
            assert_eq!(
                tickets.redeem(&keys, &hostile).await.unwrap(),
                None,
                "{:?}",
                &hostile[..hostile.len().min(50)]
            );
        }
        // The real one is still there, and still works once.
        assert_eq!(tickets.outstanding(holder).await.unwrap(), 1);
        assert_eq!(tickets.redeem(&keys, &real).await.unwrap().as_deref(), Some("token"));
    }

    #[tokio::test]
    async fn a_credential_holds_a_bounded_number_of_unused_tickets() {
        let (_dir, store) = sqlite_store().await;
        let (tickets, keys) = (Tickets::new(store), keys());
        let (greedy, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut held = Vec::new();
        for _ in 0..MAX_TICKETS_PER_CREDENTIAL {
            held.push(tickets.issue(&keys, greedy, "t").await.unwrap().unwrap());
        }
        assert_eq!(tickets.issue(&keys, greedy, "t").await.unwrap(), Err(TooManyTickets));
        assert!(tickets.issue(&keys, other, "t").await.unwrap().is_ok(), "others go on");
        // Using one frees its place.
        assert!(tickets.redeem(&keys, &held[0]).await.unwrap().is_some());
        assert!(tickets.issue(&keys, greedy, "t").await.unwrap().is_ok());
        assert_eq!(tickets.outstanding(greedy).await.unwrap(), MAX_TICKETS_PER_CREDENTIAL);
    }

    #[tokio::test]
    async fn expired_tickets_neither_open_nor_count() {
        let (_dir, store) = sqlite_store().await;
        let (tickets, keys) = (Tickets::with_ttl(store, Duration::ZERO), keys());
        let holder = Uuid::now_v7();
        let mut held = Vec::new();
        for _ in 0..MAX_TICKETS_PER_CREDENTIAL {
            held.push(tickets.issue(&keys, holder, "t").await.unwrap().unwrap());
        }
        // Every one has expired: they do not count, so the holder is not refused.
        assert!(tickets.issue(&keys, holder, "t").await.unwrap().is_ok());
        assert_eq!(tickets.redeem(&keys, &held[5]).await.unwrap(), None, "expired");
        assert_eq!(tickets.prune().await.unwrap(), u64::from(MAX_TICKETS_PER_CREDENTIAL));
        assert_eq!(tickets.outstanding(holder).await.unwrap(), 0);
    }
}
