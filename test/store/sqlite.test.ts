import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
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

/**
 * SQLite-only: one store at a time delivers from a file (dispatch_owner, migration 009) and
 * keeps its claims' leases in memory. Rows are written by hand: the claim only needs a
 * delivery and its event (the other joins are LEFT JOINs).
 */
test('one store at a time delivers from a SQLite file; another takes over when it closes, dies or lapses', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-owner-'));
  const path = join(dir, 'h.db');
  const a = new SqliteStore(path);
  await a.migrate();
  const b = new SqliteStore(path);
  const stores = [a, b];
  try {
    a.db.pragma('foreign_keys = OFF');
    a.db.prepare(`INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at) VALUES ('evt_1', 'c', 'client.create', '{"object":{"id":"1"}}', NULL, NULL, 1)`).run();
    const insert = a.db.prepare(`INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
      VALUES (?, 'evt_1', 'sub_1', 'c', 'app_1', 'client.create', 'https://a.example/', 'pending', 0, 1, 1, 1)`);
    insert.run('dlv_1');
    insert.run('dlv_2');
    const row = (id: string) => b.db.prepare('SELECT status, lease_token, next_attempt_at FROM deliveries WHERE id = ?').get(id);

    const [first] = await a.claimDueDeliveries(1, 10, 60_000);
    assert.equal(first?.id, 'dlv_1');
    assert.deepEqual(row('dlv_1'), { status: 'pending', lease_token: null, next_attempt_at: 1 }, 'the lease is not written');
    assert.deepEqual((await a.claimDueDeliveries(10, 10, 60_000)).map((d) => d.id), ['dlv_2'], 'the holder looks past what it holds');
    assert.deepEqual(await b.claimDueDeliveries(10, 10, 60_000), [], 'the other store claims nothing while the first holds the file');

    await a.close();
    const taken = await b.claimDueDeliveries(10, 10, 100);
    assert.deepEqual(taken.map((d) => d.id).sort(), ['dlv_1', 'dlv_2'], 'once the holder closed, what it had not recorded is due again');
    await b.recordOutcomes([{ kind: 'dropped', id: 'dlv_1', lease: taken.find((d) => d.id === 'dlv_1')!.lease, reason: 'test', at: 20 }]);
    assert.equal((row('dlv_1') as { status: string }).status, 'dropped', 'the outcome of a lease held in memory is recorded');

    // A holder whose process is gone (a crash) is replaced at once, long before its row expires.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    b.db.prepare('UPDATE dispatch_owner SET owner = ?, pid = ?, expires_at = ?').run('crashed', dead, Date.now() + 3_600_000);
    const c = new SqliteStore(path);
    stores.push(c);
    assert.deepEqual((await c.claimDueDeliveries(10, 10, 60_000)).map((d) => d.id), ['dlv_2'], 'the row of a dead process is taken over');
    // b held the file until its 100 ms ran half out; now it finds c's row, alive and current.
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(await b.claimDueDeliveries(10, 10, 100), [], 'the store that lost the row stops claiming');

    // A live holder that stopped renewing (its row expired) is replaced too.
    c.db.prepare('UPDATE dispatch_owner SET owner = ?, pid = ?, expires_at = ?').run('stalled', process.pid, Date.now() - 1);
    assert.deepEqual(await b.claimDueDeliveries(10, 10, 100), [], 'an expired row is taken over; b still holds its own claim of dlv_2 (until 110)');
    assert.deepEqual((await b.claimDueDeliveries(10, 110, 100)).map((d) => d.id), ['dlv_2'], 'and claims it again once that lease ran out');
  } finally {
    for (const s of stores) await s.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
