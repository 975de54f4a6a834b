import type { FastifyPluginAsync } from 'fastify';
import type { Core } from '../../service/context.js';
import { problemOf, sendProblem } from '../problem.js';

export const healthRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      await core.store.ping();
      return { status: 'ready', engine: core.store.engine };
    } catch (err) {
      request.log.warn({ err }, 'store not reachable');
      return sendProblem(reply, problemOf('SERVICE_UNAVAILABLE', 'the store is not reachable'));
    }
  });
};
