-- The removal queue: one row per (termination, connector).
CREATE TABLE removals (
    id               INTEGER PRIMARY KEY,
    termination_id   INTEGER NOT NULL REFERENCES terminations (id),
    connector        TEXT NOT NULL,
    account          TEXT,
    state            TEXT NOT NULL CHECK (state IN ('held', 'pending', 'running', 'done', 'planned', 'failed', 'cancelled')),
    due_at           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- attempts already spent when an operator last retried; the budget counts from here.
    retry_base       INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    outcome          TEXT,
    remote_id        TEXT,
    last_error       TEXT,
    batch_id         INTEGER NOT NULL REFERENCES batches (id),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT,
    UNIQUE (termination_id, connector)
) STRICT;
-- Partial indexes keep finished rows out of the claim path.
CREATE INDEX removals_due ON removals (due_at) WHERE state = 'pending';
CREATE INDEX removals_lease ON removals (lease_expires_at) WHERE state = 'running';
CREATE INDEX removals_state_connector ON removals (state, connector);
