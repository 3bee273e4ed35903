-- When a process last started with each trigger: a trigger reader that finds a trigger it does
-- not know, seen after it started, runs an older declaration and leaves the reading to a newer
-- worker (so a rolling deploy that adds a trigger does not pass its events by).
ALTER TABLE herald.task_triggers ADD COLUMN last_seen timestamptz NOT NULL DEFAULT now();
