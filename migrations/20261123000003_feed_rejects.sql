-- Rejected input rows: where and why, never the rejected values themselves.
CREATE TABLE feed_rejects (
    id       INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    row      INTEGER NOT NULL,
    line     INTEGER,
    field    TEXT,
    reason   TEXT NOT NULL
) STRICT;
CREATE INDEX feed_rejects_batch ON feed_rejects (batch_id);
