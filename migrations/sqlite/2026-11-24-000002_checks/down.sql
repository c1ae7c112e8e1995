DROP TABLE leases;
DROP TABLE connection_checks;
DROP INDEX connections_next_check;
ALTER TABLE connections DROP COLUMN check_failures;
ALTER TABLE connections DROP COLUMN next_check_at;
