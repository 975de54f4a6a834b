import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as oauth from 'oauth4webapi';
import { PageDriver } from '../support/browser.js';
import { freePort } from '../support/process.js';
import { startServer, type TestServer } from '../support/server.js';
import { declareCatalog, ok } from '../support/story.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const REDIRECT = 'http://127.0.0.1:9/callback';

describe('OAuth 2.0: what must be refused', () => {
  let s: TestServer;
  let as: oauth.AuthorizationServer;
  let app: { id: string; client_id: string; client_secret: string };
  let pub: { id: string; client_id: string };
  let acme: string;
  let globex: string;

  before(async () => {
    const port = await freePort();
    s = await startServer({ PORT: String(port), HERALD_PUBLIC_URL: `http://127.0.0.1:${port}` });
    await declareCatalog(s);
    acme = (await ok(s.admin('POST', '/admin/companies', { name: 'Acme', sub_domain: 'acme' }), 201)).id;
    globex = (await ok(s.admin('POST', '/admin/companies', { name: 'Globex', sub_domain: 'globex' }), 201)).id;
    for (const c of [acme, globex]) await ok(s.admin('PUT', `/admin/companies/${c}/roles/admin`, { permissions: { clients: ['create', 'read'] } }), 200);
    await ok(s.admin('POST', `/admin/companies/${acme}/users`, { email: 'ann@acme.test', role: 'admin', password: 'correct horse' }), 201);
    await ok(s.admin('POST', `/admin/companies/${globex}/users`, { email: 'gus@globex.test', role: 'admin', password: 'globex pass' }), 201);
    // The same person in both companies, with one password.
    await ok(s.admin('POST', `/admin/companies/${acme}/users`, { email: 'kim@both.test', role: 'admin', password: 'kim password' }), 201);
    await ok(s.admin('POST', `/admin/companies/${globex}/users`, { email: 'kim@both.test', role: 'admin', password: 'kim password' }), 201);
    app = await ok(s.admin('POST', '/admin/apps', { name: 'Sync', url: 'http://127.0.0.1:9/', redirect_uris: [REDIRECT] }), 201);
    pub = await ok(s.admin('POST', '/admin/apps', { name: 'SPA', url: 'http://127.0.0.1:9/', redirect_uris: [REDIRECT], public_client: true }), 201);
    as = await oauth.processDiscoveryResponse(new URL(s.url), await oauth.discoveryRequest(new URL(s.url), { algorithm: 'oauth2', ...insecure }));
  });
  after(() => s.stop());

  function authorizeUrl(params: Record<string, string>): string {
    const url = new URL('/oauth/authorize', s.url);
    for (const [k, v] of Object.entries({ client_id: app.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'api/subs clients', state: 'st-1', ...params })) url.searchParams.set(k, v);
    return url.pathname + url.search;
  }

  /** Signs in (choosing `company` when asked) and decides; returns the redirect. */
  async function flow(opts: { email?: string; password?: string; decision?: string; params?: Record<string, string>; company?: string } = {}) {
    const verifier = oauth.generateRandomCodeVerifier();
    const browser = new PageDriver(s.url);
    const signIn = await browser.get(authorizeUrl({ code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...opts.params }));
    assert.equal(signIn.status, 200, signIn.html);
    const login = await browser.post('/oauth/login', { ...PageDriver.hiddenFields(signIn.html, '/oauth/login'), email: opts.email ?? 'ann@acme.test', password: opts.password ?? 'correct horse' });
    assert.equal(login.status, 303, login.html);
    let page = await browser.get(login.location!);
    if (page.html.includes('action="/oauth/company"')) {
      assert.ok(opts.company, 'asked to choose a company');
      const pick = /<button type="submit" name="user_id" value="([^"]+)">([^<]+)<\/button>/g;
      const choice = [...page.html.matchAll(pick)].find((m) => m[2] === opts.company)!;
      const chosen = await browser.post('/oauth/company', { ...PageDriver.hiddenFields(page.html, '/oauth/company'), user_id: choice[1]! });
      page = await browser.get(chosen.location!);
    }
    const decided = await browser.post('/oauth/authorize', { ...PageDriver.hiddenFields(page.html, '/oauth/authorize'), decision: opts.decision ?? 'allow' });
    return { decided, verifier, consent: page.html, browser };
  }

  /** The callback, checked by oauth4webapi (state included), exchanged for tokens. */
  async function exchange(location: string, verifier: string, clientId = app.client_id, auth = oauth.ClientSecretBasic(app.client_secret)) {
    const params = oauth.validateAuthResponse(as, { client_id: clientId }, new URL(location), 'st-1');
    return oauth.authorizationCodeGrantRequest(as, { client_id: clientId }, auth, params, REDIRECT, verifier, insecure);
  }

  test('a wrong redirect URI is shown on a page, never redirected to', async () => {
    const res = await new PageDriver(s.url).get(authorizeUrl({ redirect_uri: 'https://evil.example/cb' }));
    assert.equal(res.status, 400);
    assert.equal(res.location, null);
    assert.match(res.html, /Invalid redirect URI/);
    const unknown = await new PageDriver(s.url).get(authorizeUrl({ client_id: 'cid_nope' }));
    assert.equal(unknown.status, 400);
  });

  test('other request errors go back to the redirect URI with the state', async () => {
    const res = await new PageDriver(s.url).get(authorizeUrl({ response_type: 'token' }));
    assert.equal(res.status, 303);
    const back = new URL(res.location!);
    assert.equal(back.origin + back.pathname, REDIRECT);
    assert.equal(back.searchParams.get('error'), 'unsupported_response_type');
    assert.equal(back.searchParams.get('state'), 'st-1');
    const scope = new URL((await new PageDriver(s.url).get(authorizeUrl({ scope: 'nonsense' }))).location!);
    assert.equal(scope.searchParams.get('error'), 'invalid_scope');
    const plain = new URL((await new PageDriver(s.url).get(authorizeUrl({ code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }))).location!);
    assert.equal(plain.searchParams.get('error'), 'invalid_request');
  });

  test('denied consent returns access_denied with the state', async () => {
    const { decided } = await flow({ decision: 'deny' });
    const back = new URL(decided.location!);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), 'st-1');
    assert.equal(back.searchParams.get('code'), null);
  });

  test('a wrong PKCE verifier is refused', async () => {
    const { decided } = await flow();
    const res = await exchange(decided.location!, oauth.generateRandomCodeVerifier());
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'invalid_grant');
  });

  test('a replayed code is refused and revokes what it issued', async () => {
    const { decided, verifier } = await flow();
    const first = await exchange(decided.location!, verifier);
    assert.equal(first.status, 200);
    const { access_token } = await first.json();
    await ok(s.call('GET', '/api/subs', { token: access_token }), 200);
    const replay = await exchange(decided.location!, verifier);
    assert.equal(replay.status, 400);
    assert.equal((await replay.json()).error, 'invalid_grant');
    assert.equal((await s.call('GET', '/api/subs', { token: access_token })).status, 401);
  });

  test("another company's user gets a grant for their own company only", async () => {
    const { decided, verifier, consent } = await flow({ email: 'gus@globex.test', password: 'globex pass' });
    assert.match(consent, /Globex/);
    assert.doesNotMatch(consent, /Acme/);
    const { access_token } = await (await exchange(decided.location!, verifier)).json();
    const intro = await fetch(as.introspection_endpoint!, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${access_token}` });
    const info = await intro.json();
    assert.equal(info.active, true);
    assert.equal(info.company_id, globex);
  });

  test('a person in several companies chooses one: the grant is for that one', async () => {
    const { decided, verifier, consent } = await flow({ email: 'kim@both.test', password: 'kim password', company: 'Globex' });
    assert.match(consent, /Globex/);
    const { access_token } = await (await exchange(decided.location!, verifier)).json();
    const info = await (await fetch(as.introspection_endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: access_token, client_id: app.client_id, client_secret: app.client_secret }) })).json();
    assert.equal(info.company_id, globex);
  });

  test('public clients must use PKCE and may not send a secret they do not have', async () => {
    const res = await new PageDriver(s.url).get(authorizeUrl({ client_id: pub.client_id }));
    assert.equal(new URL(res.location!).searchParams.get('error'), 'invalid_request');
    const { decided, verifier } = await flow({ params: { client_id: pub.client_id } });
    const tokenRes = await exchange(decided.location!, verifier, pub.client_id, oauth.None());
    assert.equal(tokenRes.status, 200);
    // A confidential client cannot skip its secret by sending a verifier.
    const conf = await flow();
    const noSecret = await exchange(conf.decided.location!, conf.verifier, app.client_id, oauth.None());
    assert.equal(noSecret.status, 400);
    assert.equal((await noSecret.json()).error, 'invalid_client');
  });

  test('forms without the CSRF token are refused', async () => {
    const browser = new PageDriver(s.url);
    const signIn = await browser.get(authorizeUrl({ code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' }));
    const fields = PageDriver.hiddenFields(signIn.html, '/oauth/login');
    const forged = await browser.post('/oauth/login', { ...fields, csrf: 'forged-token-forged-token-forged-token', email: 'ann@acme.test', password: 'correct horse' });
    assert.equal(forged.status, 403);
    const page = await browser.get(authorizeUrl({ code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' }));
    assert.match(page.html, /Sign in/, 'still signed out');
  });

  test('a user created without a password gets one with PATCH and can then sign in', async () => {
    const user = await ok(s.admin('POST', `/admin/companies/${acme}/users`, { email: 'late@acme.test', role: 'admin' }), 201);
    assert.equal((await s.admin('PATCH', `/admin/companies/${acme}/users/${user.id}`, { password: 'short' })).status, 400);
    assert.equal((await s.admin('PATCH', `/admin/companies/${acme}/users/${user.id}`, {})).status, 400);
    const patched = await ok(s.admin('PATCH', `/admin/companies/${acme}/users/${user.id}`, { password: 'a long enough one' }), 200);
    assert.equal(patched.role, 'admin');
    assert.equal(patched.password, undefined, 'never echoed');
    const { decided } = await flow({ email: 'late@acme.test', password: 'a long enough one' });
    assert.ok(new URL(decided.location!).searchParams.get('code'));
  });

  test('failed sign-ins are rate limited', async () => {
    const browser = new PageDriver(s.url);
    const signIn = await browser.get(authorizeUrl({}));
    const fields = PageDriver.hiddenFields(signIn.html, '/oauth/login');
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await browser.post('/oauth/login', { ...fields, email: 'gus@globex.test', password: `wrong ${i}` })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    assert.equal((await browser.post('/oauth/login', { ...fields, email: 'gus@globex.test', password: 'globex pass' })).status, 429, 'even the right password waits');
  });

  test('failed sign-ins are counted together by every process on the database, concurrent ones too', async () => {
    const port = await freePort();
    const other = await startServer({ DATABASE_URL: s.databaseUrl, PORT: String(port), HERALD_PUBLIC_URL: `http://127.0.0.1:${port}` }, { dir: s.dir, herald: { worker: false } });
    try {
      await ok(s.admin('POST', `/admin/companies/${acme}/users`, { email: 'lee@acme.test', role: 'admin', password: 'lee password' }), 201);
      const drivers = [new PageDriver(s.url), new PageDriver(other.url)] as const;
      const fields = await Promise.all(drivers.map(async (d) => PageDriver.hiddenFields((await d.get(authorizeUrl({}))).html, '/oauth/login')));
      const signIn = (i: number, email: string, password: string) => drivers[i % 2]!.post('/oauth/login', { ...fields[i % 2], email, password });
      // A success forgets the failures before it.
      for (let i = 0; i < 4; i++) assert.equal((await signIn(i, 'lee@acme.test', `wrong ${i}`)).status, 401);
      assert.equal((await signIn(1, 'lee@acme.test', 'lee password')).status, 303);
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await signIn(i, 'lee@acme.test', `wrong ${i}`)).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429], 'five failures in all, alternating between the two servers');
      assert.equal((await signIn(1, 'lee@acme.test', 'lee password')).status, 429, 'the other server refuses the right password too');
      // Twenty at once, half to each server: five are checked, the others refused.
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => signIn(i, 'nobody@acme.test', `guess ${i}`)));
      assert.deepEqual(burst.map((r) => r.status).sort(), [...Array(5).fill(401), ...Array(15).fill(429)]);
    } finally {
      await other.stop();
    }
  });

  test('RFC 7009: revoking the refresh token revokes the grant and its subscriptions; introspection says inactive', async () => {
    const { decided, verifier } = await flow();
    const tokens = await (await exchange(decided.location!, verifier)).json();
    const sub = await ok(s.call('POST', '/api/subs', { token: tokens.access_token, body: { sub: { channel: 'client.create', callback_url: 'http://127.0.0.1:9/h' } } }), 201);
    const basic = { authorization: `Basic ${Buffer.from(`${app.client_id}:${app.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' };
    assert.equal((await fetch(as.revocation_endpoint!, { method: 'POST', headers: basic, body: `token=${tokens.refresh_token}` })).status, 200);
    assert.equal((await s.call('GET', '/api/subs', { token: tokens.access_token })).status, 401);
    const intro = await (await fetch(as.introspection_endpoint!, { method: 'POST', headers: basic, body: `token=${tokens.access_token}` })).json();
    assert.deepEqual(intro, { active: false });
    const ds = await ok(s.admin('GET', `/admin/deliveries?subscription_id=${sub.sub.id}`), 200);
    assert.deepEqual(ds.deliveries, []);
    const unknown = await fetch(as.revocation_endpoint!, { method: 'POST', headers: basic, body: 'token=never-issued' });
    assert.equal(unknown.status, 200, 'RFC 7009: unknown tokens answer 200 too');
    const badClient = await fetch(as.revocation_endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=x&client_id=${app.client_id}&client_secret=wrong` });
    assert.equal(badClient.status, 401);
  });
});
