-- OAuth2 sign-ins under way: one row per Connect click, consumed by the
-- callback. The state itself is never stored, only its SHA-256, so a copy
-- of the database cannot answer a callback.
CREATE TABLE oauth_attempts (
    state_hash TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the session's own secret: the callback must come back in
    -- the session that started it.
    session_binding TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    component TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    -- Set when reconnecting an existing connection.
    connection_id BIGINT,
    redirect_uri TEXT NOT NULL,
    -- Sealed JSON: the PKCE verifier and the pending connection (name,
    -- tags, parameters, client credentials, scopes).
    sealed BLOB NOT NULL,
    key_id TEXT NOT NULL,
    popup BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX oauth_attempts_expiry ON oauth_attempts (expires_at);

-- Tokens live apart from what a person edits: a refresh never changes the
-- connection's edit version.
CREATE TABLE connection_tokens (
    connection_id INTEGER PRIMARY KEY NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- Sealed JSON {access_token, refresh_token?}, bound to the connection.
    sealed BLOB NOT NULL,
    key_id TEXT NOT NULL,
    has_refresh_token BOOLEAN NOT NULL,
    expires_at TIMESTAMP,
    obtained_at TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP,
    -- When the background refresh is due; NULL for tokens that never expire.
    refresh_due_at TIMESTAMP,
    refresh_failures INTEGER NOT NULL DEFAULT 0,
    -- Bumped by every write, so a refresh that raced another is not stored.
    token_version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX connection_tokens_refresh_due ON connection_tokens (refresh_due_at);
