-- Exact rate limits: a log of the attempts each limit let through replaces the fixed windows of
-- the sliding-window estimate (which let 9 logins through in 721 s against a limit of 5 per 15
-- minutes). Each row is one counted attempt and says when it stops counting.

DROP TABLE rate_limit_windows;

CREATE TABLE rate_limit_hits (
    id          uuid PRIMARY KEY,
    bucket      text NOT NULL,
    expires_ms  bigint NOT NULL
);
CREATE INDEX rate_limit_hits_by_bucket ON rate_limit_hits (bucket, expires_ms);
CREATE INDEX rate_limit_hits_by_expiry ON rate_limit_hits (expires_ms);

-- Marks that outlive a limit's window, such as "this account signed in from this network".
CREATE TABLE rate_limit_marks (
    mark        text PRIMARY KEY,
    expires_ms  bigint NOT NULL
);
CREATE INDEX rate_limit_marks_by_expiry ON rate_limit_marks (expires_ms);
