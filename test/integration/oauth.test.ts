import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { PageDriver } from '../support/browser.js';
import { freePort } from '../support/process.js';
import { Receiver } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { declareCatalog, ok, publishEvent, waitForDeliveries } from '../support/story.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

describe('OAuth 2.0 authorization code flow with PKCE', () => {
  let s: TestServer;
  let rx: Receiver;
  let as: oauth.AuthorizationServer;
  let companyId: string;
  let other: string;
  let app: { client_id: string; client_secret: string; id: string };
  const redirectUri = 'http://127.0.0.1:9/callback';

  before(async () => {
    rx = await Receiver.start();
    const port = await freePort();
    s = await startServer({ PORT: String(port), HERALD_PUBLIC_URL: `http://127.0.0.1:${port}` });
    await declareCatalog(s);
    companyId = (await ok(s.admin('POST', '/admin/companies', { name: 'Acme', sub_domain: 'acme' }), 201)).id;
    other = (await ok(s.admin('POST', '/admin/companies', { name: 'Globex', sub_domain: 'globex' }), 201)).id;
    for (const c of [companyId, other]) {
      await ok(s.admin('PUT', `/admin/companies/${c}/roles/admin`, { permissions: { clients: ['create', 'read', 'update', 'delete'], invoices: ['read'] } }), 200);
    }
    await ok(s.admin('POST', `/admin/companies/${companyId}/users`, { email: 'ann@acme.test', role: 'admin', password: 'correct horse' }), 201);
    await ok(s.admin('POST', `/admin/companies/${other}/users`, { email: 'gus@globex.test', role: 'admin', password: 'globex pass' }), 201);
    app = await ok(s.admin('POST', '/admin/apps', { name: 'Sync & Co', url: `${rx.url}/`, redirect_uris: [redirectUri] }), 201);
    as = await oauth.processDiscoveryResponse(new URL(s.url.replace('127.0.0.1', '127.0.0.1')), await oauth.discoveryRequest(new URL(`http://127.0.0.1:${port}`), { algorithm: 'oauth2', ...insecure }));
  });
  after(async () => {
    await s.stop();
    await rx.close();
  });

  /** Sign in and decide on the consent page; returns where Herald sent the browser. */
  async function authorize(opts: { email?: string; password?: string; decision?: 'allow' | 'deny'; scope?: string; verifier?: string; extra?: Record<string, string> } = {}) {
    const verifier = opts.verifier ?? oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint!);
    for (const [k, v] of Object.entries({
      client_id: app.client_id, redirect_uri: redirectUri, response_type: 'code', scope: opts.scope ?? 'api/subs clients',
      state, code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...opts.extra,
    })) url.searchParams.set(k, v);
    const browser = new PageDriver(s.url);
    const signIn = await browser.get(url.pathname + url.search);
    assert.equal(signIn.status, 200, signIn.html);
    const login = await browser.post('/oauth/login', { ...PageDriver.hiddenFields(signIn.html, '/oauth/login'), email: opts.email ?? 'ann@acme.test', password: opts.password ?? 'correct horse' });
    assert.equal(login.status, 303, login.html);
    const consent = await browser.get(login.location!);
    assert.equal(consent.status, 200);
    const decided = await browser.post('/oauth/authorize', { ...PageDriver.hiddenFields(consent.html, '/oauth/authorize'), decision: opts.decision ?? 'allow' });
    assert.equal(decided.status, 303);
    return { location: new URL(decided.location!), state, verifier, consent: consent.html, browser };
  }

  test('metadata (RFC 8414) names every endpoint', async () => {
    assert.equal(as.issuer, s.url);
    assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'revocation_endpoint', 'introspection_endpoint'] as const) assert.ok(as[k]?.startsWith(s.url));
  });

  test('oauth4webapi completes the flow, and the token subscribes and receives a delivery', async () => {
    const { location, state, verifier, consent } = await authorize();
    assert.match(consent, /Sync &amp; Co/);
    assert.match(consent, /Acme/);
    assert.match(consent, /Receive notifications when clients are created, updated or deleted/);
    assert.match(consent, /Manage its notification subscriptions/);
    const client = { client_id: app.client_id };
    const params = oauth.validateAuthResponse(as, client, location, state);
    const res = await oauth.authorizationCodeGrantRequest(as, client, oauth.ClientSecretBasic(app.client_secret), params, redirectUri, verifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
    assert.equal(tokens.token_type, 'bearer');
    assert.ok(tokens.expires_in! > 3590 && tokens.expires_in! <= 3600, String(tokens.expires_in));
    assert.equal(tokens.scope, 'api/subs clients');
    assert.ok(tokens.refresh_token);

    const created = await ok(s.call('POST', '/api/subs', { token: tokens.access_token, body: { sub: { channel: 'client.create', callback_url: `${rx.url}/oauth-hook` } } }), 201);
    await publishEvent(s, { channel: 'client.create', company_id: companyId, object: { id: 'c1' } });
    await waitForDeliveries(s, `subscription_id=${created.sub.id}`, (d) => d[0]?.status === 'succeeded');

    // Refresh rotates; the old refresh token used again revokes the grant and its subscriptions.
    const refreshed = await oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.ClientSecretPost(app.client_secret), tokens.refresh_token!, insecure));
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    await ok(s.call('GET', '/api/subs', { token: refreshed.access_token }), 200);
    const reuse = await oauth.refreshTokenGrantRequest(as, client, oauth.ClientSecretPost(app.client_secret), tokens.refresh_token!, insecure);
    assert.equal(reuse.status, 400);
    assert.equal((await reuse.json()).error, 'invalid_grant');
    assert.equal((await s.call('GET', '/api/subs', { token: refreshed.access_token })).status, 401, 'grant revoked: its tokens stop');
    const ds = await waitForDeliveries(s, `subscription_id=${created.sub.id}`, () => true);
    assert.equal(ds.length, 1);
  });
});
