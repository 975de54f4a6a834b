import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import qs from 'qs';
import type { Logger } from 'pino';
import type { Core } from '../service/context.js';
import { adminGuard } from './auth.js';
import { errorHandler, problemOf, sendProblem, toProblem } from './problem.js';
import { adminCatalogRoutes } from './routes/admin-catalog.js';
import { adminTenantRoutes } from './routes/admin-tenants.js';
import { adminAppRoutes } from './routes/admin-apps.js';
import { adminEventRoutes } from './routes/admin-events.js';
import { healthRoutes } from './routes/health.js';
import { subsRoutes } from './routes/subs.js';
import { oauthRoutes } from '../oauth/routes.js';

export interface HttpDeps {
  core: Core;
  /** SHA-256 hex of the admin token. */
  adminTokenHash: string;
  /** Signs the OAuth pages' session cookies. */
  sessionSecret: string;
  logger: Logger;
}

/**
 * The Fastify app. Strict JSON-schema validation (no type coercion, no silent stripping),
 * forms parsed with qs (`sub[channel]=…`), every error through the problem+json boundary.
 */
export async function buildHttp(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.core.config.bodyLimit,
    return503OnClosing: true,
    // Ids longer than 100 characters are not ours, but they deserve a 404 problem, not the
    // router's bare 414: let them through (Node caps the whole URL at 16 KiB anyway).
    routerOptions: { maxParamLength: 16_384 },
    // The router's own errors (bad percent-encoding) go through the problem boundary too.
    frameworkErrors: (err, _request, reply) => {
      sendProblem(reply, err.code === 'FST_ERR_BAD_URL' ? problemOf('MALFORMED_REQUEST', 'the URL is not valid percent-encoding') : toProblem(err));
    },
    ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    schemaErrorFormatter(errors, dataVar) {
      const text = errors
        .map((e) => {
          const extra = (e.params as { additionalProperty?: string }).additionalProperty;
          return `${dataVar}${e.instancePath} ${e.message ?? 'is invalid'}${extra ? ` ("${extra}")` : ''}`;
        })
        .join('; ');
      return new Error(text);
    },
  });

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, qs.parse(body as string, { depth: 4, parameterLimit: 200, arrayLimit: 100, allowPrototypes: false, plainObjects: true }));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, problemOf('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );

  await app.register(healthRoutes(deps.core));
  await app.register(async (admin) => {
    admin.addHook('onRequest', adminGuard(deps.adminTokenHash));
    await admin.register(adminCatalogRoutes(deps.core));
    await admin.register(adminTenantRoutes(deps.core));
    await admin.register(adminAppRoutes(deps.core));
    await admin.register(adminEventRoutes(deps.core));
  }, { prefix: '/admin' });
  await app.register(subsRoutes(deps.core), { prefix: '/api/subs' });
  await app.register(oauthRoutes({ core: deps.core, sessionSecret: deps.sessionSecret }));
  return app;
}
