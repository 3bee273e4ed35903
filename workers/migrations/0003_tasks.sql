-- Background tasks: one row per task run (an event that matched a declared trigger, or a task
-- enqueued by code), the source of truth for its state. JetStream carries the runs; this table
-- says what each one came to, and is the outbox that makes enqueueing survive crashes.
CREATE TABLE herald.tasks (
    id              uuid PRIMARY KEY,
    tenant          text        NOT NULL,
    name            text        NOT NULL,
    state           text        NOT NULL
                    CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'dead')),
    -- The triggering event as JSON (or the enqueued payload).
    payload         jsonb       NOT NULL,
    event_id        uuid,
    traceparent     text,
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL,
    last_error      text,
    next_attempt_at timestamptz,
    -- Bumped by a retry from the dead letters: the run is published again under a new
    -- `Nats-Msg-Id` (`<id>.<round>`), which JetStream's dedupe window would otherwise drop.
    round           integer     NOT NULL DEFAULT 0,
    -- Written in the transaction that creates (or requeues) the run, cleared once JetStream
    -- has stored it: whatever a crash leaves set is published again.
    publish_pending boolean     NOT NULL DEFAULT true,
    duration_ms     bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX tasks_publish_pending ON herald.tasks (created_at) WHERE publish_pending;
CREATE INDEX tasks_dead ON herald.tasks (updated_at DESC, id) WHERE state = 'dead';
CREATE INDEX tasks_by_state ON herald.tasks (name, state);
CREATE INDEX tasks_finished ON herald.tasks (finished_at) WHERE finished_at IS NOT NULL;

-- Where each declared trigger starts: the log's end when the trigger was first seen, so a new
-- declaration does not fire for the whole history.
CREATE TABLE herald.task_triggers (
    name      text PRIMARY KEY,
    since_tx  xid8        NOT NULL,
    since_pos bigint      NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);
