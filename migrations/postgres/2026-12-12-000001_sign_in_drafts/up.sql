-- What a person had typed (apart from secrets) when their session ended,
-- kept until they sign in again in the same browser. Found by the SHA-256
-- of a random key held in the session cookie; an hour at most, taken once.
CREATE TABLE sign_in_drafts (
    key_hash TEXT PRIMARY KEY NOT NULL,
    -- Sealed JSON: where the form was and its non-secret values.
    sealed BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sign_in_drafts_created ON sign_in_drafts (created_at);
