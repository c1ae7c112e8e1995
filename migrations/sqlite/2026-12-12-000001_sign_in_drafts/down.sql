DROP TABLE sign_in_drafts;
