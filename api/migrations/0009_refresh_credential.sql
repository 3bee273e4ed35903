-- A refresh token remembers a digest of the user's password hash when it was issued: after the
-- password changes, the family's tokens no longer refresh.
ALTER TABLE herald.refresh_tokens ADD COLUMN credential bytea;
