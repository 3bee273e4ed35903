-- Events a reader that must see every event (a view version, the relay, the task triggers)
-- could not read or apply after its retries: parked here, with the error, so the reader goes
-- on with the rest of the log. One row per reader and event; the reader's checkpoint moves
-- past the event in the transaction that parks it.
CREATE TABLE herald.parked_events (
    reader      text        NOT NULL,
    tx_id       xid8        NOT NULL,
    position    bigint      NOT NULL,
    event_id    uuid,
    event_type  text,
    collection  text,
    error       text        NOT NULL,
    attempts    integer     NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reader, tx_id, position)
);
