-- The queue apart from the history. A pending delivery also has a narrow row here (its id,
-- receiver origin, due time and lease); claims and outcomes work on this table, and
-- `deliveries` keeps each delivery's record (status, attempts, last result), the row the API
-- reads. deliveries_due and deliveries_due_origin move here without their `status =
-- 'pending'` predicate: every row here is pending.
--
-- Why: every change of a row's indexed columns writes a new entry into each of its indexes,
-- and `deliveries` had five. A claim (a new lease time) and an outcome (the status, a
-- partial indexes' predicate column) each added an entry to all five, for a key that did not
-- change in three of them, which PostgreSQL then had to clean out (bottom-up deletion: 8.6%
-- of its CPU in a perf profile of the bench's PostgreSQL scenario; index insertion 27%).
-- Now a claim changes only this table's three narrow indexes, an outcome deletes its queue
-- row (no index entry written) and changes no indexed column of `deliveries`, so that update
-- can stay on its page (HOT) and write no index entry at all. deliveries.next_attempt_at is
-- still kept at publish and by each outcome, for the API; a claim no longer touches
-- `deliveries` (in flight, the API shows the due time it was claimed at, as on SQLite), and
-- deliveries.lease_token is no longer used.
--
-- Stop every process of the old version before migrating: one still running would queue
-- deliveries without a queue row (never sent) and claim from `deliveries`. Leases held
-- while migrating are copied, so those deliveries are not claimed again before the lease
-- ends; an old process's outcome recorded after the migration no longer matches (the old
-- statement checks deliveries.lease_token, cleared here), and the delivery is sent again
-- after its lease, which at-least-once allows. The lock keeps writers of the old version
-- out while the pending rows are copied.
LOCK TABLE deliveries IN EXCLUSIVE MODE;
CREATE TABLE delivery_queue (
  id              TEXT PRIMARY KEY,
  origin          TEXT NOT NULL,
  next_attempt_at BIGINT NOT NULL,
  lease_token     TEXT
);
INSERT INTO delivery_queue (id, origin, next_attempt_at, lease_token)
SELECT id, origin, COALESCE(next_attempt_at, 0), lease_token FROM deliveries WHERE status = 'pending';
CREATE INDEX delivery_queue_due ON delivery_queue (next_attempt_at);
CREATE INDEX delivery_queue_due_origin ON delivery_queue (origin, next_attempt_at);
DROP INDEX deliveries_due;
DROP INDEX deliveries_due_origin;
UPDATE deliveries SET lease_token = NULL WHERE lease_token IS NOT NULL;
-- Room on each page for a row's new version after its outcome, so that update stays on the
-- page (HOT). Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 80);
