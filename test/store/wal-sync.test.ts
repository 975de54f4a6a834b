import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { WalSync } from '../../src/store/sqlite/wal-sync.js';

test('WalSync: syncs the WAL of commits made with synchronous=NORMAL, many at once, and close waits for them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-walsync-'));
  try {
    const db = new Database(join(dir, 'x.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (v TEXT)');
    const wal = new WalSync(join(dir, 'x.db-wal'));
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const syncs = Array.from({ length: 20 }, (_, i) => {
      insert.run(`row ${i}`);
      return wal.sync();
    });
    const closed = wal.close(); // waits for the twenty under way
    await Promise.all(syncs);
    await closed;
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 20);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('WalSync: a WAL file that cannot be opened fails the sync (the publish is answered as failed), it does not throw', async () => {
  const wal = new WalSync(join(tmpdir(), 'herald-no-such-dir', 'x.db-wal'));
  await assert.rejects(wal.sync(), /ENOENT/);
  await wal.close();
});
