-- One row per feed poll, push, CLI enqueue or import.
CREATE TABLE batches (
    id               INTEGER PRIMARY KEY,
    source           TEXT NOT NULL CHECK (source IN ('feed', 'push', 'cli', 'import')),
    source_ref       TEXT,
    received_at      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'unchanged')),
    error            TEXT,
    content_sha256   TEXT,
    rows             INTEGER NOT NULL DEFAULT 0,
    accepted         INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0,
    new_terminations INTEGER NOT NULL DEFAULT 0,
    rescinded        INTEGER NOT NULL DEFAULT 0,
    moved            INTEGER NOT NULL DEFAULT 0,
    actor            TEXT NOT NULL,
    -- The mass-removal guard: a held batch waits for an operator's decision.
    held             INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1)),
    decision         TEXT CHECK (decision IN ('approved', 'rejected')),
    decided_by       TEXT,
    decided_at       TEXT
) STRICT;
CREATE INDEX batches_held ON batches (held) WHERE held = 1 AND decision IS NULL;
