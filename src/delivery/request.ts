import { parseChannel } from '../domain/catalog.js';
import { hmacHex, signBody, SIGNED_REQUEST_ALGORITHM, signJson } from '../domain/signature.js';
import { signStandardWebhook } from '../domain/standard-webhooks.js';
import type { App, Company, StoredEvent, Subscription } from '../store/types.js';

/** Everything a notification says, in either format. */
export interface NotificationFacts {
  deliveryId: string;
  event: StoredEvent;
  subscription: Subscription;
  company: Company;
  accessToken: string;
  tokenExpiresAt: number;
  now: number;
}

export interface OutgoingRequest {
  headers: Record<string, string>;
  body: string;
}

/** ISO 8601 to the second, `2026-11-22T10:00:00Z`, as the contract shows. */
export const isoSeconds = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** The notification object of CONTRACT section 4: `obj` keys the object by its type. */
export function notificationPayload(f: NotificationFacts): Record<string, unknown> {
  const type = parseChannel(f.event.channel)?.type ?? f.event.channel;
  return {
    obj: { [type]: f.event.object, links: f.event.links },
    channel: f.event.channel,
    event_id: f.event.id,
    sub_id: f.subscription.id,
    company_id: f.company.id,
    user_id: f.subscription.user_id,
    sub_domain: f.company.sub_domain,
    ...(f.event.user_id ? { actor_id: f.event.user_id } : {}),
    issued_at: isoSeconds(f.now),
    access_token: f.accessToken,
    expires: isoSeconds(f.tokenExpiresAt),
    algorithm: SIGNED_REQUEST_ALGORITHM,
  };
}

/**
 * Builds the POST for an app's format. `webhook-id` is the delivery id in both, so it stays
 * the same across retries and receivers can de-duplicate on it.
 *
 * `previousSecrets` are those a rotation replaced and whose grace period runs: Standard
 * Webhooks lists a `v1,` signature per secret in `webhook-signature` (the spec's way);
 * signed_request has room for one signature, so the others go, hex, comma-separated, in
 * `x-herald-previous-signatures` (the SDK checks them too). A signed_request subscription
 * that asked for JSON gets the notification itself as the body, signed in
 * `x-herald-signature: sha256=<hex>` (one per secret), GitHub's shape.
 */
export function buildRequest(app: App, f: NotificationFacts, previousSecrets: readonly string[] = []): OutgoingRequest {
  const common = {
    'webhook-id': f.deliveryId,
    'x-herald-channel': f.event.channel,
    'x-herald-event-id': f.event.id,
    ...f.subscription.headers,
  };
  const payload = notificationPayload(f);
  if (app.signature === 'standard_webhooks') {
    const timestamp = Math.floor(f.now / 1000);
    const { algorithm: _algorithm, ...data } = payload;
    const body = JSON.stringify({ type: f.event.channel, timestamp: isoSeconds(f.now), data });
    return {
      headers: {
        ...common,
        'content-type': 'application/json',
        'webhook-timestamp': String(timestamp),
        'webhook-signature': [app.signing_secret, ...previousSecrets].map((k) => signStandardWebhook(k, f.deliveryId, timestamp, body)).join(' '),
      },
      body,
    };
  }
  if (f.subscription.content_type === 'json') {
    const body = JSON.stringify(payload);
    return {
      headers: {
        ...common,
        'content-type': 'application/json',
        'x-herald-signature': [app.client_secret, ...previousSecrets].map((k) => signBody(body, k)).join(','),
      },
      body,
    };
  }
  const signed = signJson(JSON.stringify(payload), app.client_secret);
  const encoded = signed.slice(signed.indexOf('.') + 1);
  return {
    headers: {
      ...common,
      'content-type': 'application/x-www-form-urlencoded',
      ...(previousSecrets.length > 0 ? { 'x-herald-previous-signatures': previousSecrets.map((k) => hmacHex(encoded, k)).join(',') } : {}),
    },
    body: `signed_request=${encodeURIComponent(signed)}`,
  };
}
