-- One row per leaver event. At most one active termination per employee.
CREATE TABLE terminations (
    id           INTEGER PRIMARY KEY,
    employee_id  TEXT NOT NULL REFERENCES people (employee_id),
    source       TEXT NOT NULL,
    batch_id     INTEGER NOT NULL REFERENCES batches (id),
    effective_at TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'rescinded')),
    rescinded_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX terminations_one_active ON terminations (employee_id) WHERE status = 'active';
CREATE INDEX terminations_employee ON terminations (employee_id);
