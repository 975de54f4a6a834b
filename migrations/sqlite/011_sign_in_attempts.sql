-- Sign-in attempts on the OAuth pages since the last success, per client address and email
-- (the key is hashed: oauth/session.ts, SignInLimiter), counted in the database so that every
-- process sharing it counts them together. A window that has ended counts from zero again.
CREATE TABLE IF NOT EXISTS sign_in_attempts (
  key_hash TEXT PRIMARY KEY,
  attempts INTEGER NOT NULL,
  reset_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_in_attempts_reset ON sign_in_attempts (reset_at);
