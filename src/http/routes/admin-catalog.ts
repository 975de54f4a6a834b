import type { FastifyPluginAsync } from 'fastify';
import { declareResourceType } from '../../service/admin.js';
import type { Core } from '../../service/context.js';
import { nameList } from '../schemas.js';

export const adminCatalogRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.put<{ Params: { type: string }; Body: { plural: string; actions?: string[]; parents?: string[] } }>(
    '/resources/:type',
    {
      schema: {
        body: {
          type: 'object',
          required: ['plural'],
          additionalProperties: false,
          properties: { plural: { type: 'string', maxLength: 63 }, actions: nameList, parents: nameList },
        },
      },
    },
    async (request) => declareResourceType(core, request.params.type, request.body),
  );

  app.get('/resources', async () => ({ resources: await core.store.listResourceTypes() }));
};
