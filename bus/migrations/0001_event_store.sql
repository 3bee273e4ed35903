-- The event store: the source of truth. Everything else (views, the relay, tasks) is derived
-- from herald.events in (tx_id, position) order.
CREATE SCHEMA IF NOT EXISTS herald;

CREATE TABLE herald.events (
    position       bigint GENERATED ALWAYS AS IDENTITY,
    -- Commit order: positions are handed out before commit, so they alone can skip events.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant         text        NOT NULL,
    stream_id      text        NOT NULL,
    collection     text        NOT NULL,
    document_id    uuid        NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL UNIQUE,
    type           text        NOT NULL,
    schema_version integer     NOT NULL DEFAULT 1,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- The final guard of optimistic concurrency: one event per stream version.
    PRIMARY KEY (tenant, stream_id, version)
);
CREATE UNIQUE INDEX events_log_order ON herald.events (tx_id, position);
CREATE INDEX events_collection_log_order ON herald.events (collection, tx_id, position);

CREATE TABLE herald.streams (
    tenant        text        NOT NULL,
    stream_id     text        NOT NULL,
    collection    text        NOT NULL,
    version       bigint      NOT NULL,
    archived      boolean     NOT NULL DEFAULT false,
    created_by    text        NOT NULL,
    -- The folded state after `version`, so a command loads one row instead of the whole stream.
    snapshot      jsonb       NOT NULL,
    last_tx       xid8        NOT NULL,
    last_position bigint      NOT NULL,
    PRIMARY KEY (tenant, stream_id)
);

CREATE TABLE herald.commands (
    id              uuid PRIMARY KEY,
    tenant          text        NOT NULL,
    principal       text        NOT NULL,
    collection      text        NOT NULL,
    idempotency_key text,
    request_hash    text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('accepted', 'succeeded', 'rejected')),
    outcome         jsonb,
    position        bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);

CREATE TABLE herald.unique_keys (
    tenant     text NOT NULL,
    collection text NOT NULL,
    field      text NOT NULL,
    value      text NOT NULL,
    stream_id  text NOT NULL,
    PRIMARY KEY (tenant, collection, field, value)
);

CREATE TABLE herald.checkpoints (
    name       text PRIMARY KEY,
    tx_id      xid8        NOT NULL,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
