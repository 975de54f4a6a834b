import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { newId } from '../../src/domain/ids.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ATTEMPTS_KEPT, ATTEMPTS_LOGGED_TWICE, storeContract } from './contract.js';

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
 * SQLite-only: one store at a time delivers from a file (DeliveryLock) and keeps its claims'
 * leases in memory. Rows are written by hand: the claim only needs a delivery and its event
 * (the other joins are LEFT JOINs).
 */
function seedDue(store: SqliteStore, ids: string[]): void {
  store.db.pragma('foreign_keys = OFF');
  store.db.prepare(`INSERT OR IGNORE INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at) VALUES ('evt_1', 'c', 'client.create', '{"object":{"id":"1"}}', NULL, NULL, 1)`).run();
  const insert = store.db.prepare(`INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
    VALUES (?, 'evt_1', 'sub_1', 'c', 'app_1', 'client.create', 'https://a.example/', 'pending', 0, 1, 1, 1)`);
  for (const id of ids) insert.run(id);
  store.db.pragma('foreign_keys = ON');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two stores on one fresh file (two processes sharing it), migrated by `a`; `dispose` closes both and removes the file. */
async function twoStores(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = join(dir, 'h.db');
  const a = new SqliteStore(path);
  await a.migrate();
  const b = new SqliteStore(path);
  const dispose = async () => {
    await a.close().catch(() => undefined); // a test may have closed it already
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { path, a, b, dispose };
}

test('one store at a time delivers from a SQLite file; its leases stay in memory; the next takes over when it closes', async () => {
  const { a, b, dispose } = await twoStores('herald-lock-');
  try {
    seedDue(a, ['dlv_1', 'dlv_2', 'dlv_3']);
    const row = (id: string) => b.db.prepare('SELECT status, attempts, lease_token, next_attempt_at FROM deliveries WHERE id = ?').get(id);

    const [first] = await a.claimDueDeliveries(1, 10, 1000);
    assert.equal(first?.id, 'dlv_1');
    assert.deepEqual(row('dlv_1'), { status: 'pending', attempts: 0, lease_token: null, next_attempt_at: 1 }, 'the lease is not written');
    assert.deepEqual(await b.claimDueDeliveries(10, 10, 1000), [], 'the other store claims nothing, though two are free');
    assert.deepEqual((await a.claimDueDeliveries(1, 10, 1000)).map((d) => d.id), ['dlv_2'], 'the holder looks past what it holds');

    // A lease that ran out: the delivery may be claimed again, and until then the late
    // outcome of that lease still counts (as a written lease would, until replaced).
    await a.recordOutcomes([{ kind: 'retry', id: 'dlv_1', lease: first!.lease, attempt: { delivery_id: 'dlv_1', attempt: 1, started_at: 1500, duration_ms: 5, status_code: 500, error: 'receiver answered 500', response_excerpt: null }, next_attempt_at: 1600 }]);
    assert.deepEqual(row('dlv_1'), { status: 'pending', attempts: 1, lease_token: null, next_attempt_at: 1600 }, 'a late outcome of an expired lease is recorded');
    const again = await a.claimDueDeliveries(10, 1700, 1000);
    assert.deepEqual(again.map((d) => d.id).sort(), ['dlv_1', 'dlv_2', 'dlv_3'], 'expired leases (dlv_2) and due retries come back');
    const stale = { kind: 'succeeded' as const, id: 'dlv_2', lease: 'an-old-lease', attempt: { delivery_id: 'dlv_2', attempt: 1, started_at: 1700, duration_ms: 5, status_code: 200, error: null, response_excerpt: null } };
    await a.recordOutcomes([stale]);
    assert.equal((row('dlv_2') as { status: string }).status, 'pending', 'an outcome under a lease not held changes nothing');

    await a.close();
    assert.deepEqual(await b.claimDueDeliveries(10, 1700, 1000), [], 'b tried less than a second ago');
    await sleep(1100);
    const taken = await b.claimDueDeliveries(10, 1700, 1000);
    assert.deepEqual(taken.map((d) => d.id).sort(), ['dlv_1', 'dlv_2', 'dlv_3'], 'once the holder closed, what it had not recorded is due again');
    const d1 = taken.find((d) => d.id === 'dlv_1')!;
    await b.recordOutcomes([{ kind: 'dropped', id: 'dlv_1', lease: d1.lease, reason: 'test', at: 1800 }]);
    assert.equal((row('dlv_1') as { status: string }).status, 'dropped', 'the new holder records');
  } finally {
    await dispose();
  }
});

test('a holder that dies (SIGKILL) frees the SQLite file for another process at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-lock-'));
  const path = join(dir, 'h.db');
  const store = new SqliteStore(path);
  await store.migrate();
  seedDue(store, ['dlv_1']);
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    import { SqliteStore } from ${JSON.stringify(new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url).href)};
    const s = new SqliteStore(${JSON.stringify(path)});
    const claimed = await s.claimDueDeliveries(10, 10, 60000);
    console.log('claimed ' + claimed.map((d) => d.id).join(','));
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
    });
    assert.equal(line, 'claimed dlv_1', 'the child holds the file and claimed the delivery');
    assert.deepEqual(await store.claimDueDeliveries(10, 10, 60000), [], 'not while the child runs');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await sleep(1100);
    assert.deepEqual((await store.claimDueDeliveries(10, 10, 60000)).map((d) => d.id), ['dlv_1'], 'its lease died with it');
  } finally {
    child.kill('SIGKILL');
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const T0 = 1_700_000_000_000;

/** A company, its admin role and user, an app (client secret `s1`) with a grant, and one subscription to client.create. */
async function seedAudience(store: SqliteStore) {
  const companyId = newId('co');
  await store.createCompany({ id: companyId, name: 'Acme', sub_domain: 'acme', created_at: T0 });
  await store.putRole({ company_id: companyId, name: 'admin', permissions: { clients: ['create'] } });
  const userId = newId('usr');
  await store.createUser({ id: userId, company_id: companyId, email: 'a@acme.test', name: 'A', role: 'admin', created_at: T0, updated_at: T0 }, null);
  const appId = newId('app');
  await store.createApp({ id: appId, name: 'App', url: 'https://app.example.com/', redirect_uris: [], signature: 'signed_request', client_id: newId('app'), client_secret: 's1', signing_secret: 'whsec_x', public_client: false, created_at: T0 });
  const grantId = newId('grt');
  await store.createGrant({ id: grantId, app_id: appId, user_id: userId, company_id: companyId, scope: 'api/subs clients', created_at: T0, revoked_at: null }, { hash: 'h1', grant_id: grantId, expires_at: T0 + 3600_000, created_at: T0 });
  await store.createSubscription({ id: newId('sub'), grant_id: grantId, app_id: appId, user_id: userId, company_id: companyId, channels: ['client.create'], callback_url: 'https://app.example.com/h', resource: null, headers: {}, content_type: 'form', created_at: T0, updated_at: T0 });
  const event = () => ({ id: newId('evt'), company_id: companyId, channel: 'client.create', object: { id: 'o1' }, links: [], resources: {}, user_id: null, idempotency_key: null });
  return { companyId, appId, event };
}

test('a publish\'s deliveries are claimed only once the WAL sync that answers it has finished', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sync-'));
  const store = new SqliteStore(join(dir, 'h.db'));
  try {
    await store.migrate();
    const { event } = await seedAudience(store);
    const first = await store.publishEvent(event(), T0);
    const second = store.publishEvent(event(), T0 + 10);
    // The group commit runs on the setImmediate that publishEvent scheduled, before this one;
    // the answer of its fdatasync comes in a later phase of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    const pending = store.db.prepare("SELECT event_id FROM deliveries WHERE status = 'pending' ORDER BY next_attempt_at").pluck().all();
    assert.equal(pending.length, 2, 'the second publish is committed');
    const during = await store.claimDueDeliveries(10, T0 + 20, 10_000);
    assert.deepEqual(during.map((d) => d.event.id), [first.id], 'while its sync runs, only the deliveries already on disk are claimed');
    const { id } = await second;
    const after = await store.claimDueDeliveries(10, T0 + 20, 10_000);
    assert.deepEqual(after.map((d) => d.event.id), [id], 'once the publish is answered, its deliveries are claimed');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('claims start after the deliveries they hold, and see a delivery another process made due ahead of them (data_version)', async () => {
  const { path, a, b, dispose } = await twoStores('herald-cursor-');
  try {
    const { event } = await seedAudience(a);
    const published: string[] = [];
    for (let i = 0; i < 4; i++) published.push((await a.publishEvent(event(), T0 + 10 + i)).id);
    const first = await a.claimDueDeliveries(2, T0 + 100, 60_000);
    assert.deepEqual(first.map((d) => d.event.id).sort(), published.slice(0, 2).sort());
    // Another connection (a process that publishes, or an operator) puts a delivery back in
    // line ahead of the ones held: the next claim must not start after them.
    const other = new Database(path);
    other.prepare("UPDATE deliveries SET next_attempt_at = ? WHERE event_id = ?").run(T0 + 1, published[3]);
    other.close();
    const next = await a.claimDueDeliveries(1, T0 + 100, 60_000);
    assert.deepEqual(next.map((d) => d.event.id), [published[3]], 'the earliest due that is not held');
    const last = await a.claimDueDeliveries(5, T0 + 100, 60_000);
    assert.deepEqual(last.map((d) => d.event.id), [published[2]]);
    assert.equal(b.db.prepare("SELECT count(*) FROM deliveries WHERE status = 'pending'").pluck().get(), 4, 'all still pending: held in memory');
  } finally {
    await dispose();
  }
});

test('claims keep the rows they read between claims, and see what another process changed since (migration 010)', async () => {
  const { path, a, b, dispose } = await twoStores('herald-cache-');
  try {
    const { companyId, appId, event } = await seedAudience(a);
    const claimOne = async (now: number) => {
      const { id } = await a.publishEvent(event(), now);
      const [d] = await a.claimDueDeliveries(10, now + 1, 10_000);
      assert.equal(d?.event.id, id);
      await a.recordOutcomes([{ kind: 'dropped', id: d!.id, lease: d!.lease, reason: 'test', at: now + 1 }]);
      return d!;
    };
    const first = await claimOne(T0);
    assert.deepEqual([first.app?.client_secret, first.role?.permissions, first.company?.name, first.grant?.revoked_at], ['s1', { clients: ['create'] }, 'Acme', null]);
    // Another process changes the app's secret and the role; a hand-run statement renames the company.
    await b.rotateAppSecret(appId, 'client', 's2', T0 + 3600_000, T0 + 2);
    await b.putRole({ company_id: companyId, name: 'admin', permissions: { clients: ['create', 'read'] } });
    const raw = new Database(path);
    raw.prepare("UPDATE companies SET name = 'Acme Renamed' WHERE id = ?").run(companyId);
    raw.close();
    const second = await claimOne(T0 + 2);
    assert.deepEqual([second.app?.client_secret, second.previousSecrets, second.role?.permissions, second.company?.name], ['s2', ['s1'], { clients: ['create', 'read'] }, 'Acme Renamed']);
    // Without its version row (deleted by hand) nothing is kept: a change is still seen.
    const raw2 = new Database(path);
    raw2.exec('DELETE FROM config_version');
    raw2.close();
    await claimOne(T0 + 4);
    const bare = new Database(path);
    bare.exec("DROP TRIGGER roles_update_version; UPDATE roles SET permissions = '{\"clients\":[\"read\"]}'");
    bare.close();
    const third = await claimOne(T0 + 6);
    assert.deepEqual(third.role?.permissions, { clients: ['read'] });
  } finally {
    await dispose();
  }
});

test('SQLite migration 009: duplicate attempts already logged are removed (the first kept), and the same attempt is not logged again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-store-'));
  const path = join(dir, 'herald.db');
  try {
    const store = new SqliteStore(path);
    await store.migrate();
    await store.close();
    // Back to the schema of migration 008, with an attempt logged twice and two attempts
    // numbered 1 that started at different times (two holders): all three as before.
    const db = new Database(path);
    db.exec(`BEGIN;
      DROP INDEX delivery_attempts_once;
      CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
      DELETE FROM schema_migrations WHERE version >= '009';
      ${ATTEMPTS_LOGGED_TWICE};
      COMMIT`);
    db.close();
    const again = new SqliteStore(path);
    await again.migrate();
    assert.deepEqual((await again.listAttempts('dlv_a')).map((a) => [a.started_at, a.response_excerpt]), ATTEMPTS_KEPT);
    await again.close();
    const check = new Database(path, { readonly: true });
    const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'delivery_attempts' ORDER BY name").pluck().all();
    check.close();
    assert.deepEqual(indexes, ['delivery_attempts_once']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('WAL checkpoints run on a thread of their own: the last commits reach the database file with no commit of the store\'s to checkpoint them, and the WAL stays bounded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-checkpoint-'));
  const path = join(dir, 'h.db');
  const store = new SqliteStore(path);
  try {
    await store.migrate();
    store.db.exec('CREATE TABLE filler (n INTEGER, v TEXT)');
    const insert = store.db.prepare('INSERT INTO filler (n, v) VALUES (?, ?)');
    // 2,000 commits of 12 KiB, about 6,000 pages. The store's own automatic checkpoint runs
    // only in a commit that takes the WAL past 1,000 pages, so the rows committed after the
    // last such commit reach the database file only if the thread copies them.
    let largestWal = 0;
    for (let i = 0; i < 2000; i++) {
      store.writeRelaxed(() => {
        for (let j = 0; j < 3; j++) insert.run(i, 'x'.repeat(4000));
      });
      if (i % 20 === 19) {
        largestWal = Math.max(largestWal, statSync(`${path}-wal`).size);
        await sleep(20);
      }
    }
    const written = 2000 * 3 * 4000;
    assert.ok(largestWal < written / 2, `the WAL reached ${largestWal} bytes for ${written} written: it was not started over`);
    // The database file alone, without its WAL, holds every row once a checkpoint has copied them.
    const copy = join(dir, 'copy.db');
    let rows = 0;
    for (let waited = 0; waited < 5000 && rows < 6000; waited += 50) {
      await sleep(50);
      copyFileSync(path, copy);
      try {
        const db = new Database(copy, { readonly: true });
        rows = (db.prepare('SELECT count(*) AS n FROM filler').get() as { n: number }).n;
        db.close();
      } catch {
        // copied while a checkpoint was writing it: look again
      }
    }
    assert.equal(rows, 6000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
