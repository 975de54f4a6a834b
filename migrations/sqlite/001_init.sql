-- Herald schema, SQLite engine. Times are epoch milliseconds; JSON is stored as text.

CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE resource_types (
  type     TEXT PRIMARY KEY,
  plural   TEXT NOT NULL UNIQUE,
  actions  TEXT NOT NULL,          -- JSON array
  parents  TEXT NOT NULL,          -- JSON array
  position INTEGER NOT NULL
);

CREATE TABLE companies (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  sub_domain TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

CREATE TABLE roles (
  company_id  TEXT NOT NULL REFERENCES companies(id),
  name        TEXT NOT NULL,
  permissions TEXT NOT NULL,       -- JSON object: plural -> actions
  PRIMARY KEY (company_id, name)
);

CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  company_id    TEXT NOT NULL REFERENCES companies(id),
  email         TEXT NOT NULL,
  name          TEXT NOT NULL,
  role          TEXT NOT NULL,
  password_hash TEXT,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  UNIQUE (company_id, email)
);

CREATE TABLE apps (
  id             TEXT PRIMARY KEY,
  name           TEXT NOT NULL,
  url            TEXT NOT NULL,
  redirect_uris  TEXT NOT NULL,    -- JSON array
  signature      TEXT NOT NULL,
  client_id      TEXT NOT NULL UNIQUE,
  client_secret  TEXT NOT NULL,
  signing_secret TEXT NOT NULL,
  created_at     INTEGER NOT NULL
);

CREATE TABLE grants (
  id         TEXT PRIMARY KEY,
  app_id     TEXT NOT NULL REFERENCES apps(id),
  user_id    TEXT NOT NULL REFERENCES users(id),
  company_id TEXT NOT NULL REFERENCES companies(id),
  scope      TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

-- Tokens are stored as SHA-256 hashes only.
CREATE TABLE access_tokens (
  hash       TEXT PRIMARY KEY,
  grant_id   TEXT NOT NULL REFERENCES grants(id),
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);

CREATE TABLE subscriptions (
  id            TEXT PRIMARY KEY,
  grant_id      TEXT NOT NULL REFERENCES grants(id),
  app_id        TEXT NOT NULL,
  user_id       TEXT NOT NULL,
  company_id    TEXT NOT NULL,
  channels      TEXT NOT NULL,     -- JSON array, the order the app gave
  callback_url  TEXT NOT NULL,
  resource_type TEXT,
  resource_id   TEXT,
  headers       TEXT NOT NULL,     -- JSON object
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);
CREATE INDEX subscriptions_owner ON subscriptions (app_id, user_id, company_id);
CREATE INDEX subscriptions_grant ON subscriptions (grant_id);

-- Fan-out index: which subscriptions of a company listen on a channel.
CREATE TABLE subscription_channels (
  company_id      TEXT NOT NULL,
  channel         TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  PRIMARY KEY (company_id, channel, subscription_id)
) WITHOUT ROWID;
CREATE INDEX subscription_channels_sub ON subscription_channels (subscription_id);

CREATE TABLE events (
  id              TEXT PRIMARY KEY,
  company_id      TEXT NOT NULL,
  channel         TEXT NOT NULL,
  body            TEXT NOT NULL,   -- JSON: {object, links, resources}
  user_id         TEXT,
  idempotency_key TEXT,
  created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (company_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- The queue. A pending row is due when next_attempt_at <= now. Claiming pushes
-- next_attempt_at to the end of the lease and stamps lease_token: a crashed claimer's rows
-- become due again by themselves, and only the lease holder may record the outcome.
CREATE TABLE deliveries (
  id               TEXT PRIMARY KEY,
  event_id         TEXT NOT NULL REFERENCES events(id),
  subscription_id  TEXT NOT NULL,
  company_id       TEXT NOT NULL,
  app_id           TEXT NOT NULL,
  channel          TEXT NOT NULL,
  status           TEXT NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER,
  lease_token      TEXT,
  last_status_code INTEGER,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_lease ON deliveries (lease_token) WHERE lease_token IS NOT NULL;

CREATE TABLE delivery_attempts (
  delivery_id      TEXT NOT NULL,
  attempt          INTEGER NOT NULL,
  started_at       INTEGER NOT NULL,
  duration_ms      INTEGER NOT NULL,
  status_code      INTEGER,
  error            TEXT,
  response_excerpt TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
