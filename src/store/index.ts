import { ConfigError } from '../config.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/** Opens the engine named by `DATABASE_URL`. */
export function openStore(databaseUrl: string): Store {
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new ConfigError('DATABASE_URL: sqlite: needs a file path, e.g. sqlite:./data/herald.db');
    return new SqliteStore(path);
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) return new PostgresStore(databaseUrl);
  throw new ConfigError('DATABASE_URL: expected sqlite:<path> or postgres://…');
}
