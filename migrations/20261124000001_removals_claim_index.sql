-- The claim path: due pending removals of one connector in due order. Only pending rows are in it, so it stays
-- as small as the backlog however many removals have finished, and a claim reads the next rows without sorting.
CREATE INDEX removals_claim ON removals (connector, due_at, id) WHERE state = 'pending';
