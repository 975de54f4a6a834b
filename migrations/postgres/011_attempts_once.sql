-- Each attempt is logged once. The dispatcher records its outcomes again when the statement
-- that recorded them failed, and a statement can fail after it committed (the connection
-- drops before its answer arrives): the queue row is gone by then, so the delivery is not
-- changed twice, but its attempt was inserted a second time. The attempt is now keyed by
-- delivery, attempt number and start time; a recording that finds an attempt of its batch
-- logged already fails and is run again with ON CONFLICT DO NOTHING (store/postgres/queue.ts,
-- outcomeCtes).
-- Two processes that both attempted a delivery (the first outlived its lease) started at
-- different times, and both attempts are kept.
--
-- The new index replaces delivery_attempts_delivery, whose columns it begins with (the
-- attempt list and retention read by delivery_id). Duplicates already logged are removed
-- first, the earliest row of each kept. A process of the old version still running fails
-- where it would have logged an attempt twice, and records that batch again until it gives
-- up (those deliveries are re-sent after their lease).
DELETE FROM delivery_attempts a USING delivery_attempts b
WHERE a.delivery_id = b.delivery_id AND a.attempt = b.attempt AND a.started_at = b.started_at AND a.ctid > b.ctid;
CREATE UNIQUE INDEX IF NOT EXISTS delivery_attempts_once ON delivery_attempts (delivery_id, attempt, started_at);
DROP INDEX IF EXISTS delivery_attempts_delivery;
