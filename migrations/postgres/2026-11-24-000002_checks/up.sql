-- When the background schedule checks a connection next, and how many
-- checks in a row found its service unreachable (for backing off).
ALTER TABLE connections ADD COLUMN next_check_at TIMESTAMP;
ALTER TABLE connections ADD COLUMN check_failures INTEGER NOT NULL DEFAULT 0;
CREATE INDEX connections_next_check ON connections (next_check_at);

-- The recent checks of each connection (the newest 20 are kept).
CREATE TABLE connection_checks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id BIGINT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    checked_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- What started it: save, manual or schedule.
    trigger TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX connection_checks_connection ON connection_checks (connection_id, id);

-- Named, expiring claims on background work, so that several Plugboard
-- processes on one database do each job once ("check:42", later
-- "refresh:42" for OAuth2 tokens).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
