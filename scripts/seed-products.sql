-- Appends :count petstore products to the event log of tenant :tenant (one without products)
-- in one transaction, as the command handler would: one `petstore.product.created` event per
-- document, its stream row with the folded snapshot, and its unique name. The projector then
-- builds the view.
--
--   psql "$DATABASE_URL" -v tenant=bench -v count=1000000 -f scripts/seed-products.sql
--
-- Ids are UUID v7 (creation order), names are unique (`Product <n>`), and prices, stock,
-- status, tags and descriptions are random, so filters and searches select realistic shares.
\set ON_ERROR_STOP on
BEGIN;

CREATE TEMP TABLE seed ON COMMIT DROP AS
WITH numbered AS (
    SELECT n,
           lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint + n), 12, '0') AS ms,
           md5(random()::text || n) AS r,
           random() AS s
    FROM generate_series(1, :count) AS n
),
words AS (
    SELECT ARRAY['sturdy', 'soft', 'squeaky', 'chew', 'rope', 'ball', 'bone', 'crunchy',
                 'organic', 'salmon', 'chicken', 'grain', 'free', 'washable', 'cozy', 'large',
                 'small', 'puppy', 'kitten', 'senior', 'travel', 'outdoor', 'indoor', 'dental',
                 'training', 'reflective', 'waterproof', 'plush', 'catnip', 'feather'] AS w,
           ARRAY['dog', 'cat', 'toy', 'food', 'bed', 'leash', 'bowl', 'treat'] AS t
)
SELECT n,
       (substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' || substr(r, 1, 3) || '-8'
        || substr(r, 4, 3) || '-' || substr(r, 7, 12))::uuid AS id,
       jsonb_build_object(
           'name', 'Product ' || n,
           'description', (SELECT string_agg(w[1 + floor(random() * 30)::int + 0 * g], ' ')
                           FROM generate_series(1, 8) AS g WHERE n > 0),
           'price', round((random() * 1000)::numeric, 2),
           'stock', floor(random() * 500)::int,
           'status', CASE WHEN s < 0.6 THEN 'published' WHEN s < 0.85 THEN 'draft'
                          ELSE 'retired' END,
           'tags', (SELECT jsonb_agg(DISTINCT t[1 + floor(random() * 8)::int + 0 * g])
                    FROM generate_series(1, 1 + (n % 3)) AS g)
       ) AS fields
FROM numbered, words;

INSERT INTO herald.events
    (tenant, stream_id, collection, document_id, version, event_id, type, data, metadata)
SELECT :'tenant', 'petstore.product.' || id, 'petstore.product', id, 1, gen_random_uuid(),
       'petstore.product.created', fields,
       jsonb_build_object('actor', jsonb_build_object('sub', 'seed', 'roles', '["admin"]'::jsonb,
                                                      'tenant', :'tenant'),
                          'command_id', gen_random_uuid())
FROM seed ORDER BY n;

INSERT INTO herald.streams
    (tenant, stream_id, collection, version, archived, created_by, snapshot, last_tx, last_position)
SELECT e.tenant, e.stream_id, e.collection, 1, false, 'seed',
       jsonb_build_object('id', e.document_id, 'version', 1, 'archived', false,
                          'created_at', e.recorded_at, 'created_by', 'seed',
                          'updated_at', e.recorded_at, 'updated_by', 'seed', 'fields', e.data),
       e.tx_id, e.position
FROM herald.events e
WHERE e.tx_id = pg_current_xact_id();

INSERT INTO herald.unique_keys (tenant, collection, field, value, stream_id)
SELECT :'tenant', 'petstore.product', 'name', 'Product ' || n, 'petstore.product.' || id
FROM seed;

COMMIT;
