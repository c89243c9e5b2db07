-- A termination set aside by `offboard reject` is remembered: a feed or push that reports the same person
-- with the same effective time is not turned into a new termination (nor held again) until an operator
-- lifts the rejection (`offboard unreject`), or the feed changes the date.
ALTER TABLE terminations ADD COLUMN rejected_at TEXT;
ALTER TABLE terminations ADD COLUMN rejected_by TEXT;
ALTER TABLE terminations ADD COLUMN unrejected_at TEXT;
CREATE INDEX terminations_rejected ON terminations (employee_id) WHERE rejected_at IS NOT NULL AND unrejected_at IS NULL;
