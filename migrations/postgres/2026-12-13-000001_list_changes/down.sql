DROP TRIGGER list_change_token ON connection_tokens;
DROP TRIGGER list_change_tag ON tags;
DROP TRIGGER list_change_tag_link ON connection_tags;
DROP TRIGGER list_change_connection_update ON connections;
DROP TRIGGER list_change_connection_delete ON connections;
DROP TRIGGER list_change_connection_insert ON connections;
DROP FUNCTION list_changed();
DROP FUNCTION list_change_bump(TEXT);
DROP TABLE list_changes;
