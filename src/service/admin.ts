import { scrypt, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { isName, normaliseResourceType, type ResourceType } from '../domain/catalog.js';
import { validateAppUrl } from '../domain/callback-url.js';
import { HeraldError } from '../domain/errors.js';
import { newId, newSecret } from '../domain/ids.js';
import type { Permissions } from '../domain/permissions.js';
import { formatScope, parseScope } from '../domain/scope.js';
import { newSigningSecret } from '../domain/standard-webhooks.js';
import { hashToken, newAccessToken } from '../delivery/tokens.js';
import type { App, Company, SignatureFormat, User } from '../store/types.js';
import type { Core } from './context.js';
import { catalogChanged } from './hot.js';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;
const SUB_DOMAIN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const EMAIL = /^[^\s@\p{Cc}]{1,64}@[^\s@\p{Cc}]{1,255}$/u;

export async function declareResourceType(
  core: Core,
  type: string,
  body: { plural: string; actions?: string[]; parents?: string[] },
): Promise<ResourceType> {
  const resource = normaliseResourceType(type, body);
  await core.store.putResourceType(resource);
  catalogChanged(core);
  return resource;
}

export async function createCompany(core: Core, body: { name: string; sub_domain: string }): Promise<Company> {
  if (!SUB_DOMAIN.test(body.sub_domain)) {
    throw new HeraldError('VALIDATION_FAILED', `sub_domain "${body.sub_domain}" must be lowercase letters, digits and inner hyphens, at most 63`);
  }
  const company: Company = { id: newId('co'), name: body.name, sub_domain: body.sub_domain, created_at: core.now() };
  await core.store.createCompany(company);
  return company;
}

export async function requireCompany(core: Core, id: string): Promise<Company> {
  const company = await core.store.getCompany(id);
  if (!company) throw new HeraldError('COMPANY_NOT_FOUND', `company "${id}" does not exist`);
  return company;
}

export async function putRole(core: Core, companyId: string, name: string, permissions: Permissions): Promise<void> {
  await requireCompany(core, companyId);
  if (!isName(name)) throw new HeraldError('VALIDATION_FAILED', `role name "${name}" must be lowercase letters, digits and underscores`);
  const plurals = new Set((await core.catalog()).map((t) => t.plural));
  for (const [plural, actions] of Object.entries(permissions)) {
    if (!plurals.has(plural)) throw new HeraldError('RESOURCE_TYPE_UNKNOWN', `"${plural}" is not the plural of a declared resource type`);
    for (const a of actions) if (!isName(a)) throw new HeraldError('VALIDATION_FAILED', `action "${a}" of "${plural}" is not a valid name`);
  }
  await core.store.putRole({ company_id: companyId, name, permissions });
}

async function requireRole(core: Core, companyId: string, role: string): Promise<void> {
  if (!(await core.store.getRole(companyId, role))) {
    throw new HeraldError('ROLE_UNKNOWN', `role "${role}" is not defined in company "${companyId}"; PUT /admin/companies/${companyId}/roles/${role} first`);
  }
}

/** scrypt (N=16384, r=8, p=1), salted: `scrypt$<salt b64>$<hash b64>`. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against `hashPassword`'s output, in constant time. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const [kind, salt, hash] = (stored ?? '').split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length);
  return timingSafeEqual(actual, expected);
}

export async function createUser(
  core: Core,
  companyId: string,
  body: { email: string; name?: string; role: string; password?: string },
): Promise<User> {
  await requireCompany(core, companyId);
  if (!EMAIL.test(body.email)) throw new HeraldError('VALIDATION_FAILED', `email "${body.email}" is not an email address`);
  await requireRole(core, companyId, body.role);
  if (body.password !== undefined && (body.password.length < 8 || body.password.length > 200)) {
    throw new HeraldError('VALIDATION_FAILED', 'password must be 8 to 200 characters');
  }
  const now = core.now();
  const user: User = {
    id: newId('usr'),
    company_id: companyId,
    email: body.email.toLowerCase(),
    name: body.name ?? body.email,
    role: body.role,
    created_at: now,
    updated_at: now,
  };
  await core.store.createUser(user, body.password === undefined ? null : await hashPassword(body.password));
  return user;
}

/** Changes a user's role and/or password (at least one). */
export async function updateUser(core: Core, companyId: string, userId: string, body: { role?: string; password?: string }): Promise<User> {
  await requireCompany(core, companyId);
  if (body.role === undefined && body.password === undefined) throw new HeraldError('VALIDATION_FAILED', 'give a role, a password, or both');
  const missing = () => new HeraldError('USER_NOT_FOUND', `user "${userId}" does not exist in company "${companyId}"`);
  if (body.role !== undefined) await requireRole(core, companyId, body.role);
  if (body.password !== undefined) {
    if (body.password.length < 8 || body.password.length > 200) throw new HeraldError('VALIDATION_FAILED', 'password must be 8 to 200 characters');
    if (!(await core.store.getUser(companyId, userId))) throw missing();
    await core.store.setUserPassword(companyId, userId, await hashPassword(body.password), core.now());
  }
  const user = body.role !== undefined ? await core.store.setUserRole(companyId, userId, body.role, core.now()) : await core.store.getUser(companyId, userId);
  if (!user) throw missing();
  return user;
}

export async function createApp(
  core: Core,
  body: { name: string; url: string; redirect_uris?: string[]; signature?: SignatureFormat; public_client?: boolean },
): Promise<App> {
  const url = validateAppUrl(body.url, core.config.allowPrivateCallbacks);
  const redirectUris = (body.redirect_uris ?? []).map((uri) => {
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw new HeraldError('URL_INVALID', `redirect_uri "${uri}" is not an absolute URL`);
    }
    if (parsed.hash || uri.includes('#')) throw new HeraldError('URL_INVALID', `redirect_uri "${uri}" must not have a fragment`);
    if (!redirectSchemeAllowed(parsed, core.config.allowPrivateCallbacks)) {
      throw new HeraldError('URL_INVALID', `redirect_uri "${uri}" must be https, http on loopback, or a private-use scheme like com.example.app:/callback`);
    }
    return uri;
  });
  const app: App = {
    id: newId('app'),
    name: body.name,
    url,
    redirect_uris: redirectUris,
    signature: body.signature ?? 'signed_request',
    client_id: newId('app').replace(/^app_/, 'cid_'),
    client_secret: newSecret(),
    signing_secret: newSigningSecret(),
    public_client: body.public_client ?? false,
    created_at: core.now(),
  };
  await core.store.createApp(app);
  return app;
}

export const MAX_GRACE_SECONDS = 7 * 86400;

/**
 * Rotates the secrets that sign an app's deliveries without downtime: the old ones keep
 * signing alongside the new until the grace period ends (default 24 h, at most 7 days).
 * A Standard Webhooks app gets a new `signing_secret`; a signed_request app, whose
 * signatures are keyed with its `client_secret`, gets both a new `client_secret` and a new
 * `signing_secret`.
 */
export async function rotateAppSecret(core: Core, appId: string, graceSeconds = 86400) {
  if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
    throw new HeraldError('VALIDATION_FAILED', `grace_period_seconds must be an integer from 0 to ${MAX_GRACE_SECONDS}`);
  }
  const app = await core.store.getApp(appId);
  if (!app) throw new HeraldError('APP_NOT_FOUND', `app "${appId}" does not exist`);
  const now = core.now();
  const graceUntil = now + graceSeconds * 1000;
  const signingSecret = newSigningSecret();
  await core.store.rotateAppSecret(app.id, 'signing', signingSecret, graceUntil, now);
  let clientSecret: string | undefined;
  if (app.signature === 'signed_request') {
    clientSecret = newSecret();
    await core.store.rotateAppSecret(app.id, 'client', clientSecret, graceUntil, now);
  }
  return {
    signing_secret: signingSecret,
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    previous_secrets_expire_at: new Date(graceUntil).toISOString(),
  };
}

/**
 * Redirect URIs per RFC 8252 and the OAuth security BCP: https; http only on a loopback
 * host (native apps) or when private callbacks are allowed; or a private-use scheme in
 * reverse-domain form (`com.example.app:`). Never javascript:, data:, file: and the like.
 */
function redirectSchemeAllowed(url: URL, allowPrivate: boolean): boolean {
  if (url.protocol === 'https:') return true;
  if (url.protocol === 'http:') return allowPrivate || ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  return /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(url.protocol);
}

export interface IssuedGrant {
  grant_id: string;
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** A grant for one user of one company to one app, with its first access token. */
export async function createGrant(core: Core, body: { app_id: string; user_id: string; scope: string }): Promise<IssuedGrant> {
  const app = await core.store.getApp(body.app_id);
  if (!app) throw new HeraldError('APP_NOT_FOUND', `app "${body.app_id}" does not exist`);
  const user = await core.store.getUserById(body.user_id);
  if (!user) throw new HeraldError('USER_NOT_FOUND', `user "${body.user_id}" does not exist`);
  const scope = formatScope(parseScope(body.scope));
  const now = core.now();
  const token = newAccessToken();
  const grantId = newId('grt');
  await core.store.createGrant(
    { id: grantId, app_id: app.id, user_id: user.id, company_id: user.company_id, scope, created_at: now, revoked_at: null },
    { hash: hashToken(token), grant_id: grantId, expires_at: now + core.config.accessTokenTtlMs, created_at: now },
  );
  return { grant_id: grantId, access_token: token, token_type: 'Bearer', expires_in: Math.floor(core.config.accessTokenTtlMs / 1000), scope };
}

export async function revokeGrant(core: Core, grantId: string): Promise<void> {
  if (!(await core.store.revokeGrant(grantId, core.now()))) {
    throw new HeraldError('GRANT_NOT_FOUND', `grant "${grantId}" does not exist or is already revoked`);
  }
}
