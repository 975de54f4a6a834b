import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchesStandardSignature } from '../../src/domain/standard-webhooks.js';
import { SignatureError, verifyHeraldDelivery, verifySignedRequest } from '../../src/sdk/index.js';
import { Receiver, signedRequestOf, type Received } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, type Story } from '../support/story.js';

async function deliverOne(s: TestServer, rx: Receiver, story: Story, objectId: string): Promise<Received> {
  const n = rx.received.length;
  await publishEvent(s, { channel: 'client.create', company_id: story.companyId, object: { id: objectId } });
  await rx.waitFor(n + 1);
  return rx.received[n]!;
}

test('Standard Webhooks: during the grace period both secrets sign; after it only the new one', async () => {
  const rx = await Receiver.start();
  const s = await startServer();
  try {
    const story = await seedStory(s, `${rx.url}/`, { signature: 'standard_webhooks' });
    await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/h` });
    const rotated = await ok(s.admin('POST', `/admin/apps/${story.appId}/secret/rotate`, { grace_period_seconds: 2 }), 200);
    assert.match(rotated.signing_secret, /^whsec_/);
    assert.notEqual(rotated.signing_secret, story.signingSecret);
    assert.equal(rotated.client_secret, undefined);

    const during = await deliverOne(s, rx, story, 'c1');
    const check = (r: Received, secret: string) =>
      matchesStandardSignature(secret, String(r.headers['webhook-id']), Number(r.headers['webhook-timestamp']), r.body, String(r.headers['webhook-signature']));
    assert.equal(String(during.headers['webhook-signature']).split(' ').length, 2);
    assert.ok(check(during, rotated.signing_secret), 'new secret verifies');
    assert.ok(check(during, story.signingSecret), 'old secret still verifies during the grace period');

    await new Promise((r) => setTimeout(r, 2100));
    const afterGrace = await deliverOne(s, rx, story, 'c2');
    assert.equal(String(afterGrace.headers['webhook-signature']).split(' ').length, 1);
    assert.ok(check(afterGrace, rotated.signing_secret));
    assert.ok(!check(afterGrace, story.signingSecret), 'old secret no longer signs');
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('signed_request: the new client_secret signs, the old one via x-herald-previous-signatures until the grace ends', async () => {
  const rx = await Receiver.start();
  const s = await startServer();
  try {
    const story = await seedStory(s, `${rx.url}/`);
    await subscribe(s, story.token, { channel: 'client.create', callback_url: `${rx.url}/h` });
    const rotated = await ok(s.admin('POST', `/admin/apps/${story.appId}/secret/rotate`, { grace_period_seconds: 2 }), 200);
    assert.ok(rotated.client_secret && rotated.client_secret !== story.clientSecret);

    const during = await deliverOne(s, rx, story, 'c1');
    const sr = signedRequestOf(during.body);
    const previous = String(during.headers['x-herald-previous-signatures']);
    assert.equal(verifySignedRequest(sr, rotated.client_secret).channel, 'client.create');
    assert.throws(() => verifySignedRequest(sr, story.clientSecret), SignatureError);
    assert.equal(verifySignedRequest(sr, story.clientSecret, { previousSignatures: previous }).channel, 'client.create');
    // The middleware's verifier reads the header itself: a receiver not yet updated keeps working.
    assert.equal(verifyHeraldDelivery(Buffer.from(during.body), during.headers, { secret: story.clientSecret }).event.channel, 'client.create');

    await new Promise((r) => setTimeout(r, 2100));
    const afterGrace = await deliverOne(s, rx, story, 'c2');
    assert.equal(afterGrace.headers['x-herald-previous-signatures'], undefined);
    assert.throws(() => verifySignedRequest(signedRequestOf(afterGrace.body), story.clientSecret), SignatureError);
    assert.throws(() => verifyHeraldDelivery(Buffer.from(afterGrace.body), afterGrace.headers, { secret: story.clientSecret }), SignatureError);
  } finally {
    await s.stop();
    await rx.close();
  }
});

test('rotation input is checked', async () => {
  const s = await startServer();
  try {
    const story = await seedStory(s, 'http://127.0.0.1:9/');
    for (const body of [{ grace_period_seconds: 604801 }, { grace_period_seconds: -1 }, { grace_period_seconds: '10' }, { other: 1 }]) {
      const res = await s.admin('POST', `/admin/apps/${story.appId}/secret/rotate`, body);
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    assert.equal((await s.admin('POST', '/admin/apps/app_nope/secret/rotate', {})).status, 404);
    const res = await s.call('POST', `/admin/apps/${story.appId}/secret/rotate`, { headers: { authorization: 'Bearer test-admin-token-0123456789' } });
    assert.equal(res.status, 200, 'no body means the default grace period');
  } finally {
    await s.stop();
  }
});
