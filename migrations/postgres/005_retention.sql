-- Retention (Store.prune, HERALD_RETENTION_DAYS): old events are walked in (created_at, id)
-- order and their deliveries found by deliveries_event (001); expired tokens by their
-- expiry. oauth_codes and app_secrets stay small (pruned hourly) and are scanned.
CREATE INDEX events_created ON events (created_at, id);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
