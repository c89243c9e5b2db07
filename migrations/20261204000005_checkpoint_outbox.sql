-- Checkpoints waiting to reach the HTTP sink ([checkpoints] url): written when signed, sent in order,
-- kept (with sent_at) once delivered, so a sink that is down loses none and never blocks a removal.
CREATE TABLE checkpoint_outbox (
    seq        INTEGER PRIMARY KEY,
    line       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at    TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
) STRICT;
CREATE INDEX checkpoint_outbox_unsent ON checkpoint_outbox (seq) WHERE sent_at IS NULL;
