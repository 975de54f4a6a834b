import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeContract } from './contract.js';

const dirs = new Map<object, string>();

storeContract(
  'sqlite',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-store-'));
    const store = new SqliteStore(join(dir, 'h.db'));
    dirs.set(store, dir);
    return store;
  },
  async (store) => {
    await store.close();
    rmSync(dirs.get(store)!, { recursive: true, force: true });
  },
);
