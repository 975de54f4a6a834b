import cookie from '@fastify/cookie';
import OAuth2Server from '@node-oauth/oauth2-server';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { parseScope } from '../domain/scope.js';
import { describeScope } from '../domain/scope-words.js';
import { hashToken } from '../delivery/tokens.js';
import { verifyPassword } from '../service/admin.js';
import type { Core } from '../service/context.js';
import type { App } from '../store/types.js';
import { CODE_LIFETIME_SECONDS, oauthModel, REFRESH_TOKEN_LIFETIME_SECONDS, type OAuthSubject } from './model.js';
import { accountPage, chooseCompanyPage, consentPage, errorPage, signInPage } from './pages.js';
import { Sessions, SignInLimiter } from './session.js';

const PARAMS = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'code_challenge', 'code_challenge_method'] as const;
type Params = Partial<Record<(typeof PARAMS)[number], string>>;

function paramsOf(source: unknown): Params {
  const out: Params = {};
  const src = (source ?? {}) as Record<string, unknown>;
  for (const k of PARAMS) if (typeof src[k] === 'string' && (src[k] as string).length <= 2048) out[k] = src[k] as string;
  return out;
}

/** Pages: no framing, no caching, no referrer, no script. */
function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-frame-options', 'DENY')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
    .header('referrer-policy', 'no-referrer')
    .send(body);
}

function redirectWith(reply: FastifyReply, uri: string, query: Record<string, string | undefined>): FastifyReply {
  const url = new URL(uri);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  return reply.code(303).header('location', url.href).header('cache-control', 'no-store').send();
}

type Checked = { ok: true; app: App; redirectUri: string } | { ok: false; reply: FastifyReply };

export interface OAuthDeps {
  core: Core;
  sessionSecret: string;
}

/**
 * The OAuth 2.0 authorization server (CONTRACT section 5) on @node-oauth/oauth2-server:
 * the library does the protocol (code and token grants, PKCE S256, client authentication);
 * this file does the pages around it (sign-in, company choice, consent, account) and the
 * endpoints the library lacks (RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata).
 */
export const oauthRoutes = ({ core, sessionSecret }: OAuthDeps): FastifyPluginAsync => async (app) => {
  await app.register(cookie);
  const model = oauthModel(core);
  const server = new OAuth2Server({
    model,
    authorizationCodeLifetime: CODE_LIFETIME_SECONDS,
    accessTokenLifetime: Math.floor(core.config.accessTokenTtlMs / 1000),
    refreshTokenLifetime: REFRESH_TOKEN_LIFETIME_SECONDS,
    allowEmptyState: true,
    alwaysIssueNewRefreshToken: true,
    // Client authentication is enforced by the model: confidential clients must authenticate,
    // public ones (PKCE) may not. The library would otherwise demand a secret for refresh.
    requireClientAuthentication: { refresh_token: false },
  });
  const sessions = new Sessions(sessionSecret, core.config.publicUrl.startsWith('https:'));
  const limiter = new SignInLimiter(core.store.oauth);
  const issuer = core.config.publicUrl;

  /** Client and redirect URI first: when either is bad, tell the user, never redirect. */
  async function check(params: Params, reply: FastifyReply): Promise<Checked> {
    const found = params.client_id ? await core.store.oauth.getAppByClientId(params.client_id) : null;
    if (!found) return { ok: false, reply: html(reply, 400, errorPage('Unknown app', 'This authorization link names no app registered with Herald.')) };
    const registered = found.redirect_uris;
    const redirectUri = params.redirect_uri ?? (registered.length === 1 ? registered[0] : undefined);
    if (!redirectUri || !registered.includes(redirectUri)) {
      return { ok: false, reply: html(reply, 400, errorPage('Invalid redirect URI', 'The redirect URI is missing or not registered for this app, so Herald will not send you there.')) };
    }
    const back = (error: string, description: string) =>
      ({ ok: false, reply: redirectWith(reply, redirectUri, { error, error_description: description, state: params.state }) }) as const;
    if (params.response_type !== 'code') return back('unsupported_response_type', 'only response_type=code is supported');
    if (params.code_challenge_method !== undefined && params.code_challenge_method !== 'S256') return back('invalid_request', 'code_challenge_method must be S256');
    if (params.code_challenge !== undefined && !/^[A-Za-z0-9._~-]{43,128}$/.test(params.code_challenge)) return back('invalid_request', 'code_challenge is malformed');
    if (found.public_client && (!params.code_challenge || params.code_challenge_method !== 'S256')) {
      return back('invalid_request', 'public clients must use PKCE with code_challenge_method=S256');
    }
    const scope = await model.validateScope!({}, { id: found.client_id, grants: [] }, params.scope ? params.scope.split(' ') : undefined);
    if (!scope) return back('invalid_scope', `scope "${params.scope}" is not valid`);
    return { ok: true, app: found, redirectUri };
  }

  async function sessionUsers(request: FastifyRequest) {
    const session = sessions.read(request);
    if (!session) return null;
    const users = (await Promise.all(session.uids.map((id) => core.store.getUserById(id)))).filter((u) => u !== null);
    return users.length ? { session, users } : null;
  }

  async function showAuthorize(request: FastifyRequest, reply: FastifyReply, params: Params) {
    const checked = await check(params, reply);
    if (!checked.ok) return checked.reply;
    const csrf = sessions.csrf(request, reply);
    const signedIn = await sessionUsers(request);
    const fields = params as Record<string, string>;
    if (!signedIn) return html(reply, 200, signInPage({ action: '/oauth/login', csrf, params: fields, appName: checked.app.name }));
    const chosen = signedIn.users.find((u) => u.id === signedIn.session.chosen);
    if (!chosen) {
      const choices = await Promise.all(signedIn.users.map(async (u) => ({ user_id: u.id, company: (await core.store.getCompany(u.company_id))?.name ?? u.company_id })));
      return html(reply, 200, chooseCompanyPage({ csrf, params: fields, choices }));
    }
    const company = await core.store.getCompany(chosen.company_id);
    const role = await core.store.getRole(chosen.company_id, chosen.role);
    const scopes = describeScope(parseScope(params.scope ?? ''), await core.catalog(), role?.permissions ?? null);
    return html(reply, 200, consentPage({ csrf, params: fields, appName: checked.app.name, appUrl: checked.app.url, company: company?.name ?? chosen.company_id, email: chosen.email, scopes }));
  }

  app.get('/oauth/authorize', async (request, reply) => showAuthorize(request, reply, paramsOf(request.query)));

  app.post('/oauth/login', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const params = paramsOf(body);
    const toAccount = body.return_to === 'account';
    const csrf = sessions.csrf(request, reply);
    const again = (status: number, error: string) =>
      html(reply, status, signInPage({ action: '/oauth/login', csrf, params: { ...(params as Record<string, string>), ...(toAccount ? { return_to: 'account' } : {}) }, error }));
    if (!sessions.checkCsrf(request, body.csrf)) return again(403, 'Your session expired. Please sign in again.');
    const email = typeof body.email === 'string' ? body.email.trim().toLowerCase().slice(0, 320) : '';
    const password = typeof body.password === 'string' ? body.password.slice(0, 200) : '';
    if (!(await limiter.attempt(request.ip, email))) return again(429, 'Too many failed sign-ins. Wait 15 minutes and try again.');
    const candidates = email ? await core.store.oauth.signInCandidates(email) : [];
    const matched = [];
    for (const c of candidates) if (await verifyPassword(password, c.password_hash)) matched.push(c.user);
    if (matched.length === 0) return again(401, 'The email or the password is wrong.');
    await limiter.succeeded(request.ip, email);
    sessions.write(reply, { uids: matched.map((u) => u.id), chosen: matched.length === 1 ? matched[0]!.id : null });
    if (toAccount) return reply.code(303).header('location', '/account').send();
    return reply.code(303).header('location', `/oauth/authorize?${new URLSearchParams(params as Record<string, string>)}`).send();
  });

  app.post('/oauth/company', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const params = paramsOf(body);
    const signedIn = await sessionUsers(request);
    if (!sessions.checkCsrf(request, body.csrf) || !signedIn) return html(reply, 403, errorPage('Session expired', 'Start the authorization again from the app.'));
    const choice = signedIn.users.find((u) => u.id === body.user_id);
    if (!choice) return html(reply, 400, errorPage('Unknown company', 'Choose one of the companies you belong to.'));
    sessions.write(reply, { uids: signedIn.session.uids, chosen: choice.id });
    return reply.code(303).header('location', `/oauth/authorize?${new URLSearchParams(params as Record<string, string>)}`).send();
  });

  app.post('/oauth/authorize', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const params = paramsOf(body);
    const checked = await check(params, reply);
    if (!checked.ok) return checked.reply;
    const signedIn = await sessionUsers(request);
    const chosen = signedIn?.users.find((u) => u.id === signedIn.session.chosen);
    if (!sessions.checkCsrf(request, body.csrf) || !chosen) {
      return html(reply, 403, errorPage('Session expired', 'Your sign-in or this form expired. Start the authorization again from the app.'));
    }
    if (body.decision !== 'allow') {
      return redirectWith(reply, checked.redirectUri, { error: 'access_denied', error_description: 'the user denied access', state: params.state });
    }
    const subject: OAuthSubject = { id: chosen.id, company_id: chosen.company_id };
    const req = new OAuth2Server.Request({ method: 'POST', headers: {}, query: {}, body: { ...params, redirect_uri: checked.redirectUri } });
    const res = new OAuth2Server.Response({});
    try {
      await server.authorize(req, res, { authenticateHandler: { handle: () => subject } });
    } catch (err) {
      if (!res.headers?.location) throw err;
    }
    return reply.code(303).header('location', res.headers!.location).header('cache-control', 'no-store').send();
  });

  app.post('/oauth/token', async (request, reply) => {
    const headers = { ...(request.headers as Record<string, string>) };
    const basic = basicCredentials(headers.authorization);
    if (basic === null) return reply.code(401).header('www-authenticate', 'Basic realm="herald"').send({ error: 'invalid_client', error_description: 'malformed Basic credentials' });
    if (basic) headers.authorization = `Basic ${Buffer.from(`${basic.id}:${basic.secret}`).toString('base64')}`;
    const req = new OAuth2Server.Request({ method: 'POST', headers, query: {}, body: request.body ?? {} });
    const res = new OAuth2Server.Response({});
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    try {
      await server.token(req, res);
      return reply.code(200).send(res.body);
    } catch (err) {
      return oauthError(reply, err, res);
    }
  });

  /** Client authentication for revoke/introspect: HTTP Basic or form, like the token endpoint. */
  async function client(request: FastifyRequest): Promise<App | null> {
    const body = (request.body ?? {}) as Record<string, unknown>;
    let id: unknown = body.client_id;
    let secret: unknown = body.client_secret;
    const basic = basicCredentials(request.headers.authorization);
    if (basic === null) return null;
    if (basic) ({ id, secret } = basic);
    if (typeof id !== 'string') return null;
    // undefined secret: only a public client may go without (the model decides).
    const c = await model.getClient(id, (typeof secret === 'string' ? secret : undefined) as string);
    return c ? (c.app as App) : null;
  }

  app.post('/oauth/revoke', async (request, reply) => {
    const caller = await client(request);
    if (!caller) return reply.code(401).header('www-authenticate', 'Basic realm="herald"').send({ error: 'invalid_client' });
    const token = (request.body as Record<string, unknown> | undefined)?.token;
    if (typeof token !== 'string') return reply.code(400).send({ error: 'invalid_request', error_description: 'token is required' });
    const hash = hashToken(token);
    const refresh = await core.store.oauth.findRefreshToken(hash);
    if (refresh && refresh.grant.app_id === caller.id) {
      await core.store.revokeGrant(refresh.grant.id, core.now()); // the grant, its tokens and subscriptions
    } else {
      const access = await core.store.findAccessToken(hash);
      if (access && access.app.id === caller.id) await core.store.oauth.deleteAccessToken(hash);
    }
    return reply.code(200).header('cache-control', 'no-store').send({}); // RFC 7009: 200 whether or not it existed
  });

  app.post('/oauth/introspect', async (request, reply) => {
    const caller = await client(request);
    if (!caller) return reply.code(401).header('www-authenticate', 'Basic realm="herald"').send({ error: 'invalid_client' });
    const token = (request.body as Record<string, unknown> | undefined)?.token;
    reply.header('cache-control', 'no-store');
    if (typeof token !== 'string') return reply.code(400).send({ error: 'invalid_request', error_description: 'token is required' });
    const hash = hashToken(token);
    const access = await core.store.findAccessToken(hash);
    if (access && access.app.id === caller.id && access.expires_at > core.now()) {
      return {
        active: true, token_type: 'Bearer', scope: access.grant.scope, client_id: caller.client_id, sub: access.user.id,
        company_id: access.grant.company_id, grant_id: access.grant.id, exp: Math.floor(access.expires_at / 1000), iss: issuer,
      };
    }
    const refresh = await core.store.oauth.findRefreshToken(hash);
    if (refresh && refresh.grant.app_id === caller.id && refresh.token.used_at === null && refresh.grant.revoked_at === null && refresh.token.expires_at > core.now()) {
      return {
        active: true, token_type: 'refresh_token', scope: refresh.grant.scope, client_id: caller.client_id, sub: refresh.grant.user_id,
        company_id: refresh.grant.company_id, grant_id: refresh.grant.id, exp: Math.floor(refresh.token.expires_at / 1000), iss: issuer,
      };
    }
    return { active: false };
  });

  app.get('/.well-known/oauth-authorization-server', async () => ({
    issuer,
    authorization_endpoint: `${issuer}/oauth/authorize`,
    token_endpoint: `${issuer}/oauth/token`,
    revocation_endpoint: `${issuer}/oauth/revoke`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    scopes_supported: ['api/subs', ...(await core.catalog()).map((t) => t.plural)],
    service_documentation: `${issuer}/`,
  }));

  app.get('/account', async (request, reply) => {
    const signedIn = await sessionUsers(request);
    const csrf = sessions.csrf(request, reply);
    if (!signedIn) return html(reply, 200, signInPage({ action: '/oauth/login', csrf, params: { return_to: 'account' } }));
    const grants = await core.store.oauth.listUserGrants(signedIn.users.map((u) => u.id));
    const rows = await Promise.all(grants.map(async ({ grant, app: a }) => ({
      id: grant.id, app: a.name, url: a.url, scope: grant.scope, since: new Date(grant.created_at).toISOString().slice(0, 10),
      company: (await core.store.getCompany(grant.company_id))?.name ?? grant.company_id,
    })));
    return html(reply, 200, accountPage({ csrf, email: signedIn.users[0]!.email, grants: rows }));
  });

  app.post<{ Params: { id: string } }>('/account/grants/:id/revoke', async (request, reply) => {
    const signedIn = await sessionUsers(request);
    if (!signedIn || !sessions.checkCsrf(request, (request.body as Record<string, unknown> | undefined)?.csrf)) {
      return html(reply, 403, errorPage('Session expired', 'Sign in again to manage your apps.'));
    }
    const grant = await core.store.getGrant(request.params.id);
    if (!grant || !signedIn.users.some((u) => u.id === grant.user_id)) return html(reply, 404, errorPage('Not found', 'No such authorization.'));
    await core.store.revokeGrant(grant.id, core.now());
    return reply.code(303).header('location', '/account').send();
  });

  app.post('/oauth/logout', async (request, reply) => {
    if (sessions.checkCsrf(request, (request.body as Record<string, unknown> | undefined)?.csrf)) sessions.clear(reply);
    return reply.code(303).header('location', '/account').send();
  });
};

/**
 * HTTP Basic client credentials, form-urlencoded inside as RFC 6749 section 2.3.1 requires
 * (oauth4webapi sends `cid%5Fabc`). undefined: no Basic header; null: a malformed one.
 */
function basicCredentials(header: string | undefined): { id: string; secret: string } | null | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const unform = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
  try {
    return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    return null;
  }
}

function oauthError(reply: FastifyReply, err: unknown, res: InstanceType<typeof OAuth2Server.Response>): FastifyReply {
  if (err instanceof OAuth2Server.OAuthError && !(err instanceof OAuth2Server.ServerError)) {
    for (const [k, v] of Object.entries(res.headers ?? {})) if (k.toLowerCase() === 'www-authenticate') reply.header(k, v as string);
    return reply.code(err.code).send({ error: err.name, error_description: err.message });
  }
  throw err;
}
