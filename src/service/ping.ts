import { attemptDelivery } from '../delivery/attempt.js';
import { newTimedId } from '../domain/ids.js';
import type { TokenContext } from '../store/types.js';
import type { Core } from './context.js';
import { getSubscription } from './subscriptions.js';

export interface PingResult {
  delivered: boolean;
  status: number | null;
  duration_ms: number;
  error?: string;
  delivery_id: string;
}

/**
 * `POST /api/subs/{id}/test`: a `ping` event sent at once through the real delivery path
 * (same signing, headers, SSRF guard and attempt log), like GitHub's ping and REST Hooks'
 * intent verification. Not retried: the caller is waiting for the answer. A 410 removes the
 * subscription, as for any delivery.
 */
export async function pingSubscription(core: Core, ctx: TokenContext, id: string): Promise<PingResult> {
  const sub = await getSubscription(core, ctx, id);
  const now = core.now();
  const event = {
    id: newTimedId('evt', now),
    company_id: sub.company_id,
    channel: 'ping',
    object: { id: sub.id, zen: 'Herald is ready to notify you.', channels: sub.channels },
    links: [],
    resources: {},
    user_id: null,
    idempotency_key: null,
  };
  const claimed = await core.store.createPing(event, sub.id, sub.app_id, now, core.config.delivery.leaseMs);
  const tokens = await core.delivery.tokens.forGrants([sub.grant_id], now);
  const { outcome, result } = await attemptDelivery(
    { sender: core.delivery.sender, log: core.log, retrySchedule: [] },
    claimed,
    tokens.get(sub.grant_id)!,
    { retries: false },
  );
  await core.store.recordOutcomes([outcome]);
  return {
    delivered: outcome.kind === 'succeeded',
    status: result.statusCode,
    duration_ms: result.durationMs,
    ...(result.error ? { error: result.error } : {}),
    delivery_id: claimed.id,
  };
}
