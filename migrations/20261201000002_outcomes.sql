-- Real-world outcomes of predictions (did the lead convert?), one per inference and type;
-- recording the same type again replaces it. Times are Unix milliseconds.
CREATE TABLE outcomes (
    inference_log_id TEXT NOT NULL,
    outcome_type     TEXT NOT NULL,
    outcome_score    DOUBLE PRECISION NOT NULL,
    api_key_id       TEXT NOT NULL,
    recorded_at      BIGINT NOT NULL,
    PRIMARY KEY (inference_log_id, outcome_type)
);
