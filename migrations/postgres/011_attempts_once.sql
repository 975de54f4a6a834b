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
-- first, one row of each kept (they are the same attempt). The lock keeps writers out from
-- the removal to the index, which would fail on a duplicate logged in between; it also holds
-- every recording until the migration commits, which on a large delivery_attempts table
-- takes as long as reading it and building the index. To shorten that, build the index
-- beforehand while Herald runs (CREATE UNIQUE INDEX CONCURRENTLY delivery_attempts_once ON
-- delivery_attempts (delivery_id, attempt, started_at), after removing duplicates as below):
-- IF NOT EXISTS then skips it here. A process of the old version still running fails where
-- it would have logged an attempt twice, and records that batch again until it gives up
-- (those deliveries are re-sent after their lease).
LOCK TABLE delivery_attempts IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM delivery_attempts a USING delivery_attempts b
WHERE a.delivery_id = b.delivery_id AND a.attempt = b.attempt AND a.started_at = b.started_at AND a.ctid > b.ctid;
CREATE UNIQUE INDEX IF NOT EXISTS delivery_attempts_once ON delivery_attempts (delivery_id, attempt, started_at);
DROP INDEX IF EXISTS delivery_attempts_delivery;
