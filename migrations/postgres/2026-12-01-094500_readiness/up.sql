-- One row that the readiness probe (GET /readyz) updates to prove that the
-- database accepts writes. Nothing else reads or writes it.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- Counts the probes so that every probe really changes the row: SQLite
    -- skips writing a row that an UPDATE leaves as it was.
    probes BIGINT NOT NULL DEFAULT 0,
    probed_at TIMESTAMP
);
INSERT INTO readiness (id) VALUES (1);
