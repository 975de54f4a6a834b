import type { Logger } from 'pino';
import { nextRetryDelay, parseRetryAfter } from '../domain/retry.js';
import type { ClaimedDelivery, DeliveryOutcome } from '../store/types.js';
import { toNotification } from './request.js';
import { noAnswer, PREPARING_FAILED, type SendResult, type Transport } from './transport.js';

export interface AttemptDeps {
  sender: Transport;
  retrySchedule: readonly number[];
  log: Logger;
}

/**
 * One attempt of one claimed delivery: sign, POST, classify. The dispatcher and the test
 * ping both come through here, so a ping exercises exactly what a real delivery does.
 * With `retries: false` (pings) a failure is final instead of scheduled again.
 */
export async function attemptDelivery(
  deps: AttemptDeps,
  d: ClaimedDelivery,
  token: { token: string; expiresAt: number },
  opts: { retries: boolean } = { retries: true },
): Promise<{ outcome: DeliveryOutcome; result: SendResult }> {
  const sub = d.subscription!;
  const startedAt = Date.now();
  let result: SendResult;
  try {
    const notification = toNotification(d.app!, {
      deliveryId: d.id,
      event: d.event,
      subscription: sub,
      company: d.company!,
      accessToken: token.token,
      tokenExpiresAt: token.expiresAt,
      now: startedAt,
    }, d.previousSecrets);
    result = await deps.sender.deliver(sub.callback_url, notification);
  } catch (err) {
    deps.log.error({ err, delivery: d.id }, 'building or sending a delivery failed');
    result = noAnswer(PREPARING_FAILED, Date.now() - startedAt);
  }
  const attempt = {
    delivery_id: d.id,
    attempt: d.attempts + 1,
    started_at: startedAt,
    duration_ms: result.durationMs,
    status_code: result.statusCode,
    error: result.error,
    response_excerpt: result.excerpt,
  };
  const code = result.statusCode;
  // Checked first: the object is built only when it is logged (every delivery comes here).
  if (deps.log.isLevelEnabled('debug')) deps.log.debug({ delivery: d.id, subscription: sub.id, status: code, ms: result.durationMs, error: result.error }, 'delivery attempt');
  const base = { id: d.id, lease: d.lease, attempt };
  if (code !== null && code >= 200 && code < 300) return { result, outcome: { kind: 'succeeded', ...base } };
  if (code === 410) return { result, outcome: { kind: 'gone', ...base, subscription_id: sub.id } };
  const end = startedAt + result.durationMs;
  const delay = opts.retries ? nextRetryDelay(deps.retrySchedule, d.attempts + 1, parseRetryAfter(result.retryAfter, end)) : null;
  return {
    result,
    outcome: delay === null ? { kind: 'failed', ...base } : { kind: 'retry', ...base, next_attempt_at: end + delay },
  };
}
