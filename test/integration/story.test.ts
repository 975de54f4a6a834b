import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifySignedRequest } from '../../src/sdk/index.js';
import { Receiver, signedRequestOf } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

describe('the seed story over real HTTP', () => {
  let s: TestServer;
  let rx: Receiver;
  let story: Story;

  before(async () => {
    rx = await Receiver.start();
    s = await startServer();
    story = await seedStory(s, `${rx.url}/`);
  });
  after(async () => {
    await s.stop();
    await rx.close();
  });

  test('channels are listed for the token', async () => {
    const channels = await ok(s.call('GET', '/api/subs/channels', { token: story.token }), 200);
    assert.deepEqual(channels.slice(0, 3), ['client.create', 'client.update', 'client.delete']);
    assert.ok(channels.includes('task.update'));
  });

  test('subscribe, publish, receive a signed_request that verifies', async () => {
    const subId = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/hooks/clients?k=1` });
    const before = rx.received.length;
    const eventId = await publishEvent(s, {
      channel: 'client.create',
      company_id: story.companyId,
      object: { id: 'c1', name: 'Bob' },
      links: [{ rel: 'self', href: 'https://api.example.com/clients/c1' }],
      user_id: 'someone',
    });
    await rx.waitFor(before + 1);
    const req = rx.received[before]!;
    assert.equal(req.path, '/hooks/clients?k=1', 'query parameters of the callback are preserved');
    assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
    const payload = verifySignedRequest(signedRequestOf(req.body), story.clientSecret, { maxAgeSeconds: 60 });
    assert.deepEqual(payload.obj, { client: { id: 'c1', name: 'Bob' }, links: [{ rel: 'self', href: 'https://api.example.com/clients/c1' }] });
    assert.equal(payload.channel, 'client.create');
    assert.equal(payload.event_id, eventId);
    assert.equal(payload.sub_id, subId);
    assert.equal(payload.company_id, story.companyId);
    assert.equal(payload.user_id, story.userId);
    assert.equal(payload.actor_id, 'someone');
    assert.equal(payload.sub_domain, 'acme');
    assert.equal(payload.algorithm, 'HMAC-SHA256');
    assert.match(String(payload.issued_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(Date.parse(String(payload.expires)) > Date.now());
    assert.equal(req.headers['webhook-id'], (await waitForDeliveries(s, `event_id=${eventId}`, (d) => d[0]?.status === 'succeeded'))[0].id);

    // The access_token in the payload is a live token of the grant: the app can call back.
    const list = await ok(s.call('GET', '/api/subs', { token: String(payload.access_token) }), 200);
    assert.deepEqual(list.subs.map((x: { id: string }) => x.id), [subId]);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('a form-encoded subscription works like JSON, with CRUD', async () => {
    const form = new URLSearchParams({ 'sub[channel]': 'invoice.create', 'sub[callback_url]': `${rx.url}/hooks/inv` }).toString();
    const created = await ok(s.call('POST', '/api/subs', { token: story.token, form }), 201);
    const id = created.sub.id;
    assert.deepEqual(created.sub.channels, ['invoice.create']);
    const got = await ok(s.call('GET', `/api/subs/${id}?access_token=${story.token}`), 200);
    assert.equal(got.sub.callback_url, `${rx.url}/hooks/inv`);
    const changed = await ok(s.call('PUT', `/api/subs/${id}`, { token: story.token, body: { sub: { channels: ['invoice.create', 'invoice.update'] } } }), 200);
    assert.equal(changed.sub.id, id);
    assert.deepEqual(changed.sub.channels, ['invoice.create', 'invoice.update']);
    const patched = await ok(s.call('PATCH', `/api/subs/${id}`, { token: story.token, body: { sub: { callback_url: `${rx.url}/hooks/inv2` } } }), 200);
    assert.equal(patched.sub.callback_url, `${rx.url}/hooks/inv2`);
    assert.deepEqual(patched.sub.channels, ['invoice.create', 'invoice.update']);
    await ok(s.call('DELETE', `/api/subs/${id}`, { token: story.token }), 204);
    await ok(s.call('GET', `/api/subs/${id}`, { token: story.token }), 404);
  });

  test('a role downgrade stops deliveries: the delivery is dropped with the reason', async () => {
    const subId = await subscribe(s, story.token, { channel: 'client.update', callback_url: `${rx.url}/hooks/downgrade` });
    await ok(s.admin('PATCH', `/admin/companies/${story.companyId}/users/${story.userId}`, { role: 'viewer' }), 200);
    const before = rx.received.length;
    await publishEvent(s, { channel: 'client.update', company_id: story.companyId, object: { id: 'c1' } });
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'dropped');
    assert.match(d.reason, /role "viewer" may not "update" clients/);
    assert.equal(d.attempts, 0);
    assert.equal(rx.received.filter((r) => r.path === '/hooks/downgrade').length, 0);
    assert.ok(rx.received.length >= before);
    await ok(s.admin('PATCH', `/admin/companies/${story.companyId}/users/${story.userId}`, { role: 'admin' }), 200);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('a receiver that fails twice then succeeds gets the delivery on the third attempt', async () => {
    const subId = await subscribe(s, story.token, { channel: 'invoice.delete', callback_url: `${rx.url}/hooks/flaky` });
    let n = 0;
    rx.respond((r) => (r.path === '/hooks/flaky' && ++n <= 2 ? { status: 503, body: 'busy' } : { status: 200 }));
    await publishEvent(s, { channel: 'invoice.delete', company_id: story.companyId, object: { id: 'i1' } });
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'succeeded');
    assert.equal(d.attempts, 3);
    const detail = await ok(s.admin('GET', `/admin/deliveries/${d.id}`), 200);
    assert.deepEqual(detail.delivery.attempt_log.map((a: { status_code: number }) => a.status_code), [503, 503, 200]);
    assert.equal(detail.delivery.attempt_log[0].response_excerpt, 'busy');
    const ids = new Set(rx.received.filter((r) => r.path === '/hooks/flaky').map((r) => r.headers['webhook-id']));
    assert.deepEqual([...ids], [d.id], 'webhook-id stays the same across retries');
    rx.respond(() => ({ status: 200 }));
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('after the last attempt a delivery is failed and stays listed', async () => {
    const subId = await subscribe(s, story.token, { channel: 'invoice.update', callback_url: `${rx.url}/hooks/down` });
    rx.respond((r) => (r.path === '/hooks/down' ? { status: 500 } : { status: 200 }));
    await publishEvent(s, { channel: 'invoice.update', company_id: story.companyId, object: { id: 'i1' } });
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'failed');
    assert.equal(d.attempts, 4, 'one attempt plus the three retries of the test schedule');
    assert.equal(d.last_status_code, 500);
    rx.respond(() => ({ status: 200 }));
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('410 Gone removes the subscription', async () => {
    const subId = await subscribe(s, story.token, { channel: 'task.create', callback_url: `${rx.url}/hooks/gone` });
    rx.respond((r) => (r.path === '/hooks/gone' ? { status: 410 } : { status: 200 }));
    await publishEvent(s, { channel: 'task.create', company_id: story.companyId, object: { id: 't1' } });
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'failed');
    assert.equal(d.attempts, 1);
    await ok(s.call('GET', `/api/subs/${subId}`, { token: story.token }), 404);
    rx.respond(() => ({ status: 200 }));
  });

  test('idempotency_key stores one event however often it is sent', async () => {
    const subId = await subscribe(s, story.token, { channel: 'client.delete', callback_url: `${rx.url}/hooks/idem` });
    const event = { channel: 'client.delete', company_id: story.companyId, object: { id: 'c9' }, idempotency_key: 'k-1' };
    const first = await publishEvent(s, event);
    const again = await s.admin('POST', '/admin/events', event);
    assert.equal(again.status, 202);
    assert.equal(again.body.id, first);
    const ds = await waitForDeliveries(s, `subscription_id=${subId}`, (x) => x.length === 1 && x[0].status === 'succeeded');
    assert.equal(ds.length, 1);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('the in-process publish function is the same path as the HTTP one', async () => {
    const subId = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/hooks/lib` });
    const result = await s.herald.publish({ channel: 'client.create', company_id: story.companyId, object: { id: 42 } });
    assert.equal(result.deliveries, 1);
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'succeeded');
    assert.equal(d.event_id, result.id);
    await ok(s.call('DELETE', `/api/subs/${subId}`, { token: story.token }), 204);
  });

  test('revoking the grant ends its tokens and removes its subscriptions, pending deliveries included', async () => {
    const subId = await subscribe(s, story.token, { channel: 'client.update', callback_url: `${rx.url}/hooks/revoke` });
    rx.respond((r) => (r.path === '/hooks/revoke' ? { status: 500 } : { status: 200 }));
    await publishEvent(s, { channel: 'client.update', company_id: story.companyId, object: { id: 'c1' } });
    await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.attempts >= 1);
    await ok(s.admin('DELETE', `/admin/grants/${story.grantId}`), 204);
    const denied = await s.call('GET', '/api/subs', { token: story.token });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, (ds) => ds[0]?.status === 'dropped');
    assert.equal(d.reason, 'grant revoked');
    await ok(s.admin('DELETE', `/admin/grants/${story.grantId}`), 404);
    rx.respond(() => ({ status: 200 }));
  });
});

describe('tenant isolation', () => {
  test("another company's events never reach a subscription", async () => {
    const rx = await Receiver.start();
    const s = await startServer();
    try {
      const a = await seedStory(s, `${rx.url}/a/`, { subDomain: 'a' });
      const b = await seedStory(s, `${rx.url}/b/`, { subDomain: 'b', catalog: false });
      await subscribe(s, a.token, { channel: 'client.create', callback_url: `${rx.url}/a/hook` });
      const bSub = await subscribe(s, b.token, { channel: 'client.create', callback_url: `${rx.url}/b/hook` });
      await publishEvent(s, { channel: 'client.create', company_id: b.companyId, object: { id: 'x' } });
      await waitForDeliveries(s, `subscription_id=${bSub}`, (ds) => ds[0]?.status === 'succeeded');
      assert.deepEqual(rx.received.map((r) => r.path), ['/b/hook']);
      await ok(s.call('GET', `/api/subs/${bSub}`, { token: a.token }), 404);
    } finally {
      await s.stop();
      await rx.close();
    }
  });
});
