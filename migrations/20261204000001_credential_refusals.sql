-- Attempts of a removal that ended with the vendor refusing the connector's credentials: the first
-- is retried once after a few minutes, the next one fails the removal (connectors::classify).
-- An operator's retry starts the count again.
ALTER TABLE removals ADD COLUMN credential_refusals INTEGER NOT NULL DEFAULT 0;
