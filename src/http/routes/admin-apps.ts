import type { FastifyPluginAsync } from 'fastify';
import { HeraldError } from '../../domain/errors.js';
import { createApp, createGrant, MAX_GRACE_SECONDS, revokeGrant, rotateAppSecret } from '../../service/admin.js';
import { isoTime, type Core } from '../../service/context.js';
import type { App, SignatureFormat } from '../../store/types.js';
import { shortString } from '../schemas.js';

const appView = (a: App, withSecrets: boolean) => ({
  id: a.id,
  name: a.name,
  url: a.url,
  redirect_uris: a.redirect_uris,
  signature: a.signature,
  public_client: a.public_client,
  client_id: a.client_id,
  ...(withSecrets ? { client_secret: a.client_secret, signing_secret: a.signing_secret } : {}),
  created_at: isoTime(a.created_at),
});

export const adminAppRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.post<{ Body: { name: string; url: string; redirect_uris?: string[]; signature?: SignatureFormat; public_client?: boolean } }>(
    '/apps',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name', 'url'],
          additionalProperties: false,
          properties: {
            name: shortString,
            url: { type: 'string', maxLength: 2048 },
            redirect_uris: { type: 'array', maxItems: 20, items: { type: 'string', maxLength: 2048 } },
            signature: { type: 'string', enum: ['signed_request', 'standard_webhooks'] },
            public_client: { type: 'boolean' },
          },
        },
      },
    },
    async (request, reply) => reply.code(201).send(appView(await createApp(core, request.body), true)),
  );

  app.get<{ Params: { id: string } }>('/apps/:id', async (request) => {
    const found = await core.store.getApp(request.params.id);
    if (!found) throw new HeraldError('APP_NOT_FOUND', `app "${request.params.id}" does not exist`);
    return appView(found, false);
  });

  app.post<{ Params: { id: string }; Body: { grace_period_seconds?: number } | undefined }>(
    '/apps/:id/secret/rotate',
    {
      schema: {
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { grace_period_seconds: { type: 'integer', minimum: 0, maximum: MAX_GRACE_SECONDS } },
        },
      },
    },
    async (request) => rotateAppSecret(core, request.params.id, request.body?.grace_period_seconds),
  );

  app.post<{ Body: { app_id: string; user_id: string; scope: string } }>(
    '/grants',
    {
      schema: {
        body: {
          type: 'object',
          required: ['app_id', 'user_id', 'scope'],
          additionalProperties: false,
          properties: { app_id: shortString, user_id: shortString, scope: { type: 'string', maxLength: 2000 } },
        },
      },
    },
    async (request, reply) => reply.code(201).send(await createGrant(core, request.body)),
  );

  app.delete<{ Params: { id: string } }>('/grants/:id', async (request, reply) => {
    await revokeGrant(core, request.params.id);
    return reply.code(204).send();
  });
};
