import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { channelsOf as catalogChannels } from '../../domain/catalog.js';
import { HeraldError } from '../../domain/errors.js';
import type { Core } from '../../service/context.js';
import { pingSubscription } from '../../service/ping.js';
import {
  authenticate, createSubscription, deleteSubscription, getSubscription, listSubscriptions, requireApiScope,
  subscriptionView, updateSubscription, type SubscriptionInput,
} from '../../service/subscriptions.js';
import type { TokenContext } from '../../store/types.js';
import { bearerToken } from '../auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    token: TokenContext;
  }
}

const FIELDS = new Set(['channel', 'channels', 'callback_url', 'resource', 'headers', 'content_type']);

const bad = (detail: string): never => {
  throw new HeraldError('VALIDATION_FAILED', detail);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A subscription from JSON (`{"sub": {...}}`) or a form (`sub[channel]=…`, parsed by qs into
 * the same shape). Form values are strings, so a single `sub[channels]=x` is taken as a list.
 */
export function readSubInput(body: unknown): SubscriptionInput {
  if (!isObject(body)) return bad('body must be {"sub": {...}} as JSON or sub[...] form fields');
  const sub = body.sub ?? body;
  if (!isObject(sub)) return bad('"sub" must be an object');
  if (body.sub !== undefined) for (const key of Object.keys(body)) if (key !== 'sub') bad(`unknown field "${key}" next to "sub"`);
  for (const key of Object.keys(sub)) if (!FIELDS.has(key)) bad(`sub has an unknown field "${key}"`);
  const input: SubscriptionInput = {};
  if (sub.channel !== undefined) input.channel = typeof sub.channel === 'string' ? sub.channel : bad('sub.channel must be a string');
  if (sub.channels !== undefined) {
    const list = typeof sub.channels === 'string' ? [sub.channels] : sub.channels;
    if (!Array.isArray(list) || !list.every((c) => typeof c === 'string')) bad('sub.channels must be an array of strings');
    input.channels = list as string[];
  }
  if (sub.callback_url !== undefined) {
    input.callback_url = typeof sub.callback_url === 'string' ? sub.callback_url : bad('sub.callback_url must be a string');
  }
  if (sub.resource !== undefined) {
    const r = sub.resource;
    if (r === null || r === '') input.resource = null;
    else if (isObject(r) && typeof r.type === 'string' && typeof r.id === 'string' && r.id.length > 0 && r.id.length <= 255 && Object.keys(r).length === 2) {
      input.resource = { type: r.type, id: r.id };
    } else bad('sub.resource must be {"type": "...", "id": "..."} or null');
  }
  if (sub.content_type !== undefined) {
    input.content_type = typeof sub.content_type === 'string' ? sub.content_type : bad('sub.content_type must be a string');
  }
  if (sub.headers !== undefined) {
    if (!isObject(sub.headers)) bad('sub.headers must be an object of name -> value');
    input.headers = sub.headers as Record<string, string>;
  }
  return input;
}

export const subsRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.decorateRequest('token', null as unknown as TokenContext);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    request.token = await authenticate(core, bearerToken(request));
    requireApiScope(request.token, 'subs');
  });

  app.get('/channels', async () => catalogChannels(await core.catalog()));

  app.post('/', async (request, reply) => {
    const sub = await createSubscription(core, request.token, readSubInput(request.body));
    return reply.code(201).header('location', `/api/subs/${sub.id}`).send({ sub: subscriptionView(sub) });
  });

  app.get('/', async (request) => ({ subs: (await listSubscriptions(core, request.token)).map(subscriptionView) }));

  app.get<{ Params: { id: string } }>('/:id', async (request) => ({
    sub: subscriptionView(await getSubscription(core, request.token, request.params.id)),
  }));

  const update = async (request: FastifyRequest<{ Params: { id: string } }>) => ({
    sub: subscriptionView(await updateSubscription(core, request.token, request.params.id, readSubInput(request.body))),
  });
  app.put<{ Params: { id: string } }>('/:id', update);
  app.patch<{ Params: { id: string } }>('/:id', update);

  app.post<{ Params: { id: string } }>('/:id/test', async (request) => pingSubscription(core, request.token, request.params.id));

  app.delete<{ Params: { id: string } }>('/:id', async (request, reply) => {
    await deleteSubscription(core, request.token, request.params.id);
    return reply.code(204).send();
  });
};
