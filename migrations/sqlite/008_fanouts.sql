-- Fan-outs still being queued. A publish queues the deliveries of at most FAN_OUT_CHUNK
-- matching subscriptions (store/rows.ts) in its own transaction; when there are more, it
-- also stores a row here, in that same transaction, naming the last subscription queued.
-- The dispatcher's process queues the rest in chunks (delivery/fan-out.ts), each chunk and
-- the move of `after_subscription` in one transaction: a crash between chunks resumes after
-- the last committed one, never queues a subscription twice, never skips one. Subscriptions
-- are walked in id order, the order of subscription_channels' primary key; those created
-- after the event (created_at > the event's) are not its audience.
CREATE TABLE fanouts (
  event_id           TEXT PRIMARY KEY REFERENCES events(id),
  after_subscription TEXT NOT NULL,
  created_at         INTEGER NOT NULL
);
CREATE INDEX fanouts_created ON fanouts (created_at);
