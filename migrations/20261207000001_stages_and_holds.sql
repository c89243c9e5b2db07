-- Staged removals and legal holds.
--
-- A connector with [[connector.stage]] entries makes one removal per stage (e.g. deactivate at 0d, delete
-- at 30d), each with its own state, retries and audit: the queue's key becomes (termination, connector,
-- stage). `stage` is the stage's action, '' for a connector without stages (its one removal as
-- configured); `stage_index` its place in the connector's list (0: the stage that removes access first).
-- `on_hold`: a destructive stage of a person under legal hold, waiting for the hold to end.
-- SQLite cannot change a table's UNIQUE or CHECK constraints, so the table is made again, ids kept.
CREATE TABLE removals_staged (
    id                  INTEGER PRIMARY KEY,
    termination_id      INTEGER NOT NULL REFERENCES terminations (id),
    connector           TEXT NOT NULL,
    stage               TEXT NOT NULL DEFAULT '',
    stage_index         INTEGER NOT NULL DEFAULT 0,
    account             TEXT,
    state               TEXT NOT NULL CHECK (state IN ('held', 'pending', 'on_hold', 'running', 'done', 'planned', 'failed', 'cancelled')),
    due_at              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    -- attempts already spent when an operator last retried; the budget counts from here.
    retry_base          INTEGER NOT NULL DEFAULT 0,
    lease_owner         TEXT,
    lease_expires_at    TEXT,
    outcome             TEXT,
    remote_id           TEXT,
    last_error          TEXT,
    batch_id            INTEGER NOT NULL REFERENCES batches (id),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    finished_at         TEXT,
    credential_refusals INTEGER NOT NULL DEFAULT 0,
    bound_key           TEXT,
    remove_sent_at      TEXT,
    UNIQUE (termination_id, connector, stage)
) STRICT;
INSERT INTO removals_staged (id, termination_id, connector, account, state, due_at, attempts, retry_base,
        lease_owner, lease_expires_at, outcome, remote_id, last_error, batch_id, created_at, updated_at,
        finished_at, credential_refusals, bound_key, remove_sent_at)
    SELECT id, termination_id, connector, account, state, due_at, attempts, retry_base, lease_owner,
        lease_expires_at, outcome, remote_id, last_error, batch_id, created_at, updated_at, finished_at,
        credential_refusals, bound_key, remove_sent_at
    FROM removals;
DROP TABLE removals;
ALTER TABLE removals_staged RENAME TO removals;
CREATE INDEX removals_claim ON removals (connector, due_at, id) WHERE state = 'pending';
CREATE INDEX removals_lease ON removals (lease_expires_at) WHERE state = 'running';
CREATE INDEX removals_state_connector ON removals (state, connector);
CREATE INDEX removals_on_hold ON removals (termination_id) WHERE state = 'on_hold';

-- Legal holds: while a person has one (not released, `until` not passed), their destructive stages wait.
CREATE TABLE holds (
    id           INTEGER PRIMARY KEY,
    employee_id  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    until        TEXT,
    -- 'cli' (an operator) or 'feed' (the feed's legal-hold attribute).
    source       TEXT NOT NULL CHECK (source IN ('cli', 'feed')),
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    released_at  TEXT,
    released_by  TEXT
) STRICT;
CREATE UNIQUE INDEX holds_one_open ON holds (employee_id) WHERE released_at IS NULL;
