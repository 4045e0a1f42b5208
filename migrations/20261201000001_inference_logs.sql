-- One row per prediction that reached a model (docs/events.md). Written in batches by the
-- background events writer, and replayed from the outbox: `id` (the response's
-- inference_log_id, UUIDv7) is the primary key so a replay inserts nothing twice.
-- Portable SQL (SQLite and PostgreSQL); JSON is stored as text, times as Unix milliseconds,
-- flags as 0/1 (sqlx's Any driver cannot read SQLite booleans).
CREATE TABLE inference_logs (
    id             TEXT PRIMARY KEY,
    instance       TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    api_key_id     TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    inputs         TEXT NOT NULL,
    outputs        TEXT NOT NULL,
    truncated      INTEGER NOT NULL,
    latency_ms     DOUBLE PRECISION NOT NULL,
    status         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX inference_logs_instance_seq ON inference_logs (instance, seq);
CREATE INDEX inference_logs_created_at ON inference_logs (created_at);
