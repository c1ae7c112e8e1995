DROP TABLE connection_tags;
DROP TABLE tags;
DROP TABLE connections;
