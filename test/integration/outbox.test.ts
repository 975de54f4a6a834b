import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { verifySignedRequest } from '../../src/sdk/index.js';
import { freshPostgresUrl, type FreshPostgres } from '../support/postgres.js';
import { Receiver, signedRequestOf } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The transactional outbox: a host keeping its own data in the same PostgreSQL publishes
 * inside its own transaction, so its data and the notification commit or roll back together.
 */
describe('transactional publish (outbox) on PostgreSQL', () => {
  let db: FreshPostgres;
  let rx: Receiver;
  /** Polls once a minute: whatever it delivers quickly, the NOTIFY sent at the host's COMMIT woke it for. */
  let s: TestServer;
  let story: Story;
  let host: pg.Client;
  const count = async (text: string, params: unknown[]) => Number((await host.query(text, params)).rows[0].n);

  before(async () => {
    db = await freshPostgresUrl();
    rx = await Receiver.start();
    s = await startServer({ DATABASE_URL: db.url, HERALD_POLL_INTERVAL: '60s' });
    story = await seedStory(s, `${rx.url}/`);
    await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/hooks/outbox` });
    host = new pg.Client({ connectionString: db.url });
    await host.connect();
    await host.query('CREATE TABLE host_clients (id TEXT PRIMARY KEY, name TEXT NOT NULL)');
  });
  after(async () => {
    await host?.end();
    await s?.stop();
    await rx?.close();
    await db?.drop();
  });

  const created = (id: string, name: string) => ({ channel: 'client.create', company_id: story.companyId, object: { id, name } });

  test('ROLLBACK: no host row, no event, no delivery, nothing sent', async () => {
    await host.query('BEGIN');
    await host.query('INSERT INTO host_clients (id, name) VALUES ($1, $2)', ['c1', 'Rolled']);
    const r = await s.herald.publish(created('c1', 'Rolled'), { client: host });
    assert.deepEqual([r.duplicate, r.deliveries], [false, 1]);
    // Uncommitted: Herald's own connections see nothing, so no dispatcher can claim it.
    assert.deepEqual((await ok(s.admin('GET', `/admin/deliveries?event_id=${r.id}`), 200)).deliveries, []);
    await sleep(300);
    await host.query('ROLLBACK');
    assert.equal(await count('SELECT count(*) AS n FROM host_clients', []), 0);
    assert.equal(await count('SELECT count(*) AS n FROM events WHERE id = $1', [r.id]), 0);
    assert.equal(await count('SELECT count(*) AS n FROM deliveries WHERE event_id = $1', [r.id]), 0);
    await sleep(1000);
    assert.equal(rx.received.length, 0, 'nothing was sent');
  });

  test('COMMIT: the host row and the event commit together, and the delivery arrives and verifies', async () => {
    await host.query('BEGIN');
    await host.query('INSERT INTO host_clients (id, name) VALUES ($1, $2)', ['c2', 'Bob']);
    const r = await s.herald.publish(created('c2', 'Bob'), { client: host });
    assert.equal(r.deliveries, 1);
    await sleep(300);
    assert.equal(rx.received.length, 0, 'nothing is sent before the COMMIT');
    const committed = Date.now();
    await host.query('COMMIT');
    await rx.waitFor(1);
    assert.ok(Date.now() - committed < 5000, 'woken by the NOTIFY sent at COMMIT, not by the 60 s poll');
    const req = rx.received[0]!;
    assert.equal(req.path, '/hooks/outbox');
    const payload = verifySignedRequest(signedRequestOf(req.body), story.clientSecret, { maxAgeSeconds: 60 });
    assert.equal(payload.event_id, r.id);
    assert.deepEqual(payload.obj, { client: { id: 'c2', name: 'Bob' }, links: [] });
    const [d] = await waitForDeliveries(s, `event_id=${r.id}`, (ds) => ds[0]?.status === 'succeeded');
    assert.equal(req.headers['webhook-id'], d.id);
    assert.equal(await count('SELECT count(*) AS n FROM host_clients WHERE id = $1', ['c2']), 1);
  });

  test('an idempotency key works inside the host transaction too', async () => {
    await host.query('BEGIN');
    const event = { ...created('c3', 'Cy'), idempotency_key: 'outbox-once' };
    const first = await s.herald.publish(event, { client: host });
    const second = await s.herald.publish(event, { client: host });
    await host.query('COMMIT');
    assert.deepEqual(second, { id: first.id, duplicate: true, deliveries: 0 });
    assert.deepEqual(await s.herald.publish(event), { id: first.id, duplicate: true, deliveries: 0 });
    await rx.waitFor(2);
  });

  test('a client outside a transaction, or a Pool, is refused and nothing is stored', async () => {
    const before = await count('SELECT count(*) AS n FROM events', []);
    await assert.rejects(s.herald.publish(created('c4', 'No'), { client: host }), { code: 'VALIDATION_FAILED', message: /open transaction/ });
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      await assert.rejects(s.herald.publish(created('c4', 'No'), { client: pool }), { code: 'VALIDATION_FAILED' });
    } finally {
      await pool.end();
    }
    await assert.rejects(s.herald.publish(created('c4', 'No'), { client: {} as pg.Client }), { code: 'VALIDATION_FAILED' });
    assert.equal(await count('SELECT count(*) AS n FROM events', []), before);
  });

  test('a PoolClient from the host\'s own pool works the same way', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO host_clients (id, name) VALUES ($1, $2)', ['c5', 'Pooled']);
      const r = await s.herald.publish(created('c5', 'Pooled'), { client });
      await client.query('COMMIT');
      await waitForDeliveries(s, `event_id=${r.id}`, (ds) => ds[0]?.status === 'succeeded');
    } finally {
      client.release();
      await pool.end();
    }
  });
});

describe('transactional publish on SQLite', () => {
  let s: TestServer;
  let story: Story;
  before(async () => {
    s = await startServer();
    story = await seedStory(s, 'https://app.example.com/');
  });
  after(async () => s?.stop());

  test('is refused with a clear error: it needs PostgreSQL', async () => {
    const client = { query: async () => ({ rows: [] }) };
    await assert.rejects(
      s.herald.publish({ channel: 'client.create', company_id: story.companyId, object: { id: 'c1' } }, { client }),
      { code: 'VALIDATION_FAILED', message: /needs PostgreSQL/ },
    );
  });
});
