-- Claims keep the configuration rows they read (subscriptions, apps, companies, grants,
-- users, roles) in memory between claims (SqliteStore, ClaimCache). Every change to those
-- tables, made by any process sharing the file and by any statement, counts up
-- config_version in the same transaction; a claim that reads another version than the one
-- its cache was filled at reads those rows again. Events are not here: a stored event never
-- changes. A later migration that rebuilds one of these tables (create, copy, drop, rename)
-- drops its triggers with it and must create them again.
CREATE TABLE IF NOT EXISTS config_version (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT OR IGNORE INTO config_version (id, version) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS subscriptions_insert_version AFTER INSERT ON subscriptions BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS subscriptions_update_version AFTER UPDATE ON subscriptions BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS subscriptions_delete_version AFTER DELETE ON subscriptions BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS apps_insert_version AFTER INSERT ON apps BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS apps_update_version AFTER UPDATE ON apps BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS apps_delete_version AFTER DELETE ON apps BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS companies_insert_version AFTER INSERT ON companies BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS companies_update_version AFTER UPDATE ON companies BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS companies_delete_version AFTER DELETE ON companies BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS grants_insert_version AFTER INSERT ON grants BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS grants_update_version AFTER UPDATE ON grants BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS grants_delete_version AFTER DELETE ON grants BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_insert_version AFTER INSERT ON users BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_update_version AFTER UPDATE ON users BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS users_delete_version AFTER DELETE ON users BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS roles_insert_version AFTER INSERT ON roles BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS roles_update_version AFTER UPDATE ON roles BEGIN UPDATE config_version SET version = version + 1; END;
CREATE TRIGGER IF NOT EXISTS roles_delete_version AFTER DELETE ON roles BEGIN UPDATE config_version SET version = version + 1; END;
