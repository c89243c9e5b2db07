-- A connector's state when it is not simply active: `quarantined` by the workers after a run of
-- consecutive vendor failures (its removals wait, their attempts untouched, while a probe checks the
-- vendor at growing intervals), or `paused` by an operator. No row: active.
CREATE TABLE connector_state (
    connector     TEXT PRIMARY KEY,
    state         TEXT NOT NULL CHECK (state IN ('quarantined', 'paused')),
    reason        TEXT NOT NULL,
    since         TEXT NOT NULL,
    probes        INTEGER NOT NULL DEFAULT 0,
    next_probe_at TEXT
) STRICT;
