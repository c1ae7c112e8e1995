DROP TABLE connection_usage;
DROP TABLE api_tokens;
