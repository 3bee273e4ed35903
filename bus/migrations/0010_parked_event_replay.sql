-- An operator's request to apply a view version's parked event again once its cause is fixed
-- (`POST /v1/admin/parked-events/replay`). The version's runner picks the marked rows up: a row
-- whose event now applies is deleted; one that still fails keeps its row, with the new error and
-- the request cleared.
ALTER TABLE herald.parked_events ADD COLUMN replay_requested_at timestamptz;
