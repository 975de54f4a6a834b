-- Each attempt is logged once, keyed by delivery, attempt number and start time: recording
-- the same outcome again (a retried write) inserts nothing, as on PostgreSQL (see its
-- migration 011, where a statement can fail after it committed). Two attempts of one
-- delivery by two holders (the first outlived its lease) started at different times, and
-- both are kept. The new index replaces delivery_attempts_delivery, whose columns it begins
-- with; duplicates already logged are removed first, one row of each kept (they are the
-- same attempt).
DELETE FROM delivery_attempts AS a WHERE EXISTS (
  SELECT 1 FROM delivery_attempts b
  WHERE b.delivery_id = a.delivery_id AND b.attempt = a.attempt AND b.started_at = a.started_at AND b.rowid < a.rowid
);
CREATE UNIQUE INDEX IF NOT EXISTS delivery_attempts_once ON delivery_attempts (delivery_id, attempt, started_at);
DROP INDEX IF EXISTS delivery_attempts_delivery;
