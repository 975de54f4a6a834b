import type { ResourceRef } from './domain/subscription.js';

/** What the host is asked: may this user see this resource instance (for this channel)? */
export interface AccessQuery {
  company_id: string;
  user_id: string;
  role: string;
  resource: ResourceRef;
  channel: string;
}

/**
 * The host's own check of instance-level visibility ("may Ann see project proj1?"),
 * consulted for subscriptions against one resource, at subscribe time and again before
 * each delivery. Resolves true/false; throws when it cannot answer (then Herald refuses
 * the subscription with 503, or retries the delivery later, never guessing either way).
 */
export type AccessCheck = (query: AccessQuery) => Promise<boolean>;

/**
 * An access check served by the host over HTTP (`HERALD_ACCESS_CHECK_URL`): Herald POSTs the
 * query as JSON; `2xx {"allowed": true}` allows, `2xx {"allowed": false}`, 403 or 404 refuse,
 * anything else (or no answer within the timeout) is "cannot answer".
 */
export function httpAccessCheck(url: string, opts: { token?: string | null; timeoutMs?: number } = {}): AccessCheck {
  return async (query) => {
    // undici is loaded on the first check, not with Herald (delivery/transport.ts says why).
    const { request } = await import('undici');
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
      body: JSON.stringify(query),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    });
    const text = await res.body.text();
    if (res.statusCode === 403 || res.statusCode === 404) return false;
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`access check answered ${res.statusCode}`);
    let allowed: unknown;
    try {
      allowed = (JSON.parse(text) as { allowed?: unknown }).allowed;
    } catch {
      throw new Error('access check did not answer JSON');
    }
    if (typeof allowed !== 'boolean') throw new Error('access check answer has no boolean "allowed"');
    return allowed;
  };
}
