-- Archived audit rows: `offboard audit archive` exports the oldest rows to a signed segment file and
-- removes them; the chain then starts after the anchor (the last archived row's seq and hash, with the
-- checkpoint that signs it). Rows may only be deleted up to an anchor, and an anchor only moves forward.
CREATE TABLE audit_anchor (
    seq          INTEGER PRIMARY KEY,
    hash         TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    checkpoint   TEXT NOT NULL,
    segment      TEXT NOT NULL,
    segment_sha256 TEXT NOT NULL,
    archived_by  TEXT NOT NULL,
    archived_at  TEXT NOT NULL
) STRICT;
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_anchor)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_anchor_no_update BEFORE UPDATE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only');
END;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN
    SELECT RAISE(ABORT, 'audit_anchor is append-only');
END;
