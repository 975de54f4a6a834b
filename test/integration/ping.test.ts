import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { verifySignedRequest } from '../../src/sdk/index.js';
import { Receiver, signedRequestOf } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, seedStory, subscribe, type Story } from '../support/story.js';

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

test('a test ping goes through the real delivery path and reports the outcome', async () => {
  const subId = await subscribe(s, story.token, { channels: ['client.create', 'client.update'], callback_url: `${rx.url}/ping-ok` });
  const res = await ok(s.call('POST', `/api/subs/${subId}/test`, { token: story.token }), 200);
  assert.equal(res.delivered, true);
  assert.equal(res.status, 200);
  assert.equal(typeof res.duration_ms, 'number');
  assert.equal(res.error, undefined);
  const got = rx.received.find((r) => r.path === '/ping-ok')!;
  const payload = verifySignedRequest(signedRequestOf(got.body), story.clientSecret);
  assert.equal(payload.channel, 'ping');
  assert.equal(payload.sub_id, subId);
  assert.deepEqual((payload.obj as { ping: { channels: string[] } }).ping.channels, ['client.create', 'client.update']);
  assert.equal(got.headers['webhook-id'], res.delivery_id);
  const detail = await ok(s.admin('GET', `/admin/deliveries/${res.delivery_id}`), 200);
  assert.equal(detail.delivery.status, 'succeeded');
  assert.equal(detail.delivery.attempt_log.length, 1, 'the ping attempt is logged like any other');
});

test('a failing endpoint is reported, not retried', async () => {
  rx.respond((r) => (r.path === '/ping-bad' ? { status: 500, body: 'nope' } : { status: 200 }));
  const subId = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/ping-bad` });
  const res = await ok(s.call('POST', `/api/subs/${subId}/test`, { token: story.token }), 200);
  assert.deepEqual([res.delivered, res.status, res.error], [false, 500, 'receiver answered 500']);
  const detail = await ok(s.admin('GET', `/admin/deliveries/${res.delivery_id}`), 200);
  assert.deepEqual([detail.delivery.status, detail.delivery.attempts], ['failed', 1]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rx.received.filter((r) => r.path === '/ping-bad').length, 1);
  rx.respond(() => ({ status: 200 }));
});

test('an unreachable endpoint answers 200 with delivered false and the error', async () => {
  rx.respond((r) => (r.path === '/ping-slow' ? { status: 200, delayMs: 2000 } : { status: 200 }));
  const subId = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/ping-slow` });
  const res = await ok(s.call('POST', `/api/subs/${subId}/test`, { token: story.token }), 200);
  assert.equal(res.delivered, false);
  assert.equal(res.status, null);
  assert.match(res.error, /timeout/);
  rx.respond(() => ({ status: 200 }));
});

test("another app's subscription cannot be pinged", async () => {
  const other = await seedStory(s, `${rx.url}/other/`, { subDomain: 'other', catalog: false });
  const subId = await subscribe(s, other.token, { channel: 'client.create', callback_url: `${rx.url}/other/h` });
  const res = await s.call('POST', `/api/subs/${subId}/test`, { token: story.token });
  assert.equal(res.status, 404);
  assert.equal(res.body.code, 'SUBSCRIPTION_NOT_FOUND');
});
