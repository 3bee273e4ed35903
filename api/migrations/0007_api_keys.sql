-- API keys for services: bound to a tenant, with roles and an expiry; only a digest of the
-- secret is kept. A revoked key keeps its row (revoked_at), so the list shows what existed.
CREATE TABLE herald.api_keys (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    name        text NOT NULL,
    roles       text[] NOT NULL,
    secret_hash bytea NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE INDEX api_keys_by_tenant ON herald.api_keys (tenant, created_at);
