-- Secrets replaced by a rotation keep signing until expires_at (the grace period).
CREATE TABLE app_secrets (
  app_id     TEXT NOT NULL REFERENCES apps(id),
  kind       TEXT NOT NULL,        -- 'client' (signed_request key) or 'signing' (whsec)
  secret     TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX app_secrets_app ON app_secrets (app_id, kind, expires_at);
