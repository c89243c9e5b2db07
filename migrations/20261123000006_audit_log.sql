-- Append-only, hash-chained evidence of every change and every vendor call.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    employee_id TEXT,
    connector   TEXT,
    removal_id  INTEGER,
    batch_id    INTEGER,
    attempt     INTEGER,
    outcome     TEXT,
    http_status INTEGER,
    duration_ms INTEGER,
    detail      TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_employee ON audit_log (employee_id, seq);
CREATE INDEX audit_log_removal ON audit_log (removal_id, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
