-- People as the HR feed last described them. The employee id is the HR system's stable key.
CREATE TABLE people (
    employee_id  TEXT PRIMARY KEY NOT NULL,
    email        TEXT,
    username     TEXT,
    upn          TEXT,
    display_name TEXT,
    attributes   TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
