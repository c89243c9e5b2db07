-- What the last successful poll of each feed source saw, for conditional GETs and incremental cursors.
CREATE TABLE feed_state (
    source_ref      TEXT PRIMARY KEY NOT NULL,
    etag            TEXT,
    last_modified   TEXT,
    last_success_at TEXT,
    updated_at      TEXT NOT NULL
) STRICT;
