DROP TABLE audit_events;
DROP TABLE sign_in_failures;
DROP TABLE users;
