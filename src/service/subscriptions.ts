import { validateCallbackUrl } from '../domain/callback-url.js';
import { HeraldError } from '../domain/errors.js';
import { newId } from '../domain/ids.js';
import { mayReceive } from '../domain/policy.js';
import { parseScope, scopeAllowsApi } from '../domain/scope.js';
import { checkHeaders, checkSelection, type ResourceRef } from '../domain/subscription.js';
import { hashToken } from '../delivery/tokens.js';
import type { BodyFormat, Owner, Subscription, TokenContext } from '../store/types.js';
import { isoTime, type Core } from './context.js';

/** Resolves a bearer token to what it acts for; 401 when unknown, revoked or expired. */
export async function authenticate(core: Core, token: string | undefined): Promise<TokenContext> {
  if (!token) throw new HeraldError('UNAUTHENTICATED', 'send an access token as "Authorization: Bearer <token>" or ?access_token=');
  const ctx = token.length <= 200 ? await core.store.findAccessToken(hashToken(token)) : null;
  if (!ctx) throw new HeraldError('UNAUTHENTICATED', 'the access token is unknown or revoked');
  if (ctx.expires_at <= core.now()) throw new HeraldError('TOKEN_EXPIRED', 'the access token has expired; get a new one');
  return ctx;
}

export function requireApiScope(ctx: TokenContext, name: string): void {
  if (!scopeAllowsApi(parseScope(ctx.grant.scope), name)) {
    throw new HeraldError('SCOPE_MISSING', `this call needs the scope "api/${name}"; the token has "${ctx.grant.scope}"`);
  }
}

const CONTENT_TYPES: Record<string, BodyFormat> = { 'application/x-www-form-urlencoded': 'form', 'application/json': 'json' };
const MEDIA_TYPES: Record<BodyFormat, string> = { form: 'application/x-www-form-urlencoded', json: 'application/json' };

const ownerOf = (ctx: TokenContext): Owner => ({ app_id: ctx.app.id, user_id: ctx.user.id, company_id: ctx.grant.company_id });

/** What an app asks for, from JSON or a form; every field optional for PATCH. */
export interface SubscriptionInput {
  channel?: string;
  channels?: string[];
  callback_url?: string;
  resource?: ResourceRef | null;
  headers?: Record<string, string>;
  /** `application/json` for signed JSON bodies (signed_request apps); default the form. */
  content_type?: string;
}

/** Every rule of CONTRACT section 3, shared by create and update. */
async function checkSubscription(
  core: Core,
  ctx: TokenContext,
  s: { channels: string[]; callback_url: string; resource: ResourceRef | null; headers: Record<string, string>; content_type: string },
) {
  const contentType = CONTENT_TYPES[s.content_type];
  if (!contentType) {
    throw new HeraldError('VALIDATION_FAILED', `content_type "${s.content_type}" must be application/x-www-form-urlencoded or application/json`);
  }
  if (ctx.app.signature === 'standard_webhooks' && contentType !== 'json') {
    throw new HeraldError('CONTENT_TYPE_UNSUPPORTED', 'a Standard Webhooks app always receives application/json');
  }
  const catalog = await core.catalog();
  const channels = checkSelection(catalog, s.channels, s.resource);
  const scope = parseScope(ctx.grant.scope);
  const role = await core.store.getRole(ctx.grant.company_id, ctx.user.role);
  for (const channel of channels) {
    const decision = mayReceive(catalog, channel, { scope, permissions: role?.permissions ?? null, roleName: ctx.user.role, revoked: false });
    if (!decision.ok) throw new HeraldError(decision.code, decision.reason);
  }
  const callbackUrl = validateCallbackUrl(s.callback_url, ctx.app.url, core.config.allowPrivateCallbacks);
  if (s.resource && core.accessCheck) {
    for (const channel of channels) {
      let allowed: boolean;
      try {
        allowed = await core.accessCheck({ company_id: ctx.grant.company_id, user_id: ctx.user.id, role: ctx.user.role, resource: s.resource, channel });
      } catch (err) {
        core.log.warn({ err }, 'access check failed at subscribe time');
        throw new HeraldError('SERVICE_UNAVAILABLE', "the host's access check did not answer; try again");
      }
      if (!allowed) throw new HeraldError('RESOURCE_FORBIDDEN', `the host does not let this user see ${s.resource.type} "${s.resource.id}"`);
    }
  }
  return { channels, callback_url: callbackUrl, resource: s.resource, headers: checkHeaders(s.headers), content_type: contentType };
}

function channelsOf(input: SubscriptionInput): string[] | undefined {
  if (input.channels !== undefined && input.channel !== undefined) {
    throw new HeraldError('VALIDATION_FAILED', 'give either "channel" or "channels", not both');
  }
  return input.channels ?? (input.channel === undefined ? undefined : [input.channel]);
}

export async function createSubscription(core: Core, ctx: TokenContext, input: SubscriptionInput): Promise<Subscription> {
  const channels = channelsOf(input);
  if (!channels) throw new HeraldError('VALIDATION_FAILED', 'sub.channel (or sub.channels) is required');
  if (input.callback_url === undefined) throw new HeraldError('VALIDATION_FAILED', 'sub.callback_url is required');
  const checked = await checkSubscription(core, ctx, {
    channels,
    callback_url: input.callback_url,
    resource: input.resource ?? null,
    headers: input.headers ?? {},
    content_type: input.content_type ?? (ctx.app.signature === 'standard_webhooks' ? 'application/json' : 'application/x-www-form-urlencoded'),
  });
  const now = core.now();
  const sub: Subscription = { id: newId('sub'), grant_id: ctx.grant.id, ...ownerOf(ctx), ...checked, created_at: now, updated_at: now };
  await core.store.createSubscription(sub);
  return sub;
}

export async function getSubscription(core: Core, ctx: TokenContext, id: string): Promise<Subscription> {
  const sub = await core.store.getSubscription(ownerOf(ctx), id);
  if (!sub) throw new HeraldError('SUBSCRIPTION_NOT_FOUND', `subscription "${id}" does not exist`);
  return sub;
}

export function listSubscriptions(core: Core, ctx: TokenContext): Promise<Subscription[]> {
  return core.store.listSubscriptions(ownerOf(ctx));
}

/** Changes what is given (channels, callback URL, resource, headers) under the create rules; the id stays. */
export async function updateSubscription(core: Core, ctx: TokenContext, id: string, input: SubscriptionInput): Promise<Subscription> {
  const current = await getSubscription(core, ctx, id);
  const checked = await checkSubscription(core, ctx, {
    channels: channelsOf(input) ?? current.channels,
    callback_url: input.callback_url ?? current.callback_url,
    resource: input.resource === undefined ? current.resource : input.resource,
    headers: input.headers ?? current.headers,
    content_type: input.content_type ?? MEDIA_TYPES[current.content_type],
  });
  const updated: Subscription = { ...current, ...checked, updated_at: core.now() };
  if (!(await core.store.updateSubscription(ownerOf(ctx), updated))) {
    throw new HeraldError('SUBSCRIPTION_NOT_FOUND', `subscription "${id}" does not exist`);
  }
  return updated;
}

export async function deleteSubscription(core: Core, ctx: TokenContext, id: string): Promise<void> {
  if (!(await core.store.deleteSubscription(ownerOf(ctx), id, 'subscription deleted', core.now()))) {
    throw new HeraldError('SUBSCRIPTION_NOT_FOUND', `subscription "${id}" does not exist`);
  }
}

/** The API shape of a subscription. Header values are write-only: only their names are shown. */
export function subscriptionView(s: Subscription) {
  return {
    id: s.id,
    channel: s.channels[0],
    channels: s.channels,
    callback_url: s.callback_url,
    resource: s.resource,
    headers: Object.fromEntries(Object.keys(s.headers).map((k) => [k, '********'])),
    content_type: MEDIA_TYPES[s.content_type],
    created_at: isoTime(s.created_at),
    updated_at: isoTime(s.updated_at),
  };
}
