import { signJson } from '../src/domain/signature.js';

/** The secret the baselines sign with (Herald signs with each app's client_secret). */
export const BENCH_SECRET = 'bench-client-secret-0123456789abcdef';

/** What a baseline job carries: one event for one subscription. */
export interface BenchDelivery {
  id: string;
  event: { id: string; channel: string; object: { id: string; name: string }; links: unknown[] };
  sub: { id: string; callback_url: string };
}

export function benchEvent(i: number) {
  return {
    channel: 'client.create',
    object: { id: `c${i}`, name: `Client ${i}`, email: `billing${i}@example.test` },
    links: [{ rel: 'self', href: `https://api.example.test/clients/c${i}` }],
  };
}

export function benchDelivery(receiverUrl: string, event: number, sub: number): BenchDelivery {
  const e = benchEvent(event);
  return {
    id: `dlv_${event}_${sub}`,
    event: { id: `evt_${event}`, channel: e.channel, object: e.object, links: e.links },
    sub: { id: `sub_${sub}`, callback_url: `${receiverUrl}/hooks/${sub}` },
  };
}

/**
 * The request Herald would send for it: the same notification object, serialised and signed
 * with HMAC-SHA256 (signJson) per delivery, as a `signed_request` form with the same headers,
 * so the baselines do the same per-delivery work minus the storage.
 */
export function buildBenchRequest(d: BenchDelivery, now: number): { headers: Record<string, string>; body: string } {
  const payload = {
    obj: { client: d.event.object, links: d.event.links },
    channel: d.event.channel,
    event_id: d.event.id,
    sub_id: d.sub.id,
    company_id: 'co_bench',
    user_id: 'usr_bench',
    sub_domain: 'acme',
    issued_at: new Date(Math.floor(now / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
    access_token: 'hat_bench_access_token_placeholder_0123456789',
    expires: new Date(Math.floor(now / 1000) * 1000 + 3_600_000).toISOString().replace('.000Z', 'Z'),
    algorithm: 'HMAC-SHA256',
  };
  return {
    headers: {
      'user-agent': 'Herald-Bench/0.1',
      'webhook-id': d.id,
      'x-herald-channel': d.event.channel,
      'x-herald-event-id': d.event.id,
      'content-type': 'application/x-www-form-urlencoded',
    },
    // As Herald's (delivery/request.ts): hex, a dot and base64url need no form encoding.
    body: `signed_request=${signJson(JSON.stringify(payload), BENCH_SECRET)}`,
  };
}
