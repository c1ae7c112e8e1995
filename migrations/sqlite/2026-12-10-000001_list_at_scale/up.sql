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
    tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    connections BIGINT NOT NULL,
    PRIMARY KEY (environment, tag_id)
);

INSERT INTO connection_counts (environment, facet, value, connections)
    SELECT environment, 'status', status, COUNT(*) FROM connections GROUP BY environment, status;
INSERT INTO connection_counts (environment, facet, value, connections)
    SELECT environment, 'component', component, COUNT(*) FROM connections GROUP BY environment, component;
INSERT INTO tag_counts (environment, tag_id, connections)
    SELECT environment, tag_id, COUNT(*) FROM connection_tags GROUP BY environment, tag_id;

CREATE TRIGGER connections_count_insert AFTER INSERT ON connections BEGIN
    INSERT OR IGNORE INTO connection_counts VALUES
        (NEW.environment, 'status', NEW.status, 0), (NEW.environment, 'component', NEW.component, 0);
    UPDATE connection_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND facet = 'status' AND value = NEW.status;
    UPDATE connection_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND facet = 'component' AND value = NEW.component;
END;

CREATE TRIGGER connections_count_delete AFTER DELETE ON connections BEGIN
    UPDATE connection_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND facet = 'status' AND value = OLD.status;
    UPDATE connection_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND facet = 'component' AND value = OLD.component;
END;

CREATE TRIGGER connections_count_update AFTER UPDATE OF environment, status, component ON connections
WHEN OLD.environment IS NOT NEW.environment OR OLD.status IS NOT NEW.status OR OLD.component IS NOT NEW.component
BEGIN
    UPDATE connection_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND facet = 'status' AND value = OLD.status;
    UPDATE connection_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND facet = 'component' AND value = OLD.component;
    INSERT OR IGNORE INTO connection_counts VALUES
        (NEW.environment, 'status', NEW.status, 0), (NEW.environment, 'component', NEW.component, 0);
    UPDATE connection_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND facet = 'status' AND value = NEW.status;
    UPDATE connection_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND facet = 'component' AND value = NEW.component;
END;

CREATE TRIGGER connection_tags_count_insert AFTER INSERT ON connection_tags BEGIN
    INSERT OR IGNORE INTO tag_counts VALUES (NEW.environment, NEW.tag_id, 0);
    UPDATE tag_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND tag_id = NEW.tag_id;
END;

CREATE TRIGGER connection_tags_count_delete AFTER DELETE ON connection_tags BEGIN
    UPDATE tag_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND tag_id = OLD.tag_id;
END;

-- A merge moves links from one tag to another.
CREATE TRIGGER connection_tags_count_update AFTER UPDATE OF environment, tag_id ON connection_tags
WHEN OLD.environment IS NOT NEW.environment OR OLD.tag_id IS NOT NEW.tag_id
BEGIN
    UPDATE tag_counts SET connections = connections - 1
        WHERE environment = OLD.environment AND tag_id = OLD.tag_id;
    INSERT OR IGNORE INTO tag_counts VALUES (NEW.environment, NEW.tag_id, 0);
    UPDATE tag_counts SET connections = connections + 1
        WHERE environment = NEW.environment AND tag_id = NEW.tag_id;
END;

-- The column sorts: component and status, each then by name.
CREATE INDEX connections_env_component_name ON connections (environment, component, name_key, id);
CREATE INDEX connections_env_status_name ON connections (environment, status, name_key, id);

-- Substring search on the folded name: FTS5's trigram tokenizer indexes
-- every three characters, so "ack 1" is found inside "slack 12" without
-- reading every name. It reads name_key from connections (external
-- content) and is kept in step by the triggers below. Case-sensitive,
-- because name_key is already folded by Plugboard (`store::fold`): the
-- match is then exactly "name_key contains the folded search".
CREATE VIRTUAL TABLE connection_names USING fts5(
    name_key, tokenize = 'trigram case_sensitive 1', content = 'connections', content_rowid = 'id'
);
INSERT INTO connection_names (connection_names) VALUES ('rebuild');

CREATE TRIGGER connection_names_insert AFTER INSERT ON connections BEGIN
    INSERT INTO connection_names (rowid, name_key) VALUES (NEW.id, NEW.name_key);
END;
CREATE TRIGGER connection_names_delete AFTER DELETE ON connections BEGIN
    INSERT INTO connection_names (connection_names, rowid, name_key) VALUES ('delete', OLD.id, OLD.name_key);
END;
CREATE TRIGGER connection_names_update AFTER UPDATE OF name_key ON connections
WHEN OLD.name_key IS NOT NEW.name_key
BEGIN
    INSERT INTO connection_names (connection_names, rowid, name_key) VALUES ('delete', OLD.id, OLD.name_key);
    INSERT INTO connection_names (rowid, name_key) VALUES (NEW.id, NEW.name_key);
END;
