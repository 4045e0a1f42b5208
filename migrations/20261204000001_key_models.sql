-- Keys limited to some models (issue 13): NULL means every model, as for every key before.
-- Stored as a JSON array of model ids (`["21","22"]`) in plain text, because it is the one
-- list encoding both engines read back alike through sqlx's Any driver (SQLite has no array
-- type, and a separator such as `,` could be part of a model id). The CHECK keeps anything
-- that is not an array from being written by hand; the server validates each entry.
ALTER TABLE api_keys ADD COLUMN models TEXT CHECK (models IS NULL OR models LIKE '[%]');
