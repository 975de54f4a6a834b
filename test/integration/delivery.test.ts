import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { Sender } from '../../src/delivery/sender.js';
import type { Transport } from '../../src/delivery/transport.js';
import { buildRequest, toNotification, type Notification, type NotificationFacts } from '../../src/delivery/request.js';
import { verifySignedJson } from '../../src/domain/signature.js';
import type { App, Company, StoredEvent, Subscription } from '../../src/store/types.js';
import { ThreadedSender } from '../../src/delivery/send-thread.js';
import { FAN_OUT_CHUNK } from '../../src/store/rows.js';
import type { DeliveryConfig } from '../../src/config.js';
import { Receiver } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

/** A receiver that reads each request and never answers: what is open there is what Herald has in flight to it. */
class HangingReceiver {
  open = 0;
  maxOpen = 0;
  url = '';
  private readonly server = createServer((req) => {
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    req.resume();
    req.socket.once('close', () => this.open--);
  });

  static async start(): Promise<HangingReceiver> {
    const r = new HangingReceiver();
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** Ends the requests it holds, as a receiver going away would. */
  release(): void {
    this.server.closeAllConnections();
  }

  async close(): Promise<void> {
    this.release();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * The story's app at the hanging receiver, subscribed to `hangingChannel`, and a second app at
 * `healthyUrl` for the same user, subscribed to client.create.
 */
const testApp: App = {
  id: 'app_1', name: 'A', url: 'http://127.0.0.1/', redirect_uris: [], signature: 'signed_request', client_id: 'c', client_secret: 'cs', signing_secret: 'whsec_c2VjcmV0',
  public_client: false, created_at: 0,
};
const testCompany: Company = { id: 'co1', name: 'Acme', sub_domain: 'acme', created_at: 0 };

/** The facts of a delivery of `object` to a subscription with `headers`, as the dispatcher hands them to a Transport. */
function testFacts(n: number, object: StoredEvent['object'], opts: { headers?: Record<string, string>; contentType?: Subscription['content_type']; event?: StoredEvent } = {}): NotificationFacts {
  const event: StoredEvent = opts.event ?? {
    id: `evt_${n}`, company_id: 'co1', channel: 'task.update', object, links: [], resources: {}, user_id: null, idempotency_key: null, created_at: 0,
  };
  const subscription: Subscription = {
    id: `sub_${n}`, grant_id: 'g', app_id: 'app_1', user_id: 'u1', company_id: 'co1', channels: ['task.update'], callback_url: 'http://127.0.0.1/h',
    resource: null, headers: opts.headers ?? {}, content_type: opts.contentType ?? 'form', created_at: 0, updated_at: 0,
  };
  return { deliveryId: `dlv_${n}`, event, subscription, company: testCompany, accessToken: 'tok', tokenExpiresAt: 1_800_000_000_000, now: 1_790_000_000_123 };
}

function testNotification(n: number, object: StoredEvent['object'] = { id: String(n) }, headers: Record<string, string> = {}): Notification {
  return toNotification(testApp, testFacts(n, object, { headers }));
}

async function seedHangingAndHealthy(s: TestServer, hangingUrl: string, hangingChannel: string, healthyUrl: string): Promise<Story> {
  const story = await seedStory(s, `${hangingUrl}/`);
  await subscribe(s, story.token, { channel: hangingChannel, callback_url: `${hangingUrl}/hook` });
  const other = await ok(s.admin('POST', '/admin/apps', { name: 'Other', url: `${healthyUrl}/` }), 201);
  const grant = await ok(s.admin('POST', '/admin/grants', { app_id: other.id, user_id: story.userId, scope: 'api/subs clients' }), 201);
  await subscribe(s, grant.access_token, { channel: 'client.create', callback_url: `${healthyUrl}/hook` });
  return story;
}

describe('delivery behaviour', () => {
  let s: TestServer;
  let rx: Receiver;
  let story: Story;

  before(async () => {
    rx = await Receiver.start();
    s = await startServer({ HERALD_DELIVERY_TIMEOUT: '500ms', HERALD_LEASE: '3s' });
    story = await seedStory(s, `${rx.url}/`);
  });
  after(async () => {
    await s.stop();
    await rx.close();
  });

  async function deliverOnce(path: string, channel = 'client.create') {
    const subId = await subscribe(s, story.token, { channel, callback_url: `${rx.url}${path}` });
    await publishEvent(s, { channel, company_id: story.companyId, object: { id: 'c1' } });
    return subId;
  }

  test('Retry-After is honoured as the earliest next attempt', async () => {
    rx.respond((r) => (r.path === '/retry-after' ? { status: 429, headers: { 'retry-after': '30' } } : { status: 200 }));
    const subId = await deliverOnce('/retry-after');
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.attempts === 1);
    const detail = await ok(s.admin('GET', `/admin/deliveries/${d.id}`), 200);
    const a = detail.delivery.attempt_log[0];
    const attemptEnd = Date.parse(a.started_at) + a.duration_ms;
    const waited = Date.parse(d.next_attempt_at) - attemptEnd;
    assert.ok(waited >= 30_000 && waited < 31_000, `next attempt ${waited}ms after the 429, Retry-After said 30s`);
    assert.equal(d.status, 'pending');
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('a receiver slower than the timeout is a failed attempt with the reason', async () => {
    rx.respond((r) => (r.path === '/slow' ? { status: 200, delayMs: 1500 } : { status: 200 }));
    const subId = await deliverOnce('/slow', 'client.update');
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.attempts >= 1);
    const detail = await ok(s.admin('GET', `/admin/deliveries/${d.id}`), 200);
    assert.equal(detail.delivery.attempt_log[0].status_code, null);
    assert.match(detail.delivery.attempt_log[0].error, /timeout/);
    assert.ok(detail.delivery.attempt_log[0].duration_ms < 1400);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('redirects are not followed: a 3xx is a failed attempt', async () => {
    rx.respond((r) => (r.path === '/moved' ? { status: 302, headers: { location: `${rx.url}/elsewhere` } } : { status: 200 }));
    const subId = await deliverOnce('/moved', 'client.delete');
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.attempts >= 1);
    assert.equal(d.last_status_code, 302);
    assert.equal(rx.received.filter((r) => r.path === '/elsewhere').length, 0);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test("the subscription's own headers are sent with each delivery", async () => {
    rx.respond(() => ({ status: 200 }));
    const subId = await subscribe(s, story.token, { channel: 'invoice.create', callback_url: `${rx.url}/with-headers`, headers: { 'X-Api-Key': 'k-123' } });
    const listed = await ok(s.call('GET', `/api/subs/${subId}`, { token: story.token }), 200);
    assert.deepEqual(listed.sub.headers, { 'X-Api-Key': '********' }, 'values are never returned');
    await publishEvent(s, { channel: 'invoice.create', company_id: story.companyId, object: { id: 'i1' } });
    await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'succeeded');
    const got = rx.received.find((r) => r.path === '/with-headers')!;
    assert.equal(got.headers['x-api-key'], 'k-123');
    assert.equal(got.headers['x-herald-channel'], 'invoice.create');
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });
});

describe('policies that need their own server', () => {
  test('an expired access token answers 401 TOKEN_EXPIRED', async () => {
    const s = await startServer({ HERALD_ACCESS_TOKEN_TTL: '1s' });
    try {
      const story = await seedStory(s, 'http://127.0.0.1:9/');
      await ok(s.call('GET', '/api/subs', { token: story.token }), 200);
      await new Promise((r) => setTimeout(r, 1100));
      const res = await s.call('GET', '/api/subs', { token: story.token });
      assert.equal(res.status, 401);
      assert.equal(res.body.code, 'TOKEN_EXPIRED');
    } finally {
      await s.stop();
    }
  });

  test('without HERALD_ALLOW_PRIVATE_CALLBACKS: https only, no private addresses', async () => {
    const s = await startServer({ HERALD_ALLOW_PRIVATE_CALLBACKS: 'false' });
    try {
      const local = await s.admin('POST', '/admin/apps', { name: 'x', url: 'https://127.0.0.1/' });
      assert.equal(local.status, 422);
      assert.equal(local.body.code, 'CALLBACK_PRIVATE_ADDRESS');
      const story = await seedStory(s, 'https://app.example.com/');
      const http = await s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: 'http://app.example.com/h' } } });
      assert.equal(http.status, 422);
      assert.equal(http.body.code, 'CALLBACK_NOT_HTTPS');
      const meta = await s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: 'https://169.254.169.254/latest' } } });
      assert.equal(meta.status, 422);
      await ok(s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: 'https://app.example.com/hooks?x=1' } } }), 201);
    } finally {
      await s.stop();
    }
  });

  test('with HERALD_SEND_THREAD=false Herald sends from its main thread, signed, end to end', async () => {
    const own = await startServer({ HERALD_SEND_THREAD: 'false' });
    const ownRx = await Receiver.start();
    try {
      const st = await seedStory(own, `${ownRx.url}/`);
      const subId = await subscribe(own, st.token, { channel: 'client.create', callback_url: `${ownRx.url}/main-thread` });
      await publishEvent(own, { channel: 'client.create', company_id: st.companyId, object: { id: 'c1' } });
      const [d] = await waitForDeliveries(own, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'succeeded');
      assert.equal(d.last_status_code, 200);
      const got = ownRx.received.filter((r) => r.path === '/main-thread');
      assert.equal(got.length, 1);
      assert.equal(got[0]!.headers['webhook-id'], d.id);
    } finally {
      await own.stop();
      await ownRx.close();
    }
  });

  for (const [kind, make] of [
    ['in this thread', (cfg: DeliveryConfig, allowPrivate: boolean): Transport => new Sender(cfg, allowPrivate)],
    ['from the send thread', (cfg: DeliveryConfig, allowPrivate: boolean): Transport => new ThreadedSender(cfg, allowPrivate)],
  ] as const) test(`the sender (${kind}) refuses names that resolve to private addresses at connect time`, async () => {
    const rx = await Receiver.start();
    const port = new URL(rx.url).port;
    const cfg = loadConfig({}).delivery;
    const strict = make(cfg, false);
    const open = make(cfg, true);
    try {
      const refused = await strict.deliver(`http://localhost:${port}/x`, testNotification(1));
      assert.equal(refused.statusCode, null);
      assert.match(refused.error!, /private address/);
      assert.equal(rx.received.length, 0);
      const allowed = await open.deliver(`http://localhost:${port}/x`, testNotification(1));
      assert.equal(allowed.statusCode, 200);
    } finally {
      await strict.close();
      await open.close();
      await rx.close();
    }
  });

  test('a send thread that dies fails what it had in flight as attempts that sent nothing; the next send starts a new one', async () => {
    const rx = await Receiver.start(() => ({ status: 200, delayMs: 2000 }));
    const cfg = loadConfig({});
    const sender = new ThreadedSender(cfg.delivery, true);
    try {
      assert.equal((await sender.deliver(`${rx.url}/warm`, testNotification(1))).statusCode, 200);
      const inFlight = sender.deliver(`${rx.url}/slow`, testNotification(2));
      await rx.waitFor(2);
      await sender.terminate();
      const lost = await inFlight;
      assert.equal(lost.statusCode, null);
      assert.match(lost.error!, /sender thread stopped/);
      rx.respond(() => ({ status: 204 }));
      const again = testNotification(3, { id: '3' }, { 'x-n': '3' });
      assert.equal((await sender.deliver(`${rx.url}/again`, again)).statusCode, 204);
      assert.equal(rx.received.at(-1)!.headers['x-n'], '3');
      assert.equal(rx.received.at(-1)!.body, buildRequest(testApp, testFacts(3, { id: '3' }, { headers: { 'x-n': '3' } })).body);
    } finally {
      await sender.close();
      await rx.close();
    }
  });

  test('deliveries made in one turn cross to the send thread together, and each is signed there into its own body, byte for byte', async () => {
    const rx = await Receiver.start();
    const sender = new ThreadedSender(loadConfig({}).delivery, true);
    try {
      // Multi-byte characters (UTF-8 lengths differ from string lengths), a long object, both
      // body formats, and one event to several subscriptions (its parts cross once, shared).
      const shared: StoredEvent = {
        id: 'evt_shared', company_id: 'co1', channel: 'task.update', object: { id: 's', name: 'Zoë 𝄞 ☃' }, links: [], resources: {}, user_id: 'u2', idempotency_key: null, created_at: 0,
      };
      const objects = [{ id: 'é=ü&ß=€' }, { id: '', text: '𝄞 and ☃' }, { id: 'long', x: 'x'.repeat(70_000) }];
      const facts = [
        ...objects.map((o, i) => testFacts(i, o, { headers: { 'x-i': String(i) } })),
        ...[3, 4, 5].map((i) => testFacts(i, shared.object, { headers: { 'x-i': String(i) }, contentType: i === 4 ? 'json' : 'form', event: shared })),
      ];
      const results = await Promise.all(facts.map((f, i) => sender.deliver(`${rx.url}/b${i}`, toNotification(testApp, f))));
      assert.deepEqual(results.map((r) => r.statusCode), facts.map(() => 200));
      const got = new Map(rx.received.map((r) => [r.path, r]));
      facts.forEach((f, i) => {
        const expected = buildRequest(testApp, f);
        assert.equal(got.get(`/b${i}`)!.body, expected.body);
        assert.equal(got.get(`/b${i}`)!.headers['content-length'], String(Buffer.byteLength(expected.body)));
        assert.equal(got.get(`/b${i}`)!.headers['content-type'], expected.headers['content-type']);
        assert.equal(got.get(`/b${i}`)!.headers['webhook-id'], `dlv_${i}`);
        assert.equal(got.get(`/b${i}`)!.headers['x-i'], String(i));
      });
      const json = verifySignedJson(got.get('/b4')!.body, got.get('/b4')!.headers['x-herald-signature'] as string, testApp.client_secret);
      assert.equal(json.sub_id, 'sub_4');
      assert.deepEqual(json.obj, { task: shared.object, links: [] });
    } finally {
      await sender.close();
      await rx.close();
    }
  });

  test('a send thread has the heap for HERALD_CONCURRENCY requests of the largest body in flight at once', async () => {
    // The default 256 slots, each with a body of a 1 MiB event as a signed_request (base64:
    // about 1.4 MB), all in flight until the receiver answers. While bodies were strings in
    // the thread's heap, its 256 MB ran out and ended the thread (all 256 failed as "sender
    // thread stopped"); as bytes (send-worker.ts) they are outside it.
    const cfg = loadConfig({ HERALD_CONNECTIONS_PER_ORIGIN: '256' });
    assert.equal(cfg.delivery.concurrency, 256);
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.writeHead(200).end(), 1000));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/h`;
    const sender = new ThreadedSender(cfg.delivery, true);
    try {
      const objects = Array.from({ length: 26 }, (_, i) => ({ id: String(i), text: String.fromCharCode(97 + i).repeat(cfg.bodyLimit - 100) }));
      const results = await Promise.all(Array.from({ length: cfg.delivery.concurrency }, (_, i) => sender.deliver(url, testNotification(i, objects[i % 26]!))));
      assert.deepEqual([...new Set(results.map((r) => r.error ?? r.statusCode))], [200]);
    } finally {
      await sender.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('HERALD_EGRESS_ADDRESS: webhooks leave from that address; anything but an IP is refused at start', async () => {
    assert.throws(() => loadConfig({ HERALD_EGRESS_ADDRESS: 'eth0' }), /HERALD_EGRESS_ADDRESS: "eth0" is not an IP address/);
    const rx = await Receiver.start();
    const bound = new Sender(loadConfig({ HERALD_EGRESS_ADDRESS: '127.0.0.7' }).delivery, true);
    const plain = new Sender(loadConfig({}).delivery, true);
    try {
      assert.equal((await bound.send(`${rx.url}/x`, {}, 'a=1')).statusCode, 200);
      assert.equal((await plain.send(`${rx.url}/x`, {}, 'a=1')).statusCode, 200);
      assert.deepEqual(rx.received.map((r) => r.remoteAddress), ['127.0.0.7', '127.0.0.1']);
    } finally {
      await bound.close();
      await plain.close();
      await rx.close();
    }
  });

  test('a receiver that hangs holds at most HERALD_MAX_IN_FLIGHT_PER_ORIGIN slots; another origin is served meanwhile', async () => {
    const hanging = await HangingReceiver.start();
    const healthy = await Receiver.start();
    // Six connections per origin: what is open at the receiver is what Herald has in flight.
    const s = await startServer({ HERALD_CONCURRENCY: '6', HERALD_CONNECTIONS_PER_ORIGIN: '6', HERALD_MAX_IN_FLIGHT_PER_ORIGIN: '2' });
    try {
      const story = await seedHangingAndHealthy(s, hanging.url, 'client.create', healthy.url);
      for (let i = 0; i < 12; i++) await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: `c${i}` } });
      // Without the cap the hanging origin would take all six slots, claim after claim, and
      // the healthy one would wait for timeouts; with it, the healthy one gets everything.
      await healthy.waitFor(12, 20_000);
      assert.ok(hanging.maxOpen <= 2, `the hanging receiver had ${hanging.maxOpen} requests open at once`);
      assert.ok(hanging.maxOpen >= 1);
      assert.equal(new Set(healthy.received.map((r) => r.headers['webhook-id'])).size, 12);
    } finally {
      await s.stop();
      await hanging.close();
      await healthy.close();
    }
  });

  test('sends that hang stop counting against HERALD_CONCURRENCY after a second: another origin gets slots long before the timeout', async () => {
    const hanging = await HangingReceiver.start();
    const healthy = await Receiver.start();
    // The hanging origin may take every slot; its requests time out only after 20 s.
    const s = await startServer({
      HERALD_CONCURRENCY: '4', HERALD_CONNECTIONS_PER_ORIGIN: '4', HERALD_MAX_IN_FLIGHT_PER_ORIGIN: '4',
      HERALD_DELIVERY_TIMEOUT: '20s', HERALD_LEASE: '60s',
    });
    try {
      const story = await seedHangingAndHealthy(s, hanging.url, 'client.update', healthy.url);
      for (let i = 0; i < 4; i++) await publishEvent(s, { channel: 'client.update', company_id: story.companyId, object: { id: `u${i}` } });
      for (let i = 0; i < 50 && hanging.open < 4; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(hanging.open, 4, 'the hanging receiver holds every slot');
      for (let i = 0; i < 6; i++) await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: `c${i}` } });
      // Counted against the concurrency, the four hanging sends would keep these waiting 20 s.
      await healthy.waitFor(6, 10_000);
      assert.equal(hanging.open, 4, 'the hanging origin got no more than its cap');
    } finally {
      hanging.release(); // the hanging sends end now, not at the timeout, so stop() does not wait for them
      await s.stop();
      await hanging.close();
      await healthy.close();
    }
  });

  test('an event to more subscriptions than a publish queues: the rest follow at once, each subscription gets one delivery', async () => {
    const rx = await Receiver.start();
    // A poll of a minute: the rest of the fan-out can only come from the publish's hint.
    const s = await startServer({ HERALD_POLL_INTERVAL: '1m' });
    try {
      const story = await seedStory(s, `${rx.url}/`);
      const n = FAN_OUT_CHUNK + 150;
      const ids = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < n; i += 25) {
        await Promise.all(ids.slice(i, i + 25).map((k) => subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/h/${k}` })));
      }
      await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: 'c1' } });
      await rx.waitFor(n, 30_000);
      assert.equal(new Set(rx.received.map((r) => r.path)).size, n);
      assert.equal(new Set(rx.received.map((r) => r.headers['webhook-id'])).size, n);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(rx.received.length, n, 'no subscription got a second delivery');
    } finally {
      await s.stop();
      await rx.close();
    }
  });

  test('a catalog file declares resource types at start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-catalog-'));
    const file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify({ resources: { client: { plural: 'clients' }, task: { plural: 'tasks', actions: ['create'], parents: ['project'] } } }));
    const s = await startServer({ HERALD_CATALOG: file });
    try {
      const { resources } = await ok(s.admin('GET', '/admin/resources'), 200);
      assert.deepEqual(resources, [
        { type: 'client', plural: 'clients', actions: ['create', 'update', 'delete'], parents: [] },
        { type: 'task', plural: 'tasks', actions: ['create'], parents: ['project'] },
      ]);
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
