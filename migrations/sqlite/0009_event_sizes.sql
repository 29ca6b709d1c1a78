-- The size of each logged event's data, so that a page of the log can be cut by bytes without
-- reading the data of events past the page. SQLite keeps the JSON text as written and reads a
-- value's byte length from the record header, so the column is virtual.
ALTER TABLE board_events
    ADD COLUMN payload_bytes INTEGER GENERATED ALWAYS AS (octet_length(payload)) VIRTUAL;
