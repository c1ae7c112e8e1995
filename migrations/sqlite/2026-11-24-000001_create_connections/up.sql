CREATE TABLE connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment TEXT NOT NULL,
    component TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The name folded to lower case by Plugboard (not by the database, whose
    -- lower() differs between backends and skips non-ASCII in SQLite), for
    -- searching and sorting.
    name_key TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    -- JSON object of the non-secret values (settings and plain fields).
    parameters TEXT NOT NULL,
    -- The secret values as one sealed JSON object, and the id of the key that sealed it.
    secrets BLOB,
    secrets_key_id TEXT,
    -- Which secret fields are set, so a form can say so without decrypting.
    secret_fields TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    checked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    version INTEGER NOT NULL
);
-- The list's orders, each led by the environment every query filters on.
-- name_key rides along in the date index so a name search in date order
-- is answered from the index, reading only the rows it shows.
CREATE INDEX connections_env_created ON connections (environment, created_at, id, name_key);
CREATE INDEX connections_env_name ON connections (environment, name_key, id);
CREATE INDEX connections_env_component ON connections (environment, component, created_at, id);
CREATE INDEX connections_env_status ON connections (environment, status, created_at, id);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    -- The name folded to lower case: tags are unique ignoring case.
    name_key TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE connection_tags (
    connection_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    -- The connection's environment, repeated so that the sidebar's tag
    -- counts read one index instead of joining every connection.
    environment TEXT NOT NULL,
    PRIMARY KEY (connection_id, tag_id)
);
CREATE INDEX connection_tags_env_tag ON connection_tags (environment, tag_id, connection_id);
