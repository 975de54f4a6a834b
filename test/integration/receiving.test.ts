import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { Webhook } from 'standardwebhooks';
import { newSigningSecret } from '../../src/domain/standard-webhooks.js';
import { heraldExpress, heraldFastify, signRequest, signStandardWebhook, verifyStandardWebhook, type HeraldDelivery } from '../../src/sdk/index.js';
import { Receiver } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

/** Receiving, end to end: Herald's dispatcher delivers over real HTTP to real receiving apps. */

interface ReceivingApp { token: string; clientSecret: string; signingSecret: string }

/** One more app of the story's company, at `url`, granted to the story's user. */
async function addApp(s: TestServer, story: Story, name: string, url: string, signature: 'signed_request' | 'standard_webhooks'): Promise<ReceivingApp> {
  const app = await ok(s.admin('POST', '/admin/apps', { name, url, signature }), 201);
  const grant = await ok(s.admin('POST', '/admin/grants', { app_id: app.id, user_id: story.userId, scope: 'api/subs clients invoices tasks' }), 201);
  return { token: grant.access_token, clientSecret: app.client_secret, signingSecret: app.signing_secret };
}

/** Subscribes each app to `channel` at its callback, publishes one event, waits for every delivery to succeed. */
async function deliver(s: TestServer, story: Story, channel: string, targets: { app: ReceivingApp; callback: string }[]): Promise<string[]> {
  const subIds: string[] = [];
  for (const t of targets) subIds.push(await subscribe(s, t.app.token, { channel, callback_url: t.callback }));
  await publishEvent(s, { channel, company_id: story.companyId, object: { id: 'obj-1', number: 'R-1' } });
  for (const id of subIds) await waitForDeliveries(s, `subscription_id=${id}`, (ds) => ds[0]?.status === 'succeeded');
  return subIds;
}

function assertEvents(seen: HeraldDelivery[], channel: string, subIds: string[], story: Story): void {
  const type = channel.split('.')[0]!;
  const signed = seen.find((d) => d.format === 'signed_request');
  const standard = seen.find((d) => d.format === 'standard_webhooks');
  assert.ok(signed && standard, `both formats arrived: ${JSON.stringify(seen.map((d) => d.format))}`);
  assert.equal(signed.event.channel, channel);
  assert.equal(signed.event.company_id, story.companyId);
  assert.equal(signed.event.sub_id, subIds[0]);
  assert.deepEqual((signed.event.obj as Record<string, unknown>)[type], { id: 'obj-1', number: 'R-1' });
  assert.equal(typeof signed.event.access_token, 'string');
  assert.equal(standard.event.type, channel);
  const data = standard.event.data as Record<string, any>;
  assert.equal(data.sub_id, subIds[1]);
  assert.deepEqual(data.obj[type], { id: 'obj-1', number: 'R-1' });
}

/** Requests no Herald sent: wrong secrets, or no signature at all. Each must be a 401 problem. */
async function assertForgeriesRefused(url: (format: 'signed' | 'standard') => string, seen: HeraldDelivery[]): Promise<void> {
  const before = seen.length;
  const body = JSON.stringify({ type: 'client.create', timestamp: new Date().toISOString(), data: { forged: true } });
  const ts = Math.floor(Date.now() / 1000);
  const forged: [string, RequestInit, string][] = [
    [url('signed'), { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `signed_request=${signRequest({ channel: 'client.create' }, 'guessed-secret')}` }, 'signature'],
    [url('standard'), { headers: { 'content-type': 'application/json', 'webhook-id': 'msg_forged', 'webhook-timestamp': String(ts), 'webhook-signature': signStandardWebhook(newSigningSecret(), 'msg_forged', ts, body) }, body }, 'signature'],
    [url('standard'), { headers: { 'content-type': 'application/json' }, body }, 'format'],
    [url('signed'), { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'signed_request=abc.def' }, 'format'],
  ];
  for (const [target, init, reason] of forged) {
    const res = await fetch(target, { method: 'POST', ...init });
    assert.equal(res.status, 401, `${target}: ${String(init.body)}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'reason', 'status', 'title', 'type']);
    assert.equal(problem.status, 401);
    assert.equal(problem.code, 'SIGNATURE_INVALID');
    assert.equal(problem.reason, reason);
  }
  assert.equal(seen.length, before, 'no forged request reached a handler');
}

describe('receiving Herald deliveries over real HTTP', () => {
  let s: TestServer;
  let rx: Receiver;
  let story: Story;

  before(async () => {
    rx = await Receiver.start();
    s = await startServer();
    story = await seedStory(s, `${rx.url}/`, { signature: 'standard_webhooks' });
  });
  after(async () => {
    await s.stop();
    await rx.close();
  });

  test('the standardwebhooks package and verifyStandardWebhook both accept a Standard Webhooks delivery', async () => {
    const app = { token: story.token, clientSecret: story.clientSecret, signingSecret: story.signingSecret };
    assert.match(app.signingSecret, /^whsec_/);
    const [subId] = await deliver(s, story, 'client.create', [{ app, callback: `${rx.url}/hooks` }]);
    const got = rx.received.find((r) => r.path === '/hooks')!;
    const headers = got.headers as Record<string, string>;
    const [d] = await waitForDeliveries(s, `subscription_id=${subId}`, () => true);
    assert.equal(headers['webhook-id'], d.id, 'webhook-id is the delivery id');
    assert.match(headers['content-type'] ?? '', /^application\/json/);

    const reference = new Webhook(app.signingSecret).verify(got.body, headers) as Record<string, any>;
    assert.equal(reference.type, 'client.create');
    assert.deepEqual(reference.data.obj.client, { id: 'obj-1', number: 'R-1' });
    assert.deepEqual(reference, JSON.parse(got.body));
    assert.throws(() => new Webhook(newSigningSecret()).verify(got.body, headers), /No matching signature/);
    assert.throws(() => new Webhook(app.signingSecret).verify(`${got.body} `, headers), /No matching signature/);

    assert.deepEqual(verifyStandardWebhook(got.body, headers, app.signingSecret), reference);
    assert.deepEqual(verifyStandardWebhook(Buffer.from(got.body), new Headers(headers), [newSigningSecret(), app.signingSecret]), reference);
  });

  test('an Express app with heraldExpress gets the decoded event in both formats and refuses forgeries', async () => {
    const seen: HeraldDelivery[] = [];
    const web = express();
    const handler = (req: express.Request, res: express.Response) => {
      seen.push((req as express.Request & { herald: HeraldDelivery }).herald);
      res.status(204).end();
    };
    const server = await new Promise<Server>((resolve) => {
      const srv = web.listen(0, '127.0.0.1', () => resolve(srv));
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const signed = await addApp(s, story, 'Express signed', `${url}/express/`, 'signed_request');
      const standard = await addApp(s, story, 'Express standard', `${url}/express/`, 'standard_webhooks');
      // The signed_request route reads the stream itself; the standard one comes after express.raw().
      web.post('/express/signed', heraldExpress({ secret: signed.clientSecret, maxAgeSeconds: 60 }), handler);
      web.post('/express/standard', express.raw({ type: '*/*' }), heraldExpress({ secret: standard.signingSecret }), handler);

      const subIds = await deliver(s, story, 'invoice.create', [
        { app: signed, callback: `${url}/express/signed` },
        { app: standard, callback: `${url}/express/standard` },
      ]);
      assert.equal(seen.length, 2);
      assertEvents(seen, 'invoice.create', subIds, story);
      await assertForgeriesRefused((f) => `${url}/express/${f}`, seen);

      // Mounted after express.json(), the raw body is gone: a configuration error, never a pass.
      web.post('/express/parsed', express.json(), heraldExpress({ secret: standard.signingSecret }), handler);
      const parsed = await fetch(`${url}/express/parsed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(parsed.status, 500);
      assert.equal(seen.length, 2);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a Fastify app with heraldFastify gets the decoded event in both formats and refuses forgeries', async () => {
    const seen: HeraldDelivery[] = [];
    // Herald gives the secrets once the apps exist, the apps need the URL, and Fastify takes no
    // routes after listen: so the HTTP server listens first and Fastify is handed it.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const app = Fastify({ serverFactory: (handle) => server.on('request', handle) });
    try {
      const signed = await addApp(s, story, 'Fastify signed', `${url}/fastify/`, 'signed_request');
      const standard = await addApp(s, story, 'Fastify standard', `${url}/fastify/`, 'standard_webhooks');
      app.post('/plain-json', async (request) => ({ parsed: request.body }));
      // The application's own form parser (as @fastify/formbody adds): the plugin's scope must replace it.
      app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_r, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))));
      const handler = (_event: Record<string, unknown>, request: { herald: HeraldDelivery }) => void seen.push(request.herald);
      await app.register(heraldFastify, { prefix: '/fastify', path: '/signed', secret: signed.clientSecret, maxAgeSeconds: 60, handler });
      await app.register(heraldFastify, { prefix: '/fastify', path: '/standard', secret: [newSigningSecret(), standard.signingSecret], handler });
      await app.ready();
      const subIds = await deliver(s, story, 'invoice.update', [
        { app: signed, callback: `${url}/fastify/signed` },
        { app: standard, callback: `${url}/fastify/standard` },
      ]);
      assert.equal(seen.length, 2);
      assertEvents(seen, 'invoice.update', subIds, story);
      await assertForgeriesRefused((f) => `${url}/fastify/${f}`, seen);

      const plain = await fetch(`${url}/plain-json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      assert.deepEqual(await plain.json(), { parsed: { a: 1 } }, 'the raw-body parsers stay inside the plugin scope');
    } finally {
      await app.close().catch(() => undefined);
      server.closeAllConnections();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    }
  });
});
