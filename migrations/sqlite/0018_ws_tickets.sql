-- WebSocket tickets in the database, so a ticket made on one node is redeemed on any node, once.
-- Only a keyed hash of the ticket is stored; the credential it stands for is sealed under a key
-- derived from the ticket and the server secret, so the row alone opens nothing. `holder` is the
-- session or API key it counts against (at most 100 unused tickets each).

CREATE TABLE ws_tickets (
    ticket_hash  BLOB PRIMARY KEY,
    holder       BLOB NOT NULL,
    sealed       BLOB NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX ws_tickets_by_holder ON ws_tickets (holder, expires_at);
CREATE INDEX ws_tickets_by_expiry ON ws_tickets (expires_at);
