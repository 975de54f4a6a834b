import type { FastifyPluginAsync } from 'fastify';
import { HeraldError } from '../../domain/errors.js';
import { isoTime, type Core } from '../../service/context.js';
import { publish, type PublishInput } from '../../service/publish.js';
import type { Attempt, Delivery, DeliveryStatus } from '../../store/types.js';

const STATUSES: DeliveryStatus[] = ['pending', 'succeeded', 'failed', 'dropped'];

export const deliveryView = (d: Delivery) => ({
  id: d.id,
  event_id: d.event_id,
  subscription_id: d.subscription_id,
  company_id: d.company_id,
  app_id: d.app_id,
  channel: d.channel,
  status: d.status,
  attempts: d.attempts,
  next_attempt_at: d.next_attempt_at === null ? null : isoTime(d.next_attempt_at),
  last_status_code: d.last_status_code,
  ...(d.status === 'dropped' ? { reason: d.last_error } : { last_error: d.last_error }),
  created_at: isoTime(d.created_at),
  updated_at: isoTime(d.updated_at),
});

const attemptView = (a: Attempt) => ({
  attempt: a.attempt,
  started_at: isoTime(a.started_at),
  duration_ms: a.duration_ms,
  status_code: a.status_code,
  error: a.error,
  response_excerpt: a.response_excerpt,
});

export const adminEventRoutes = (core: Core): FastifyPluginAsync => async (app) => {
  app.post<{ Body: PublishInput }>(
    '/events',
    {
      schema: {
        body: {
          type: 'object',
          required: ['channel', 'company_id', 'object'],
          additionalProperties: false,
          properties: {
            channel: { type: 'string', maxLength: 127 },
            company_id: { type: 'string', maxLength: 255 },
            object: { type: 'object', required: ['id'], properties: { id: { type: ['string', 'number'] } } },
            links: { type: 'array', maxItems: 100 },
            resources: { type: 'object', maxProperties: 50, additionalProperties: { type: 'string' } },
            user_id: { type: ['string', 'null'], maxLength: 255 },
            idempotency_key: { type: ['string', 'null'], maxLength: 255 },
          },
        },
      },
    },
    async (request, reply) => {
      const result = await publish(core, request.body);
      if (result.duplicate) reply.header('idempotent-replayed', 'true');
      return reply.code(202).send({ id: result.id });
    },
  );

  app.get<{ Querystring: Record<string, string | undefined> }>('/deliveries', async (request) => {
    const q = request.query;
    for (const [k, v] of Object.entries(q)) {
      if (typeof v !== 'string') throw new HeraldError('VALIDATION_FAILED', `query parameter "${k}" must be given once`);
    }
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new HeraldError('VALIDATION_FAILED', `limit "${q.limit}" must be an integer from 1 to 1000`);
    if (q.status !== undefined && !STATUSES.includes(q.status as DeliveryStatus)) {
      throw new HeraldError('VALIDATION_FAILED', `status "${q.status}" must be one of ${STATUSES.join(', ')}`);
    }
    const deliveries = await core.store.listDeliveries({
      company_id: q.company_id,
      subscription_id: q.subscription_id,
      event_id: q.event_id,
      status: q.status as DeliveryStatus | undefined,
      limit,
    });
    return { deliveries: deliveries.map(deliveryView) };
  });

  app.get<{ Params: { id: string } }>('/deliveries/:id', async (request) => {
    const d = await core.store.getDelivery(request.params.id);
    if (!d) throw new HeraldError('NOT_FOUND', `delivery "${request.params.id}" does not exist`);
    return { delivery: { ...deliveryView(d), attempt_log: (await core.store.listAttempts(d.id)).map(attemptView) } };
  });
};
