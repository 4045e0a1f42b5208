-- Secrets every instance of a deployment shares, made by whichever instance needs one first:
-- it inserts a fresh value (ON CONFLICT DO NOTHING) and then everyone reads the one that won,
-- so instances starting together agree. `auth_cache` signs the shared auth cache's entries.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds.
CREATE TABLE deployment_secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
