-- Each environment's list change number: bumped by triggers in the same
-- transaction as every change to what the Connections page shows (its
-- rows, their tags and token state, the counts). A page made from a
-- snapshot with change number N is the page of every snapshot with N, so
-- a process may keep it (web::connections::list_cache) and every process
-- knows, from one read of the number, whether what it keeps is current.
CREATE TABLE list_changes (
    environment TEXT PRIMARY KEY NOT NULL,
    change BIGINT NOT NULL
);
-- Every environment that has connections has its row, as the triggers
-- below that only add to existing rows (tags, tokens) expect.
INSERT INTO list_changes (environment, change) SELECT DISTINCT environment, 0 FROM connections;

CREATE TRIGGER list_change_connection_insert AFTER INSERT ON connections BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (NEW.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment = NEW.environment;
END;

CREATE TRIGGER list_change_connection_delete AFTER DELETE ON connections BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (OLD.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment = OLD.environment;
END;

-- The columns a row or a count shows; not the parameters, secrets or the
-- check schedule, which change without anything on the page changing.
CREATE TRIGGER list_change_connection_update AFTER UPDATE OF
    environment, component, name, name_key, auth_method, status, status_reason, checked_at,
    created_at, created_by, updated_by, version
ON connections
-- Only a value that changed: taking a row's lock writes its version unchanged.
WHEN OLD.environment IS NOT NEW.environment OR OLD.component IS NOT NEW.component OR OLD.name IS NOT NEW.name
    OR OLD.name_key IS NOT NEW.name_key OR OLD.auth_method IS NOT NEW.auth_method OR OLD.status IS NOT NEW.status
    OR OLD.status_reason IS NOT NEW.status_reason OR OLD.checked_at IS NOT NEW.checked_at OR OLD.created_at IS NOT NEW.created_at
    OR OLD.created_by IS NOT NEW.created_by OR OLD.updated_by IS NOT NEW.updated_by OR OLD.version IS NOT NEW.version
BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (NEW.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment IN (OLD.environment, NEW.environment);
END;

CREATE TRIGGER list_change_tag_link_insert AFTER INSERT ON connection_tags BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (NEW.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment = NEW.environment;
END;

CREATE TRIGGER list_change_tag_link_delete AFTER DELETE ON connection_tags BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (OLD.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment = OLD.environment;
END;

CREATE TRIGGER list_change_tag_link_update AFTER UPDATE ON connection_tags BEGIN
    INSERT OR IGNORE INTO list_changes VALUES (NEW.environment, 0);
    UPDATE list_changes SET change = change + 1 WHERE environment IN (OLD.environment, NEW.environment);
END;

-- Tags are shared by the environments: a renamed or deleted tag changes
-- every environment's page.
CREATE TRIGGER list_change_tag_update AFTER UPDATE OF name ON tags BEGIN
    UPDATE list_changes SET change = change + 1;
END;

CREATE TRIGGER list_change_tag_delete AFTER DELETE ON tags BEGIN
    UPDATE list_changes SET change = change + 1;
END;

-- A row shows when its OAuth2 access token expires and was refreshed.
CREATE TRIGGER list_change_token_insert AFTER INSERT ON connection_tokens BEGIN
    UPDATE list_changes SET change = change + 1
        WHERE environment = (SELECT environment FROM connections WHERE id = NEW.connection_id);
END;

CREATE TRIGGER list_change_token_update AFTER UPDATE ON connection_tokens BEGIN
    UPDATE list_changes SET change = change + 1
        WHERE environment = (SELECT environment FROM connections WHERE id = NEW.connection_id);
END;

CREATE TRIGGER list_change_token_delete AFTER DELETE ON connection_tokens BEGIN
    UPDATE list_changes SET change = change + 1
        WHERE environment = (SELECT environment FROM connections WHERE id = OLD.connection_id);
END;
