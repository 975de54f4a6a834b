import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SignatureError, verifyHeraldDelivery, verifySignedJson } from '../../src/sdk/index.js';
import { Receiver } from '../support/receiver.js';
import { startServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe } from '../support/story.js';

test('a signed_request app can ask for signed JSON bodies', async () => {
  const rx = await Receiver.start();
  const s = await startServer();
  try {
    const story = await seedStory(s, `${rx.url}/`);
    const id = await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/json`, content_type: 'application/json' });
    assert.equal((await ok(s.call('GET', `/api/subs/${id}`, { token: story.token }), 200)).sub.content_type, 'application/json');
    await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: 'c1', name: 'Bob' } });
    await rx.waitFor(1);
    const got = rx.received[0]!;
    assert.equal(got.headers['content-type'], 'application/json');
    assert.match(String(got.headers['x-herald-signature']), /^sha256=[0-9a-f]{64}$/);
    const event = verifySignedJson(got.body, String(got.headers['x-herald-signature']), story.clientSecret);
    assert.deepEqual(event.obj, { client: { id: 'c1', name: 'Bob' }, links: [] });
    assert.equal(event.sub_id, id);
    assert.equal(verifyHeraldDelivery(Buffer.from(got.body), got.headers, { secret: story.clientSecret }).format, 'signed_json');
    assert.throws(() => verifySignedJson(got.body.replace('Bob', 'Eve'), String(got.headers['x-herald-signature']), story.clientSecret), SignatureError);
    assert.throws(() => verifySignedJson(got.body, String(got.headers['x-herald-signature']), 'wrong'), SignatureError);
    // Replay protection, as for signed_request: issued_at must be recent when asked.
    verifySignedJson(got.body, String(got.headers['x-herald-signature']), story.clientSecret, { maxAgeSeconds: 60 });
    assert.throws(
      () => verifySignedJson(got.body, String(got.headers['x-herald-signature']), story.clientSecret, { maxAgeSeconds: 60, now: Date.now() + 120_000 }),
      (e: unknown) => e instanceof SignatureError && e.reason === 'expired',
    );

    // Back to the form with PATCH; the default stays the form.
    const patched = await ok(s.call('PATCH', `/api/subs/${id}`, { token: story.token, body: { sub: { content_type: 'application/x-www-form-urlencoded' } } }), 200);
    assert.equal(patched.sub.content_type, 'application/x-www-form-urlencoded');
    const bad = await s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: `${rx.url}/x`, content_type: 'text/xml' } } });
    assert.equal(bad.status, 400);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('a Standard Webhooks app cannot ask for the form', async () => {
  const s = await startServer();
  try {
    const story = await seedStory(s, 'http://127.0.0.1:9/', { signature: 'standard_webhooks' });
    const res = await s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: 'http://127.0.0.1:9/h', content_type: 'application/x-www-form-urlencoded' } } });
    assert.equal(res.status, 422);
    assert.equal(res.body.code, 'CONTENT_TYPE_UNSUPPORTED');
    const created = await ok(s.call('POST', '/api/subs', { token: story.token, body: { sub: { channel: 'client.create', callback_url: 'http://127.0.0.1:9/h' } } }), 201);
    assert.equal(created.sub.content_type, 'application/json');
  } finally {
    await s.stop();
  }
});
