//! Single-use WebSocket tickets for browsers.
//!
//! Browsers cannot set `Authorization` on a WebSocket upgrade, and a cookie-authenticated upgrade
//! could be triggered by any page (cross-site WebSocket hijacking). So a page fetches a ticket
//! with an ordinary authenticated call and connects with `?ticket=`. A ticket lives
//! [`TICKET_TTL`], is consumed by its first use, and holds the credential it was made from, so
//! the socket is re-checked exactly like that credential. Tickets live in memory only and are
//! never logged (the request log records the path, never the query string).
//!
//! Memory is bounded per credential: a session or API key holds at most
//! [`MAX_TICKETS_PER_CREDENTIAL`] unused tickets at once, so nobody can fill the server with
//! tickets, and a key handed to an integration cannot use up the tickets of its user's browser.
//! Expired tickets are swept at most once a second, never on every issue: a credential at its
//! cap is refused until the next sweep has dropped its expired tickets.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;
use uuid::Uuid;

/// How long a ticket may wait for its connection.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Unused tickets one session or API key may hold at once.
pub const MAX_TICKETS_PER_CREDENTIAL: u32 = 100;

/// Outstanding tickets beyond which expired ones are swept (at most once per [`SWEEP_EVERY`]).
const SWEEP_ABOVE: usize = 1024;
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Ticket {
    credential: String,
    /// The session or key id it is counted against.
    holder: Uuid,
    expires: Instant,
}

/// The credential already holds [`MAX_TICKETS_PER_CREDENTIAL`] unused tickets.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyTickets;

/// The outstanding tickets.
pub struct Tickets {
    entries: DashMap<String, Ticket>,
    per_holder: DashMap<Uuid, u32>,
    last_sweep: Mutex<Instant>,
    ttl: Duration,
}

impl Default for Tickets {
    fn default() -> Self {
        Tickets::with_ttl(TICKET_TTL)
    }
}

impl Tickets {
    fn with_ttl(ttl: Duration) -> Self {
        // The first sweep may run at once.
        let long_ago = Instant::now().checked_sub(SWEEP_EVERY).unwrap_or_else(Instant::now);
        Tickets {
            entries: DashMap::new(),
            per_holder: DashMap::new(),
            last_sweep: Mutex::new(long_ago),
            ttl,
        }
    }

    /// Issues a ticket standing for `credential` (an access token or API key), counted against
    /// `holder` (the session or key id behind it).
    pub fn issue(&self, holder: Uuid, credential: &str) -> Result<String, TooManyTickets> {
        if self.entries.len() > SWEEP_ABOVE {
            self.sweep();
        }
        if !self.count_one_more(holder) {
            // Its expired tickets may still be counted: sweep (if none ran this second), then
            // ask once more. A sweep running on another thread may uncount them a moment late;
            // the refusal then only comes early.
            self.sweep();
            if !self.count_one_more(holder) {
                return Err(TooManyTickets);
            }
        }
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let expires = Instant::now() + self.ttl;
        self.entries
            .insert(ticket.clone(), Ticket { credential: credential.to_owned(), holder, expires });
        Ok(ticket)
    }

    /// Consumes a ticket, answering the credential it stands for if it was live.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        let (_, ticket) = self.entries.remove(ticket)?;
        self.uncount(ticket.holder);
        (ticket.expires > Instant::now()).then_some(ticket.credential)
    }

    /// Unused tickets of `holder`, expired ones not yet swept included (tests).
    pub fn outstanding(&self, holder: Uuid) -> u32 {
        self.per_holder.get(&holder).map_or(0, |n| *n)
    }

    fn count_one_more(&self, holder: Uuid) -> bool {
        let mut held = self.per_holder.entry(holder).or_insert(0);
        if *held >= MAX_TICKETS_PER_CREDENTIAL {
            return false;
        }
        *held += 1;
        true
    }

    fn uncount(&self, holder: Uuid) {
        self.per_holder.remove_if_mut(&holder, |_, held| {
            *held = held.saturating_sub(1);
            *held == 0
        });
    }

    /// Drops expired tickets, unless a sweep ran less than [`SWEEP_EVERY`] ago.
    fn sweep(&self) {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < SWEEP_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let at = Instant::now();
        let mut expired = Vec::new();
        self.entries.retain(|_, ticket| {
            let live = ticket.expires > at;
            if !live {
                expired.push(ticket.holder);
            }
            live
        });
        for holder in expired {
            self.uncount(holder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_single_use() {
        let tickets = Tickets::default();
        let user = Uuid::now_v7();
        let ticket = tickets.issue(user, "token").unwrap();
        assert_eq!(tickets.redeem(&ticket).as_deref(), Some("token"));
        assert_eq!(tickets.redeem(&ticket), None);
        assert_eq!(tickets.redeem("made-up"), None);
        assert_eq!(tickets.outstanding(user), 0);
    }

    #[test]
    fn a_credential_holds_a_bounded_number_of_unused_tickets() {
        let tickets = Tickets::default();
        let (greedy, other) = (Uuid::now_v7(), Uuid::now_v7());
        let held: Vec<String> =
            (0..MAX_TICKETS_PER_CREDENTIAL).map(|_| tickets.issue(greedy, "t").unwrap()).collect();
        assert_eq!(tickets.issue(greedy, "t"), Err(TooManyTickets));
        assert!(tickets.issue(other, "t").is_ok(), "others are not held back");
        // Using one frees its place.
        assert!(tickets.redeem(&held[0]).is_some());
        assert!(tickets.issue(greedy, "t").is_ok());
        assert_eq!(tickets.outstanding(greedy), MAX_TICKETS_PER_CREDENTIAL);
    }

    #[test]
    fn expired_tickets_stop_counting_at_the_next_sweep() {
        let tickets = Tickets::with_ttl(Duration::ZERO);
        let user = Uuid::now_v7();
        for _ in 0..MAX_TICKETS_PER_CREDENTIAL {
            tickets.issue(user, "t").unwrap();
        }
        // Every one has expired: the first sweep drops them, so the holder is not refused.
        let ticket = tickets.issue(user, "t").unwrap();
        assert_eq!(tickets.outstanding(user), 1);
        assert_eq!(tickets.redeem(&ticket), None, "expired");
        assert_eq!(tickets.outstanding(user), 0);
        assert!(tickets.entries.is_empty());
        // A second sweep within the second does not run: at the cap again, it is refused.
        for _ in 0..MAX_TICKETS_PER_CREDENTIAL {
            tickets.issue(user, "t").unwrap();
        }
        assert_eq!(tickets.issue(user, "t"), Err(TooManyTickets));
    }
}
