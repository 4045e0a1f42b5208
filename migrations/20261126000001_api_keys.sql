-- Portable SQL: this one migration set runs on both SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT) so both engines compare them the same way.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    rate_limit  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
