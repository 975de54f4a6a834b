import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AccessQuery } from '../../src/access-check.js';
import { verifySignedRequest } from '../../src/sdk/index.js';
import { Receiver, signedRequestOf } from '../support/receiver.js';
import { startServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries } from '../support/story.js';

describe('subscriptions against one resource', () => {
  test('a task event under proj1 reaches the proj1 subscription, not the proj2 one', async () => {
    const rx = await Receiver.start();
    const s = await startServer();
    try {
      const story = await seedStory(s, `${rx.url}/`);
      const p1 = await subscribe(s, story.token, { channels: ['task.create', 'task.update'], callback_url: `${rx.url}/p1`, resource: { type: 'project', id: 'proj1' } });
      const p2 = await subscribe(s, story.token, { channel: 'task.create', callback_url: `${rx.url}/p2`, resource: { type: 'project', id: 'proj2' } });
      const all = await subscribe(s, story.token, { channel: 'task.create', callback_url: `${rx.url}/all` });
      const eventId = await publishEvent(s, { channel: 'task.create', company_id: story.companyId, object: { id: 't1', project_id: 'proj1' }, resources: { project: 'proj1' } });
      const ds = await waitForDeliveries(s, `event_id=${eventId}`, (x) => x.length === 2 && x.every((d) => d.status === 'succeeded'));
      assert.deepEqual(new Set(ds.map((d) => d.subscription_id)), new Set([p1, all]));
      assert.deepEqual(rx.received.map((r) => r.path).sort(), ['/all', '/p1']);
      assert.equal((await ok(s.admin('GET', `/admin/deliveries?subscription_id=${p2}`), 200)).deliveries.length, 0);
      const payload = verifySignedRequest(signedRequestOf(rx.received.find((r) => r.path === '/p1')!.body), story.clientSecret);
      assert.deepEqual(payload.obj, { task: { id: 't1', project_id: 'proj1' }, links: [] });
    } finally {
      await s.stop();
      await rx.close();
    }
  });

  test('a resource type that is not a parent of every channel is refused with 422 naming the channel', async () => {
    const s = await startServer();
    try {
      const story = await seedStory(s, 'http://127.0.0.1:9/');
      const res = await s.call('POST', '/api/subs', {
        token: story.token,
        body: { sub: { channels: ['task.create', 'client.create'], callback_url: 'http://127.0.0.1:9/h', resource: { type: 'project', id: 'proj1' } } },
      });
      assert.equal(res.status, 422);
      assert.equal(res.body.code, 'RESOURCE_TYPE_UNKNOWN');
      assert.match(res.body.detail, /"client.create" cannot be scoped to a project/);
      assert.deepEqual((await ok(s.call('GET', '/api/subs', { token: story.token }), 200)).subs, []);
    } finally {
      await s.stop();
    }
  });

  test('changing the channels takes effect for the next event', async () => {
    const rx = await Receiver.start();
    const s = await startServer();
    try {
      const story = await seedStory(s, `${rx.url}/`);
      const id = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/c` });
      await ok(s.call('PATCH', `/api/subs/${id}`, { token: story.token, body: { sub: { channels: ['client.update'] } } }), 200);
      await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: 'c1' } });
      const upd = await publishEvent(s, { channel: 'client.update', company_id: story.companyId, object: { id: 'c1' } });
      const ds = await waitForDeliveries(s, `subscription_id=${id}`, (x) => x.length === 1 && x[0].status === 'succeeded');
      assert.equal(ds[0].event_id, upd);
      assert.equal(ds[0].channel, 'client.update');
    } finally {
      await s.stop();
      await rx.close();
    }
  });
});

describe("the host's access check", () => {
  test('an in-process check is consulted at subscribe time and at delivery time', async () => {
    const rx = await Receiver.start();
    const asked: AccessQuery[] = [];
    let visible = new Set(['proj1']);
    const s = await startServer({}, { herald: { accessCheck: async (q) => (asked.push(q), visible.has(q.resource.id)) } });
    try {
      const story = await seedStory(s, `${rx.url}/`);
      const refused = await s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'task.create', callback_url: `${rx.url}/x`, resource: { type: 'project', id: 'secret' } } } });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.code, 'RESOURCE_FORBIDDEN');
      const id = await subscribe(s, story.token, { channel: 'task.create', callback_url: `${rx.url}/p1`, resource: { type: 'project', id: 'proj1' } });
      assert.deepEqual(asked.at(-1), { company_id: story.companyId, user_id: story.userId, role: 'admin', resource: { type: 'project', id: 'proj1' }, channel: 'task.create' });
      const first = await publishEvent(s, { channel: 'task.create', company_id: story.companyId, object: { id: 't1' }, resources: { project: 'proj1' } });
      await waitForDeliveries(s, `event_id=${first}`, (x) => x[0]?.status === 'succeeded');
      visible = new Set(); // the user lost access to proj1 in the host
      const second = await publishEvent(s, { channel: 'task.create', company_id: story.companyId, object: { id: 't2' }, resources: { project: 'proj1' } });
      const [d] = await waitForDeliveries(s, `event_id=${second}`, (x) => x[0]?.status === 'dropped');
      assert.equal(d.reason, 'host access check refused project "proj1"');
      assert.equal(rx.received.length, 1);
      assert.equal(id, d.subscription_id);
    } finally {
      await s.stop();
      await rx.close();
    }
  });

  test('an HTTP hook: allowed, refused, and a hook that fails makes the subscription 503, not a guess', async () => {
    let mode: 'allow' | 'deny' | 'broken' = 'allow';
    const hook = await Receiver.start((r) => {
      const q = JSON.parse(r.body) as AccessQuery;
      if (r.headers.authorization !== 'Bearer hook-token') return { status: 401 };
      if (mode === 'broken') return { status: 500 };
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ allowed: mode === 'allow' && q.resource.id === 'proj1' }) };
    });
    const rx = await Receiver.start();
    const s = await startServer({ HERALD_ACCESS_CHECK_URL: `${hook.url}/access`, HERALD_ACCESS_CHECK_TOKEN: 'hook-token' });
    try {
      const story = await seedStory(s, `${rx.url}/`);
      const sub = (id: string) => s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'task.create', callback_url: `${rx.url}/h`, resource: { type: 'project', id } } } });
      assert.equal((await sub('proj1')).status, 201);
      assert.equal((await sub('proj2')).status, 403);
      mode = 'broken';
      const unavailable = await sub('proj1');
      assert.equal(unavailable.status, 503);
      assert.equal(unavailable.body.code, 'SERVICE_UNAVAILABLE');
      // At delivery time a broken hook retries (nothing sent) instead of dropping or sending.
      const eventId = await publishEvent(s, { channel: 'task.create', company_id: story.companyId, object: { id: 't1' }, resources: { project: 'proj1' } });
      const [d] = await waitForDeliveries(s, `event_id=${eventId}`, (x) => x[0]?.attempts >= 1);
      assert.match(d.last_error, /access check did not answer/);
      assert.equal(rx.received.length, 0);
      mode = 'allow';
      await waitForDeliveries(s, `event_id=${eventId}`, (x) => x[0]?.status === 'succeeded');
      assert.equal(rx.received.length, 1);
    } finally {
      await s.stop();
      await rx.close();
      await hook.close();
    }
  });
});
