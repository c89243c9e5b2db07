-- Notifications: each event worth telling people about, once (by its key), written in the transaction
-- of what caused it; and its delivery to each configured channel, sent from here with retries.
CREATE TABLE notify_events (
    id      INTEGER PRIMARY KEY,
    key     TEXT NOT NULL UNIQUE,
    event   TEXT NOT NULL,
    at      TEXT NOT NULL,
    summary TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE TABLE notify_deliveries (
    event_id   INTEGER NOT NULL REFERENCES notify_events (id),
    channel    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    TEXT,
    sent_at    TEXT,
    last_error TEXT,
    PRIMARY KEY (event_id, channel)
) STRICT;
