-- The front end each prediction came in by (issue 15): `v1` (/api/v1), `v2_http` (/v2) or
-- `v2_grpc`. Every row before this migration was a /api/v1 prediction.
ALTER TABLE inference_logs ADD COLUMN protocol TEXT NOT NULL DEFAULT 'v1';
