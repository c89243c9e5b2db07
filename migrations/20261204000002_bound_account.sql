-- The account a removal is bound to: what an attempt resolved, written (with `remote_id`) before that
-- attempt sent the call that acts on it. Later attempts look up this account alone, never another key
-- or match mode, and a later "not found" reads as removed by the attempt whose answer was lost.
-- `bound_key`: the key the account was found under, for connectors that look it up by key (Panopto).
-- `remove_sent_at`: when the first call that acts was about to be sent: the earliest moment the
-- account may have been removed, which `report` gives for an unconfirmed removal.
ALTER TABLE removals ADD COLUMN bound_key TEXT;
ALTER TABLE removals ADD COLUMN remove_sent_at TEXT;
