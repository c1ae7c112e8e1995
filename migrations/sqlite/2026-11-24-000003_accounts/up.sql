CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Lower-cased: one account per address whatever the case typed.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- argon2id, in the PHC string format.
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    -- Bumped to end every session of the account at once (disable, new password).
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Failed sign-ins, per account ("account:<email>") and per address ("addr:<ip>").
CREATE TABLE sign_in_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure TIMESTAMP NOT NULL
);

-- What each person did. The application only ever inserts here.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    actor_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    environment TEXT,
    connection_id INTEGER,
    subject TEXT NOT NULL,
    -- Field names and other non-secret facts, as JSON.
    details TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at);
CREATE INDEX audit_events_connection ON audit_events (connection_id, at);
CREATE INDEX audit_events_action ON audit_events (action, at);
