-- board_events rows are appended only by the statement (or transaction) that moves their
-- board's seq with a compare-and-set on boards (organization_id, id), and that write is refused
-- unless the board moved: the board exists and is the organization's, proven by the same write
-- (storage::boards::append_to_log, storage::item_batches). The two foreign keys checked it again
-- for every row, two trigger queries per event: 18% of Postgres's CPU per update on a hot board
-- (loadtest/README, "History"). Boards and organizations are never deleted (boards get
-- deleted_at), so the keys' ON DELETE CASCADE never ran. SQLite keeps its keys: there a check
-- is an in-process index probe.
ALTER TABLE board_events
    DROP CONSTRAINT IF EXISTS board_events_organization_id_fkey,
    DROP CONSTRAINT IF EXISTS board_events_board_id_fkey;
