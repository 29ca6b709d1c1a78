-- The size of each logged event's data, kept with the event so that a page of the log can be cut
-- by bytes without reading (and de-TOASTing) the data of events past the page.
-- The bytes of the jsonb rendered as text: a little more than the compact JSON on the wire.
ALTER TABLE board_events
    ADD COLUMN payload_bytes bigint GENERATED ALWAYS AS (octet_length(payload::text)) STORED;
