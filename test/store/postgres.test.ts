import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { newId } from '../../src/domain/ids.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { FAN_OUT_CHUNK } from '../../src/store/rows.js';
import type { Store } from '../../src/store/types.js';
import { freshPostgresUrl, type FreshPostgres } from '../support/postgres.js';
import { ATTEMPTS_KEPT, ATTEMPTS_LOGGED_TWICE, storeContract } from './contract.js';

const databases = new Map<object, FreshPostgres>();

storeContract(
  'postgres',
  async () => {
    const db = await freshPostgresUrl();
    const store = new PostgresStore(db.url);
    databases.set(store, db);
    return store;
  },
  async (store) => {
    await store.close();
    await databases.get(store)!.drop();
  },
);

/** A company, user, app, grant and one subscription on `channels`; returns an event factory. */
async function seed(store: Store, channels: string[]) {
  const co = newId('co');
  await store.createCompany({ id: co, name: 'L', sub_domain: `l-${co.slice(-8).toLowerCase()}`, created_at: 1 });
  await store.putRole({ company_id: co, name: 'admin', permissions: {} });
  const usr = newId('usr');
  await store.createUser({ id: usr, company_id: co, email: 'l@l.test', name: 'L', role: 'admin', created_at: 1, updated_at: 1 }, null);
  const app = newId('app');
  await store.createApp({
    id: app, name: 'A', url: 'https://a.example/', redirect_uris: [], signature: 'signed_request', client_id: newId('app'),
    client_secret: 's', signing_secret: 'whsec_x', public_client: false, created_at: 1,
  });
  const grt = newId('grt');
  await store.createGrant(
    { id: grt, app_id: app, user_id: usr, company_id: co, scope: 'clients', created_at: 1, revoked_at: null },
    { hash: `h-${grt}`, grant_id: grt, expires_at: 2, created_at: 1 },
  );
  const sub = newId('sub');
  await store.createSubscription({
    id: sub, grant_id: grt, app_id: app, user_id: usr, company_id: co, channels,
    callback_url: 'https://a.example/h', resource: null, headers: {}, content_type: 'form', created_at: 1, updated_at: 1,
  });
  const event = (channel = channels[0]!) => ({
    id: newId('evt'), company_id: co, channel, object: { id: 'c1' }, links: [], resources: {}, user_id: null, idempotency_key: null,
  });
  return { sub, event, owner: { co, usr, app, grt } };
}

describe('PostgreSQL engine specifics', () => {
  let db: FreshPostgres;
  let store: PostgresStore;
  before(async () => {
    db = await freshPostgresUrl();
    store = new PostgresStore(db.url);
  });
  after(async () => {
    await store.close();
    await db.drop();
  });

  test('several processes may migrate a fresh database at once', async () => {
    const others = Array.from({ length: 4 }, () => new PostgresStore(db.url));
    try {
      await Promise.all([store.migrate(), ...others.map((s) => s.migrate())]);
    } finally {
      await Promise.all(others.map((s) => s.close()));
    }
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query('SELECT version FROM schema_migrations ORDER BY version');
    const index = await client.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'delivery_queue_due'");
    await client.end();
    assert.equal(rows[0].version, '001_init');
    assert.equal(new Set(rows.map((r) => r.version)).size, rows.length);
    assert.match(String(index.rows[0]?.indexdef), /ON public\.delivery_queue USING btree \(next_attempt_at\)$/);
  });

  test('a NUL byte in a lookup key or a response excerpt does not fail the statement', async () => {
    assert.equal(await store.getCompany('co_\u0000'), null);
    assert.equal(await store.findAccessToken('\u0000'), null);
    const { event } = await seed(store, ['client.create']);
    await store.publishEvent(event(), 10);
    const [d] = await store.claimDueDeliveries(10, 10, 1000);
    const attempt = { delivery_id: d!.id, attempt: 1, started_at: 10, duration_ms: 1, status_code: 200, error: null, response_excerpt: 'a\u0000b' };
    await store.recordOutcomes([{ kind: 'succeeded', id: d!.id, lease: d!.lease, attempt }]);
    assert.equal((await store.getDelivery(d!.id))?.status, 'succeeded');
    assert.deepEqual((await store.listAttempts(d!.id)).map((a) => a.response_excerpt), ['a\uFFFDb']);
  });

  test('a batch is applied in order: a 410 drops its siblings queued behind it, as on SQLite', async () => {
    const { sub, event } = await seed(store, ['client.update']);
    for (let i = 0; i < 3; i++) await store.publishEvent(event(), 20);
    const claimed = await store.claimDueDeliveries(10, 20, 1000);
    assert.equal(claimed.length, 3);
    const [a, b, c] = claimed as [typeof claimed[0], typeof claimed[0], typeof claimed[0]];
    const att = (id: string, code: number) => ({ delivery_id: id, attempt: 1, started_at: 20, duration_ms: 1, status_code: code, error: null, response_excerpt: null });
    await store.recordOutcomes([
      { kind: 'succeeded', id: a.id, lease: a.lease, attempt: att(a.id, 200) },
      { kind: 'gone', id: b.id, lease: b.lease, attempt: att(b.id, 410), subscription_id: sub },
      { kind: 'succeeded', id: c.id, lease: c.lease, attempt: att(c.id, 200) },
    ]);
    const status = async (id: string) => (await store.getDelivery(id))?.status;
    assert.deepEqual([await status(a.id), await status(b.id), await status(c.id)], ['succeeded', 'failed', 'dropped']);
    assert.equal((await store.listAttempts(c.id)).length, 1, 'the attempt is logged all the same');
  });

  test('recordAndClaim records a batch of outcomes and claims in one statement; a 410 Gone goes first on its own', async () => {
    const { sub, event } = await seed(store, ['client.archive']);
    for (let i = 0; i < 6; i++) await store.publishEvent(event(), 30 + i);
    const first = await store.claimDueDeliveries(4, 40, 1000);
    assert.equal(first.length, 4);
    const [a, b, c, d] = first as [typeof first[0], typeof first[0], typeof first[0], typeof first[0]];
    const att = (id: string, code: number) => ({ delivery_id: id, attempt: 1, started_at: 40, duration_ms: 1, status_code: code, error: null, response_excerpt: null });
    const room = { perOrigin: 10, inFlight: new Map<string, number>() };
    const next = await store.recordAndClaim!([
      { kind: 'succeeded', id: a.id, lease: a.lease, attempt: att(a.id, 200) },
      { kind: 'retry', id: b.id, lease: b.lease, attempt: att(b.id, 500), next_attempt_at: 5000 },
      { kind: 'failed', id: c.id, lease: c.lease, attempt: att(c.id, 400) },
      { kind: 'dropped', id: d.id, lease: 'not-its-lease', reason: 'stale', at: 41 },
    ], 10, 50, 1000, room);
    assert.deepEqual(next.map((x) => x.id).sort(), (await store.listDeliveries({ status: 'pending', limit: 10 }))
      .filter((x) => ![b.id, d.id].includes(x.id)).map((x) => x.id).sort(), 'the two never claimed, nothing else');
    assert.equal(next.length, 2);
    const status = async (id: string) => {
      const x = await store.getDelivery(id);
      return [x?.status, x?.attempts, x?.next_attempt_at];
    };
    assert.deepEqual(await status(a.id), ['succeeded', 1, null]);
    assert.deepEqual(await status(b.id), ['pending', 1, 5000]);
    assert.deepEqual(await status(c.id), ['failed', 1, null]);
    assert.deepEqual(await status(d.id), ['pending', 0, 30 + first.findIndex((x) => x.id === d.id)], 'a stale lease changes nothing');
    assert.equal((await store.listAttempts(a.id)).length, 1);
    assert.equal(await store.nextDueAt(), 1040, 'd, still leased by the first claim');

    const [e] = next as [typeof next[0]];
    const after = await store.recordAndClaim!([{ kind: 'gone', id: e.id, lease: e.lease, attempt: att(e.id, 410), subscription_id: sub }], 10, 60, 1000, room);
    assert.deepEqual(after, [], 'the subscription is gone, and with it what was still pending');
    assert.equal((await store.getDelivery(e.id))?.status, 'failed');
    assert.equal((await store.getDelivery(b.id))?.status, 'dropped');
  });

  test('recordAndClaim records in the walk past a blocked head of the queue too', async () => {
    const { event } = await seed(store, ['client.restore']);
    for (let i = 0; i < 3; i++) await store.publishEvent(event(), 70 + i);
    const [held] = await store.claimDueDeliveries(1, 80, 1000);
    const origin = 'https://a.example/';
    // The window holds only deliveries to an origin without room: the claim walks past it,
    // and the claims of the next second start with the walk (ClaimState.walkUntil).
    assert.deepEqual(await store.claimDueDeliveries(1, 80, 1000, { perOrigin: 1, inFlight: new Map([[origin, 1]]) }), []);
    const attempt = { delivery_id: held!.id, attempt: 1, started_at: 81, duration_ms: 1, status_code: 200, error: null, response_excerpt: null };
    const next = await store.recordAndClaim!([{ kind: 'succeeded', id: held!.id, lease: held!.lease, attempt }], 10, 90, 1000, { perOrigin: 10, inFlight: new Map() });
    assert.equal(next.length, 2);
    assert.equal((await store.getDelivery(held!.id))?.status, 'succeeded');
  });

  test('listen: a publish wakes the listener, and a lost connection reconnects and wakes it again', async () => {
    let woken = 0;
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (woken < n) {
        if (Date.now() > deadline) throw new Error(`woken ${woken} times, expected ${n}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const fanOut: boolean[] = [];
    const stop = await store.listen((f) => {
      woken++;
      fanOut.push(f);
    });
    assert.equal(woken, 1, 'once on connect');
    assert.equal(fanOut[0], true, 'on connect a fan-out may have been announced while away');
    const { event } = await seed(store, ['client.create']);
    await store.publishEvent(event(), 1);
    await waitFor(2);
    assert.equal(fanOut[1], false, 'an ordinary publish');

    const killer = new pg.Client({ connectionString: db.url });
    await killer.connect();
    const killed = await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'");
    await killer.end();
    assert.equal(killed.rowCount, 1);
    await waitFor(3);
    await store.publishEvent(event(), 2);
    await waitFor(4);
    await stop();
  });

  test('listen: a publish that leaves part of its fan-out says so, on Herald\'s pool and in a host\'s transaction', async () => {
    const { event, owner } = await seed(store, ['client.merge']);
    for (let i = 0; i < FAN_OUT_CHUNK; i++) {
      await store.createSubscription({
        id: newId('sub'), grant_id: owner.grt, app_id: owner.app, user_id: owner.usr, company_id: owner.co, channels: ['client.merge'],
        callback_url: 'https://a.example/h', resource: null, headers: {}, content_type: 'form', created_at: 1, updated_at: 1,
      });
    }
    const hints: boolean[] = [];
    const stop = await store.listen((f) => hints.push(f));
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (hints.length < n) {
        if (Date.now() > deadline) throw new Error(`${hints.length} hints, expected ${n}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitFor(1); // on connect
    assert.equal((await store.publishEvent(event(), 5)).deliveries, FAN_OUT_CHUNK);
    await waitFor(2);
    assert.equal(hints[1], true);
    const host = new pg.Client({ connectionString: db.url });
    await host.connect();
    try {
      await host.query('BEGIN');
      await store.publishEvent(event(), 6, { client: host });
      await host.query('COMMIT');
    } finally {
      await host.end();
    }
    await waitFor(3);
    assert.equal(hints[2], true);
    await stop();
    while (await store.expandFanOut(7)); // leaves nothing to queue for the tests after
  });

  test('two processes expanding fan-outs at once queue each subscription of each event once', async () => {
    const { event, owner } = await seed(store, ['client.split']);
    const audience = 6 * FAN_OUT_CHUNK + 17; // with seed's own subscription
    for (let i = 1; i < audience; i++) {
      await store.createSubscription({
        id: newId('sub'), grant_id: owner.grt, app_id: owner.app, user_id: owner.usr, company_id: owner.co, channels: ['client.split'],
        callback_url: 'https://a.example/h', resource: null, headers: {}, content_type: 'form', created_at: 1, updated_at: 1,
      });
    }
    const events = [event(), event(), event()];
    for (const e of events) assert.equal((await store.publishEvent(e, 40)).deliveries, FAN_OUT_CHUNK);
    const other = new PostgresStore(db.url);
    try {
      const chunks = [0, 0];
      const expandAll = async (s: Store, who: number) => {
        while (await s.expandFanOut(41)) chunks[who]!++;
      };
      await Promise.all([expandAll(store, 0), expandAll(other, 1), expandAll(store, 0), expandAll(other, 1)]);
      // Each event: 6 full chunks after the publish's and one of 17 (the last full one left a row that queued nothing).
      assert.equal(chunks[0]! + chunks[1]!, events.length * 6, `chunks by process: ${chunks.join(', ')}`);
      const check = new pg.Client({ connectionString: db.url });
      await check.connect();
      try {
        const { rows } = await check.query(
          'SELECT event_id, count(*)::int AS n, count(DISTINCT subscription_id)::int AS subs FROM deliveries WHERE event_id = ANY($1) GROUP BY event_id',
          [events.map((e) => e.id)],
        );
        assert.deepEqual(rows.map((r) => [r.n, r.subs]), events.map(() => [audience, audience]));
        assert.equal((await check.query('SELECT count(*)::int AS n FROM fanouts')).rows[0].n, 0);
      } finally {
        await check.end();
      }
    } finally {
      await other.close();
    }
    const claimed = await store.claimDueDeliveries(5000, 41, 1000);
    await store.recordOutcomes(claimed.map((c) => ({ kind: 'dropped' as const, id: c.id, lease: c.lease, reason: 'test', at: 41 })));
  });

  test('prune skips rows another transaction holds instead of waiting for them', async () => {
    const { event } = await seed(store, ['client.delete']);
    const { id: eventId } = await store.publishEvent(event(), 30);
    const [d] = await store.claimDueDeliveries(10, 30, 1000);
    const att = { delivery_id: d!.id, attempt: 1, started_at: 30, duration_ms: 1, status_code: 200, error: null, response_excerpt: null };
    await store.recordOutcomes([{ kind: 'succeeded', id: d!.id, lease: d!.lease, attempt: att }]);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE', [d!.id]);
      await store.prune(1000, 10); // would hang here on a plain row lock
      assert.equal((await store.getDelivery(d!.id))?.status, 'succeeded', 'skipped while locked');
      assert.equal((await store.listDeliveries({ event_id: eventId, limit: 10 })).length, 1);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    assert.ok((await store.prune(1000, 10)) >= 3, 'the event, its delivery and its attempt');
    assert.equal(await store.getDelivery(d!.id), null);
  });
});

/** A migrated store on a fresh database, a plain client connected to it, and `dispose` for all three. */
async function migratedDatabase() {
  const db = await freshPostgresUrl();
  const store = new PostgresStore(db.url);
  const client = new pg.Client({ connectionString: db.url });
  const dispose = async () => {
    await client.end();
    await store.close();
    await db.drop();
  };
  try {
    await store.migrate();
    await client.connect();
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
  return { store, client, dispose };
}

describe('PostgreSQL migration 009: the queue apart from the history', () => {
  test('pending deliveries of an older database move to the queue, a lease held while migrating included', async () => {
    const { store, client, dispose } = await migratedDatabase();
    try {
      const { event } = await seed(store, ['client.create']);
      for (let i = 0; i < 3; i++) await store.publishEvent(event(), 100 + i);
      const [held] = await store.claimDueDeliveries(1, 200, 60_000);
      const [done] = await store.claimDueDeliveries(1, 200, 60_000);
      const attempt = (id: string, at: number) => ({ delivery_id: id, attempt: 1, started_at: at, duration_ms: 1, status_code: 200, error: null, response_excerpt: null });
      await store.recordOutcomes([{ kind: 'succeeded', id: done!.id, lease: done!.lease, attempt: attempt(done!.id, 210) }]);

      // Back to the schema and rows of migration 008: the queue's state on `deliveries`.
      await client.query(`BEGIN;
        UPDATE deliveries d SET next_attempt_at = q.next_attempt_at, lease_token = q.lease_token FROM delivery_queue q WHERE q.id = d.id;
        DROP TABLE delivery_queue;
        CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
        CREATE INDEX deliveries_due_origin ON deliveries (origin, next_attempt_at) WHERE status = 'pending';
        DELETE FROM schema_migrations WHERE version >= '009';
        COMMIT`);

      await store.migrate();
      const queued = await client.query('SELECT id, origin, next_attempt_at, lease_token FROM delivery_queue ORDER BY next_attempt_at');
      assert.equal(queued.rows.length, 2, 'the two pending deliveries, not the succeeded one');
      assert.deepEqual(queued.rows.map((r) => r.origin), ['https://a.example/', 'https://a.example/']);
      assert.equal((await client.query("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname LIKE 'deliveries_due%'")).rows[0].n, 0);

      // The lease taken before the migration still records its outcome; the other is claimable.
      const [next] = await store.claimDueDeliveries(10, 300, 60_000);
      assert.notEqual(next!.id, held!.id);
      assert.deepEqual(await store.claimDueDeliveries(10, 300, 60_000), [], 'the held lease is not claimable before it expires');
      await store.recordOutcomes([
        { kind: 'succeeded', id: held!.id, lease: held!.lease, attempt: attempt(held!.id, 310) },
        { kind: 'succeeded', id: next!.id, lease: next!.lease, attempt: attempt(next!.id, 311) },
      ]);
      assert.deepEqual([(await store.getDelivery(held!.id))?.status, (await store.getDelivery(next!.id))?.status], ['succeeded', 'succeeded']);
      assert.equal((await client.query('SELECT count(*)::int AS n FROM delivery_queue')).rows[0].n, 0);
      assert.equal(await store.nextDueAt(), null);
    } finally {
      await dispose();
    }
  });
});

describe('PostgreSQL migration 011: each attempt logged once', () => {
  test('duplicate attempts already logged are removed (the first kept), and the same attempt is not logged again', async () => {
    const { store, client, dispose } = await migratedDatabase();
    try {
      // Back to the schema of migration 010, with an attempt logged twice and two attempts
      // numbered 1 that started at different times (two holders): all three as before.
      await client.query(`BEGIN;
        DROP INDEX delivery_attempts_once;
        CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
        DELETE FROM schema_migrations WHERE version >= '011';
        ${ATTEMPTS_LOGGED_TWICE};
        COMMIT`);
      await store.migrate();
      assert.deepEqual((await store.listAttempts('dlv_a')).map((a) => [a.started_at, a.response_excerpt]), ATTEMPTS_KEPT);
      const indexes = await client.query("SELECT indexname FROM pg_indexes WHERE tablename = 'delivery_attempts' ORDER BY indexname");
      assert.deepEqual(indexes.rows.map((r) => r.indexname), ['delivery_attempts_once']);
    } finally {
      await dispose();
    }
  });
});
