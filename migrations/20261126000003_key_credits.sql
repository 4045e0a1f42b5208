-- Prepaid keys: NULL means the key is not metered; otherwise the predictions it may still make.
-- Decremented atomically per prediction (never below zero), raised by `keys topup`.
ALTER TABLE api_keys ADD COLUMN credits BIGINT;
