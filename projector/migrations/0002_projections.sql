-- Projection versions. Each document view is built in its own table per version
-- (herald_views."<app>.<doc>.v<N>"); reads go through herald_views."<app>.<doc>", a SQL view of
-- the active version's table, so a rebuilt version replaces the old one in one transaction.
CREATE TABLE herald.projections (
    name         text        NOT NULL,
    version      integer     NOT NULL,
    -- The typed columns ([{field, name, sql_type}]) and their digest: any process can run any
    -- version, whatever YAML it was started with.
    shape        text        NOT NULL,
    columns      jsonb       NOT NULL,
    state        text        NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    checkpoint   text        GENERATED ALWAYS AS (name || '.v' || version) STORED,
    -- Rebuild progress: events in the collection when the version was created, events applied.
    events_total bigint      NOT NULL DEFAULT 0,
    events_done  bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    heartbeat_at timestamptz,
    runner       text,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX projections_one_active ON herald.projections (name) WHERE state = 'active';
CREATE UNIQUE INDEX projections_one_building ON herald.projections (name) WHERE state = 'building';

-- Views of the first release were unversioned; they are derived data and are rebuilt.
DROP SCHEMA IF EXISTS herald_views CASCADE;
DELETE FROM herald.checkpoints;
