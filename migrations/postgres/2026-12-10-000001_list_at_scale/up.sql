-- The list at 100,000 connections: the sidebar's counts kept as counters,
-- the column sorts served by indexes, and the name search by a trigram
-- index.
--
-- The counters are kept by triggers, so they move in the same transaction
-- as every change that moves them, whichever code path makes it (create,
-- edit, delete, tag, untag, check, OAuth2 status changes, tag rename,
-- merge and delete; a connection deleted takes its tag links with it
-- through ON DELETE CASCADE, which fires the links' trigger too).

-- How many connections of an environment have each status and component.
CREATE TABLE connection_counts (
    environment TEXT NOT NULL,
    -- 'status' or 'component'.
    facet TEXT NOT NULL,
    value TEXT NOT NULL,
    connections BIGINT NOT NULL,
    PRIMARY KEY (environment, facet, value)
);
-- How many connections of an environment carry each tag.
CREATE TABLE tag_counts (
    environment TEXT NOT NULL,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    connections BIGINT NOT NULL,
    PRIMARY KEY (environment, tag_id)
);

INSERT INTO connection_counts (environment, facet, value, connections)
    SELECT environment, 'status', status, COUNT(*) FROM connections GROUP BY environment, status;
INSERT INTO connection_counts (environment, facet, value, connections)
    SELECT environment, 'component', component, COUNT(*) FROM connections GROUP BY environment, component;
INSERT INTO tag_counts (environment, tag_id, connections)
    SELECT environment, tag_id, COUNT(*) FROM connection_tags GROUP BY environment, tag_id;

-- Statement-level triggers over the transition tables: a statement that
-- changes many rows (a tag merge, a bulk import) moves each counter once,
-- not once per row. Row-level triggers would update one hot counter row
-- thousands of times in one transaction, and PostgreSQL walks every dead
-- version of that row on each update: quadratic. The counter rows are
-- taken in key order, so two transactions moving the same counters the
-- opposite way (one check finding a connection ACTIVE, another finding one
-- NOT ACTIVE) lock them in the same order and cannot deadlock.
CREATE FUNCTION connections_counted() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO connection_counts (environment, facet, value, connections)
        SELECT e, f, v, SUM(d) FROM (
            SELECT environment, 'status', status, 1 FROM new_rows
            UNION ALL SELECT environment, 'component', component, 1 FROM new_rows
        ) AS change (e, f, v, d)
        GROUP BY e, f, v ORDER BY e, f, v
        ON CONFLICT (environment, facet, value)
            DO UPDATE SET connections = connection_counts.connections + EXCLUDED.connections;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO connection_counts (environment, facet, value, connections)
        SELECT e, f, v, SUM(d) FROM (
            SELECT environment, 'status', status, -1 FROM old_rows
            UNION ALL SELECT environment, 'component', component, -1 FROM old_rows
        ) AS change (e, f, v, d)
        GROUP BY e, f, v ORDER BY e, f, v
        ON CONFLICT (environment, facet, value)
            DO UPDATE SET connections = connection_counts.connections + EXCLUDED.connections;
    ELSE
        -- Rows whose counted columns did not change cancel out.
        INSERT INTO connection_counts (environment, facet, value, connections)
        SELECT e, f, v, SUM(d) FROM (
            SELECT environment, 'status', status, -1 FROM old_rows
            UNION ALL SELECT environment, 'component', component, -1 FROM old_rows
            UNION ALL SELECT environment, 'status', status, 1 FROM new_rows
            UNION ALL SELECT environment, 'component', component, 1 FROM new_rows
        ) AS change (e, f, v, d)
        GROUP BY e, f, v HAVING SUM(d) <> 0 ORDER BY e, f, v
        ON CONFLICT (environment, facet, value)
            DO UPDATE SET connections = connection_counts.connections + EXCLUDED.connections;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connections_count_insert AFTER INSERT ON connections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION connections_counted();
CREATE TRIGGER connections_count_update AFTER UPDATE ON connections
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION connections_counted();
CREATE TRIGGER connections_count_delete AFTER DELETE ON connections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION connections_counted();

CREATE FUNCTION connection_tags_counted() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tag_counts (environment, tag_id, connections)
        SELECT environment, tag_id, COUNT(*) FROM new_rows
        GROUP BY environment, tag_id ORDER BY environment, tag_id
        ON CONFLICT (environment, tag_id) DO UPDATE SET connections = tag_counts.connections + EXCLUDED.connections;
    ELSIF TG_OP = 'DELETE' THEN
        -- A tag deleted takes its counters with it (ON DELETE CASCADE);
        -- its links, cascading too, then find no counter to move.
        UPDATE tag_counts SET connections = tag_counts.connections - gone.n
        FROM (SELECT environment, tag_id, COUNT(*) AS n FROM old_rows GROUP BY environment, tag_id) AS gone
        WHERE tag_counts.environment = gone.environment AND tag_counts.tag_id = gone.tag_id;
    ELSE
        INSERT INTO tag_counts (environment, tag_id, connections)
        SELECT e, t, SUM(d) FROM (
            SELECT environment, tag_id, -1 FROM old_rows
            UNION ALL SELECT environment, tag_id, 1 FROM new_rows
        ) AS change (e, t, d)
        GROUP BY e, t HAVING SUM(d) <> 0 ORDER BY e, t
        ON CONFLICT (environment, tag_id) DO UPDATE SET connections = tag_counts.connections + EXCLUDED.connections;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER connection_tags_count_insert AFTER INSERT ON connection_tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION connection_tags_counted();
CREATE TRIGGER connection_tags_count_update AFTER UPDATE ON connection_tags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION connection_tags_counted();
CREATE TRIGGER connection_tags_count_delete AFTER DELETE ON connection_tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION connection_tags_counted();

-- The column sorts: component and status, each then by name.
CREATE INDEX connections_env_component_name ON connections (environment, component, name_key, id);
CREATE INDEX connections_env_status_name ON connections (environment, status, name_key, id);

-- Substring search on the folded name: a trigram index answers
-- name_key LIKE '%...%' without reading every name. pg_trgm ships with
-- PostgreSQL and is a trusted extension (the database's owner may create
-- it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX connections_name_trigrams ON connections USING gin (name_key gin_trgm_ops);
