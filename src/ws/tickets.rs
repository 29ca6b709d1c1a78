//! Single-use WebSocket tickets for browsers.
//!
//! Browsers cannot set `Authorization` on a WebSocket upgrade, and a cookie-authenticated upgrade
//! could be triggered by any page (cross-site WebSocket hijacking). So a page fetches a ticket
//! with an ordinary authenticated call and connects with `?ticket=`. A ticket lives
//! [`TICKET_TTL`], is consumed by its first use, and holds the credential it was made from, so
//! the socket is re-checked exactly like that credential. Tickets live in memory only and are
//! never logged (the request log records the path, never the query string).

use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;

/// How long a ticket may wait for its connection.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Tickets that exist at most this many at once; beyond it, expired ones are swept first.
const SWEEP_ABOVE: usize = 1024;

/// The outstanding tickets.
#[derive(Default)]
pub struct Tickets {
    entries: DashMap<String, (String, Instant)>,
}

impl Tickets {
    /// Issues a ticket standing for `credential` (an access token or API key).
    pub fn issue(&self, credential: &str) -> String {
        if self.entries.len() > SWEEP_ABOVE {
            self.entries.retain(|_, (_, expires)| *expires > Instant::now());
        }
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        self.entries.insert(ticket.clone(), (credential.to_owned(), Instant::now() + TICKET_TTL));
        ticket
    }

    /// Consumes a ticket, answering the credential it stands for if it was live.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        let (_, (credential, expires)) = self.entries.remove(ticket)?;
        (expires > Instant::now()).then_some(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_single_use() {
        let tickets = Tickets::default();
        let ticket = tickets.issue("token");
        assert_eq!(tickets.redeem(&ticket).as_deref(), Some("token"));
        assert_eq!(tickets.redeem(&ticket), None);
        assert_eq!(tickets.redeem("made-up"), None);
    }
}
