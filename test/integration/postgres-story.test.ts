import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { newId } from '../../src/domain/ids.js';
import { verifySignedRequest } from '../../src/sdk/index.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { freshPostgresUrl, type FreshPostgres } from '../support/postgres.js';
import { Receiver, signedRequestOf } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

async function count(url: string, text: string, params: unknown[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query(text, params)).rows[0].n);
  } finally {
    await client.end();
  }
}

describe('the story on PostgreSQL: two Herald instances sharing one database', () => {
  let db: FreshPostgres;
  let rx: Receiver;
  /** Serves the API only: it publishes, never delivers. */
  let api: TestServer;
  /** Delivers, polling only once a minute: anything it sends quickly, a NOTIFY woke it for. */
  let worker: TestServer;
  let story: Story;

  before(async () => {
    db = await freshPostgresUrl();
    rx = await Receiver.start();
    // Started together: both migrate the fresh database at once.
    [api, worker] = await Promise.all([
      startServer({ DATABASE_URL: db.url }, { herald: { worker: false } }),
      startServer({ DATABASE_URL: db.url, HERALD_POLL_INTERVAL: '60s' }),
    ]);
    story = await seedStory(api, `${rx.url}/`);
  });
  after(async () => {
    await api?.stop();
    await worker?.stop();
    await rx?.close();
    await db?.drop();
  });

  test('subscribe, publish on one process, receive from the other at once, verify', async () => {
    const subId = await subscribe(api, story.token, { channel: 'client.create', callback_url: `${rx.url}/hooks/pg` });
    const sent = Date.now();
    const eventId = await publishEvent(api, {
      channel: 'client.create', company_id: story.companyId, object: { id: 'c1', name: 'Bob' }, user_id: 'someone',
    });
    await rx.waitFor(1);
    assert.ok(Date.now() - sent < 5000, 'woken by NOTIFY, not by the 60 s poll');
    const req = rx.received[0]!;
    assert.equal(req.path, '/hooks/pg');
    const payload = verifySignedRequest(signedRequestOf(req.body), story.clientSecret, { maxAgeSeconds: 60 });
    assert.deepEqual(payload.obj, { client: { id: 'c1', name: 'Bob' }, links: [] });
    assert.equal(payload.event_id, eventId);
    assert.equal(payload.sub_id, subId);
    assert.equal(payload.company_id, story.companyId);
    assert.equal(payload.actor_id, 'someone');
    const [d] = await waitForDeliveries(api, `event_id=${eventId}`, (ds) => ds[0]?.status === 'succeeded');
    assert.equal(req.headers['webhook-id'], d.id);
    assert.equal(d.attempts, 1);
    await ok(api.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('200 concurrent publishes with one idempotency key, over both processes, store one event', async () => {
    const subId = await subscribe(api, story.token, { channel: 'client.delete', callback_url: `${rx.url}/hooks/idem` });
    const event = { channel: 'client.delete', company_id: story.companyId, object: { id: 'c9' }, idempotency_key: 'same-key' };
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? api : worker).admin('POST', '/admin/events', event)));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [202]);
    const ids = new Set(answers.map((a) => a.body.id));
    assert.equal(ids.size, 1, 'every answer names the first event');
    const [eventId] = ids;
    assert.equal(await count(db.url, 'SELECT count(*) AS n FROM events WHERE idempotency_key = $1', ['same-key']), 1);
    const ds = await waitForDeliveries(api, `subscription_id=${subId}`, (x) => x.length === 1 && x[0].status === 'succeeded');
    assert.equal(ds[0].event_id, eventId);
    assert.equal(rx.received.filter((r) => r.path === '/hooks/idem').length, 1);
    await ok(api.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('many events are each delivered exactly once', async () => {
    const subId = await subscribe(api, story.token, { channel: 'invoice.create', callback_url: `${rx.url}/hooks/many` });
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => publishEvent(api, { channel: 'invoice.create', company_id: story.companyId, object: { id: `i${i}` } })),
    );
    await waitForDeliveries(api, `subscription_id=${subId}&limit=100`, (x) => x.length === 50 && x.every((d) => d.status === 'succeeded'));
    const got = rx.received.filter((r) => r.path === '/hooks/many');
    assert.equal(got.length, 50);
    assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 50);
    assert.equal(new Set(ids).size, 50);
  });
});

describe('PostgreSQL queue under concurrency', () => {
  let db: FreshPostgres;
  let a: PostgresStore;
  let b: PostgresStore;
  before(async () => {
    db = await freshPostgresUrl();
    a = new PostgresStore(db.url);
    b = new PostgresStore(db.url);
    await Promise.all([a.migrate(), b.migrate()]);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  test('two stores claiming concurrently never get the same delivery twice', async () => {
    const co = newId('co');
    await a.createCompany({ id: co, name: 'C', sub_domain: 'concurrency', created_at: 1 });
    await a.putRole({ company_id: co, name: 'admin', permissions: {} });
    const usr = newId('usr');
    await a.createUser({ id: usr, company_id: co, email: 'c@c.test', name: 'C', role: 'admin', created_at: 1, updated_at: 1 }, null);
    const app = newId('app');
    await a.createApp({
      id: app, name: 'A', url: 'https://a.example/', redirect_uris: [], signature: 'signed_request', client_id: newId('app'),
      client_secret: 's', signing_secret: 'whsec_x', public_client: false, created_at: 1,
    });
    const grt = newId('grt');
    await a.createGrant(
      { id: grt, app_id: app, user_id: usr, company_id: co, scope: 'clients', created_at: 1, revoked_at: null },
      { hash: `h-${grt}`, grant_id: grt, expires_at: 2, created_at: 1 },
    );
    for (const n of [1, 2, 3]) {
      await a.createSubscription({
        id: newId('sub'), grant_id: grt, app_id: app, user_id: usr, company_id: co, channels: ['client.create'],
        callback_url: `https://a.example/h${n}`, resource: null, headers: {}, content_type: 'form', created_at: 1, updated_at: 1,
      });
    }
    const T = 1_700_000_000_000;
    for (let i = 0; i < 200; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => (j % 2 ? a : b).publishEvent({
        id: newId('evt'), company_id: co, channel: 'client.create', object: { id: `c${i + j}` }, links: [], resources: {},
        user_id: null, idempotency_key: null,
      }, T - 1000 + i + j)));
    }
    const total = 600; // 200 events x 3 subscriptions

    const seen: string[] = [];
    const claimer = async (store: PostgresStore) => {
      for (;;) {
        const batch = await store.claimDueDeliveries(7, T, 60_000);
        if (batch.length === 0) return;
        for (const d of batch) seen.push(d.id);
      }
    };
    await Promise.all([a, b, a, b, a, b, a, b].map(claimer));
    assert.equal(new Set(seen).size, seen.length, 'no delivery claimed twice');
    assert.equal(seen.length, total, 'every delivery claimed');
    assert.deepEqual(await a.claimDueDeliveries(100, T, 60_000), []);
    assert.equal(await count(db.url, "SELECT count(DISTINCT lease_token) AS n FROM delivery_queue", []) > 8, true);
  });
});
