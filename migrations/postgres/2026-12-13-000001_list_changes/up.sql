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

CREATE FUNCTION list_change_bump(env TEXT) RETURNS void AS $$
    INSERT INTO list_changes (environment, change) VALUES (env, 1)
        ON CONFLICT (environment) DO UPDATE SET change = list_changes.change + 1;
$$ LANGUAGE sql;

-- The triggers are deferred to the commit: an environment's number is one
-- row that every write there moves, and its lock is then held only from
-- the end of the transaction to its commit, and taken after every other
-- lock of the transaction, so it cannot close a cycle of waits with them.
-- As they run after all of the transaction's changes, one move per
-- environment is enough: the environments moved are noted in a setting
-- local to the transaction, so deleting a tag on 50,000 connections moves
-- each number once (updating one row 50,000 times in a transaction would
-- walk its dead versions each time: quadratic).
CREATE FUNCTION list_changed() RETURNS trigger AS $$
DECLARE
    env TEXT;
    moved TEXT := coalesce(current_setting('plugboard.list_moved', true), '');
BEGIN
    IF moved LIKE '%,*,%' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'tags' THEN
        -- Tags are shared by the environments.
        UPDATE list_changes SET change = change + 1;
        PERFORM set_config('plugboard.list_moved', moved || ',*,', true);
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'connection_tokens' THEN
        IF TG_OP = 'DELETE' THEN
            SELECT environment INTO env FROM connections WHERE id = OLD.connection_id;
        ELSE
            SELECT environment INTO env FROM connections WHERE id = NEW.connection_id;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        env := OLD.environment;
    ELSE
        env := NEW.environment;
        IF TG_OP = 'UPDATE' AND OLD.environment IS DISTINCT FROM NEW.environment
            AND position(',' || OLD.environment || ',' IN moved) = 0 THEN
            PERFORM list_change_bump(OLD.environment);
            moved := moved || ',' || OLD.environment || ',';
        END IF;
    END IF;
    -- A token deleted with its connection: the connection's delete moved
    -- the number.
    IF env IS NOT NULL AND position(',' || env || ',' IN moved) = 0 THEN
        PERFORM list_change_bump(env);
        moved := moved || ',' || env || ',';
    END IF;
    PERFORM set_config('plugboard.list_moved', moved, true);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER list_change_connection_insert AFTER INSERT ON connections
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_changed();
CREATE CONSTRAINT TRIGGER list_change_connection_delete AFTER DELETE ON connections
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_changed();
-- The columns a row or a count shows; not the parameters, secrets or the
-- check schedule, which change without anything on the page changing.
CREATE CONSTRAINT TRIGGER list_change_connection_update AFTER UPDATE OF
    environment, component, name, name_key, auth_method, status, status_reason, checked_at,
    created_at, created_by, updated_by, version
    ON connections DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    -- Only a value that changed: taking a row's lock writes its version unchanged.
    WHEN ((OLD.environment, OLD.component, OLD.name, OLD.name_key, OLD.auth_method, OLD.status, OLD.status_reason, OLD.checked_at, OLD.created_at, OLD.created_by, OLD.updated_by, OLD.version)
        IS DISTINCT FROM (NEW.environment, NEW.component, NEW.name, NEW.name_key, NEW.auth_method, NEW.status, NEW.status_reason, NEW.checked_at, NEW.created_at, NEW.created_by, NEW.updated_by, NEW.version))
    EXECUTE FUNCTION list_changed();
CREATE CONSTRAINT TRIGGER list_change_tag_link AFTER INSERT OR UPDATE OR DELETE ON connection_tags
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_changed();
CREATE CONSTRAINT TRIGGER list_change_tag AFTER UPDATE OF name OR DELETE ON tags
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_changed();
CREATE CONSTRAINT TRIGGER list_change_token AFTER INSERT OR UPDATE OR DELETE ON connection_tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION list_changed();
