-- OAuth 2.0: public clients (PKCE, no secret), authorization codes and refresh tokens,
-- all stored as SHA-256 hashes.
ALTER TABLE apps ADD COLUMN public_client BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE oauth_codes (
  hash                  TEXT PRIMARY KEY,
  app_id                TEXT NOT NULL REFERENCES apps(id),
  user_id               TEXT NOT NULL REFERENCES users(id),
  company_id            TEXT NOT NULL,
  scope                 TEXT NOT NULL,
  redirect_uri          TEXT NOT NULL,
  code_challenge        TEXT,
  code_challenge_method TEXT,
  expires_at            BIGINT NOT NULL,
  created_at            BIGINT NOT NULL,
  used_at               BIGINT,
  grant_id              TEXT
);

CREATE TABLE refresh_tokens (
  hash       TEXT PRIMARY KEY,
  grant_id   TEXT NOT NULL REFERENCES grants(id),
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  used_at    BIGINT             -- set when rotated: presenting it again revokes the grant
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX users_email ON users (email);
CREATE INDEX grants_owner ON grants (app_id, user_id, company_id) WHERE revoked_at IS NULL;
