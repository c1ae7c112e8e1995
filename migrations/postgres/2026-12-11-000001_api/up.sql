-- API tokens: what an automation presents as `Authorization: Bearer`.
-- Only the SHA-256 of a token is stored (tokens are 256 random bits, so a
-- plain hash is enough: nothing to guess); a copy of the database cannot
-- call the API.
CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    environment TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    -- The first characters of the token, to recognise it on the page.
    prefix TEXT NOT NULL,
    -- Comma-separated: read_metadata, read_credentials, run_checks.
    permissions TEXT NOT NULL,
    -- Comma-separated component keys and tag ids; empty means no limit.
    components TEXT NOT NULL,
    tag_ids TEXT NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT
);

-- Who reads each connection's credentials: one row per consumer, kept up
-- to date on every read (the audit trail has each read).
CREATE TABLE connection_usage (
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    consumer TEXT NOT NULL,
    environment TEXT NOT NULL,
    token_id BIGINT REFERENCES api_tokens (id) ON DELETE SET NULL,
    token_name TEXT NOT NULL,
    first_used_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    reads BIGINT NOT NULL,
    PRIMARY KEY (connection_id, consumer)
);
-- The list's "unused" filter: the connections of an environment used since
-- a time, read from this index alone.
CREATE INDEX connection_usage_recent ON connection_usage (environment, last_used_at, connection_id);
