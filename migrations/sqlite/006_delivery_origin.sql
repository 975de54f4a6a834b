-- Each delivery carries its receiver origin (originKey of the subscription's callback URL:
-- `scheme://host[:port]/`), set at publish and kept in step when a subscription's URL
-- changes. The claim uses it to give every origin its own share of the dispatcher: a
-- receiver that hangs holds at most HERALD_MAX_IN_FLIGHT_PER_ORIGIN slots, and its backlog,
-- however long, is stepped over origin by origin through deliveries_due_origin instead of
-- being scanned row by row.
ALTER TABLE deliveries ADD COLUMN origin TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET origin = COALESCE(
  (SELECT substr(s.callback_url, 1, instr(substr(s.callback_url, 9), '/') + 8) FROM subscriptions s WHERE s.id = deliveries.subscription_id),
  '')
WHERE status = 'pending';
CREATE INDEX deliveries_due_origin ON deliveries (origin, next_attempt_at) WHERE status = 'pending';
