DROP TABLE connection_tokens;
DROP TABLE oauth_attempts;
