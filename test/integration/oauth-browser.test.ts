import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../support/process.js';
import { Receiver } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { declareCatalog, ok, publishEvent, waitForDeliveries } from '../support/story.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
/** Debian's chromium (installed by .ci/run). Missing, the test fails: it is never skipped. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);

let s: TestServer;
let appServer: Receiver;
let browser: Browser;

before(async () => {
  appServer = await Receiver.start((r) => (r.path.startsWith('/callback') ? { status: 200, headers: { 'content-type': 'text/html' }, body: '<h1>Connected</h1>' } : { status: 200 }));
  const port = await freePort();
  s = await startServer({ PORT: String(port), HERALD_PUBLIC_URL: `http://127.0.0.1:${port}` });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await browser?.close();
  await s.stop();
  await appServer.close();
});

test('a user signs in and consents in Chromium; the app gets a token that receives a delivery', async () => {
  await declareCatalog(s);
  const company = await ok(s.admin('POST', '/admin/companies', { name: 'Acme Corp', sub_domain: 'acme' }), 201);
  await ok(s.admin('PUT', `/admin/companies/${company.id}/roles/sales`, { permissions: { clients: ['create', 'read', 'update'], invoices: ['read', 'create'] } }), 200);
  await ok(s.admin('POST', `/admin/companies/${company.id}/users`, { email: 'ann@acme.test', name: 'Ann', role: 'sales', password: 'correct horse battery' }), 201);
  const redirectUri = `${appServer.url}/callback`;
  const app = await ok(s.admin('POST', '/admin/apps', { name: 'Invoice Sync', url: `${appServer.url}/`, redirect_uris: [redirectUri] }), 201);

  const as = await oauth.processDiscoveryResponse(new URL(s.url), await oauth.discoveryRequest(new URL(s.url), { algorithm: 'oauth2', ...insecure }));
  const client = { client_id: app.client_id };
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  url.search = new URLSearchParams({
    client_id: app.client_id, redirect_uri: redirectUri, response_type: 'code', state,
    scope: 'api/subs clients:create,update invoices:create',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  }).toString();

  const page = await browser.newPage();
  await page.goto(url.href);
  await page.fill('input[name="email"]', 'ann@acme.test');
  await page.fill('input[name="password"]', 'correct horse battery');
  await page.click('button[type="submit"]');
  await page.waitForSelector('button[name="decision"][value="allow"]');
  const text = await page.textContent('main');
  assert.match(text!, /Invoice Sync wants access/);
  assert.match(text!, /Acme Corp/);
  assert.match(text!, /Receive notifications when clients are created or updated/);
  assert.match(text!, /Receive notifications when invoices are created/);
  assert.match(text!, /Manage its notification subscriptions/);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL('oauth-consent.png', ARTIFACTS).pathname, fullPage: true });
  await Promise.all([page.waitForURL((u) => u.href.startsWith(redirectUri)), page.click('button[name="decision"][value="allow"]')]);

  const params = oauth.validateAuthResponse(as, client, new URL(page.url()), state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.ClientSecretBasic(app.client_secret), params, redirectUri, verifier, insecure),
  );
  const sub = await ok(s.call('POST', '/api/subs', { token: tokens.access_token, body: { sub: { channel: 'invoice.create', callback_url: `${appServer.url}/hooks` } } }), 201);
  await publishEvent(s, { channel: 'invoice.create', company_id: company.id, object: { id: 'inv-1', total: 42 } });
  await waitForDeliveries(s, `subscription_id=${sub.sub.id}`, (d) => d[0]?.status === 'succeeded');
  assert.ok(appServer.received.some((r) => r.path === '/hooks'));

  // The user sees the app on their account page and revokes it there.
  await page.goto(`${s.url}/account`);
  assert.match((await page.textContent('main'))!, /Invoice Sync/);
  await page.screenshot({ path: new URL('oauth-account.png', ARTIFACTS).pathname, fullPage: true });
  await Promise.all([page.waitForURL(`${s.url}/account`), page.click('button:has-text("Revoke")')]);
  assert.match((await page.textContent('main'))!, /No app is authorized/);
  assert.equal((await s.call('GET', '/api/subs', { token: tokens.access_token })).status, 401);
  assert.equal((await s.call('GET', `/api/subs/${sub.sub.id}`, { token: tokens.access_token })).status, 401);
});
