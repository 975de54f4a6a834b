import { ConfigError } from '../config.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/**
 * Opens the engine named by `DATABASE_URL`. Each engine's module (and its driver) is loaded
 * only when used: an idle Herald on SQLite without pg loaded was 90-91 MiB resident against
 * 91-94 (compiled; 117 against 121 MiB through tsx), three runs each of the bench's idle
 * scenario.
 */
export async function openStore(databaseUrl: string): Promise<Store> {
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw new ConfigError('DATABASE_URL: sqlite: needs a file path, e.g. sqlite:./data/herald.db');
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    return new SqliteStore(path);
  }
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return new PostgresStore(databaseUrl);
  }
  throw new ConfigError('DATABASE_URL: expected sqlite:<path> or postgres://…');
}
