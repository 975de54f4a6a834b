-- On SQLite one process at a time delivers: the one holding this row. It keeps its claims'
-- leases in memory instead of writing them to each delivery (SqliteStore.claimDueDeliveries),
-- which spares a write transaction per claim, and renews the row while it claims. Another
-- process sharing the file takes the row over once it expires, or at once when its holder's
-- process on this host has died; until then that process serves the API and claims nothing.
CREATE TABLE dispatch_owner (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  owner      TEXT NOT NULL,
  pid        INTEGER NOT NULL,
  host       TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
