-- The event log keeps each payload as the server serialized it: json, not jsonb. The log is only
-- ever read back whole (resume, REST pages, webhooks, exports; erasure matches its text), never
-- queried inside, so parsing every payload into jsonb's tree on the way in, and rendering it back
-- to text for payload_bytes, was work no reader used: 17% of Postgres's CPU per update on a hot
-- board (loadtest/README, "History"). json checks the syntax and keeps the text.
--
-- payload_bytes is generated from payload, so it is dropped and added back around the change of
-- type; one ALTER TABLE rewrites the table once. It now counts the stored text itself.
ALTER TABLE board_events
    DROP COLUMN payload_bytes,
    ALTER COLUMN payload TYPE json USING payload::json,
    ADD COLUMN payload_bytes bigint GENERATED ALWAYS AS (octet_length(payload::text)) STORED;
