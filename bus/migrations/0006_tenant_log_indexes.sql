-- Event streams and pages read one tenant's log, of one collection or of all. (Databases
-- migrated before the log's indexes and the projection catalog were separate migrations
-- already have them.)
CREATE INDEX IF NOT EXISTS events_tenant_log_order ON herald.events (tenant, tx_id, position);
CREATE INDEX IF NOT EXISTS events_tenant_collection_log_order
    ON herald.events (tenant, collection, tx_id, position);
