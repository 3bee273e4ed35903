-- The built-in login (identity.enabled). Users are the documents `auth.user`, in the event log;
-- these tables hold what is not a document: Herald's signing key and the refresh tokens.

-- The one Ed25519 key access tokens are signed with, shared by every api process. Whoever
-- reads it can sign tokens, as whoever writes the log can change data.
CREATE TABLE herald.signing_key (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    kid        text NOT NULL,
    seed       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens, one row per token handed out; only a digest of the secret is kept. Tokens
-- descending from one sign-in share a family: reusing a spent one revokes the whole family.
CREATE TABLE herald.refresh_tokens (
    id          uuid PRIMARY KEY,
    family      uuid NOT NULL,
    tenant      text NOT NULL,
    user_id     uuid NOT NULL,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_by_family ON herald.refresh_tokens (family);

-- Expired tokens are swept away.
CREATE INDEX refresh_tokens_by_expiry ON herald.refresh_tokens (expires_at);
