-- removals_claim (connector, due_at, id) WHERE state = 'pending' serves every read that used removals_due
-- (the oldest due removal is read per connector). One index fewer to maintain on every insert, claim and
-- completion.
DROP INDEX removals_due;
