-- `INSERT OR REPLACE` deletes the conflicting row without firing the delete trigger (SQLite's
-- recursive_triggers is off): refuse any insert whose sequence number is taken, so the database itself
-- refuses to rewrite a row that way. Appends (a new, higher seq) are unaffected.
CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: this sequence number is taken');
END;
