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
export function isoSeconds(ms: number): string {
  const s = Math.floor(ms / 1000);
  // Each delivery asks for two seconds (issued_at and its token's expiry), and the deliveries
  // of a claim are signed within the same second or two: the last two answers are kept.
  const memo = s === lastSecond[0] ? 0 : s === lastSecond[1] ? 1 : -1;
  if (memo >= 0) return lastIso[memo]!;
  const iso = new Date(s * 1000).toISOString().replace('.000Z', 'Z');
  lastSecond[nextMemo] = s;
  lastIso[nextMemo] = iso;
  nextMemo ^= 1;
  return iso;
}
const lastSecond = [Number.NaN, Number.NaN];
const lastIso = ['', ''];
let nextMemo = 0;

/** `obj` of the notification: the event's object keyed by its type, and its links. */
function notificationObject(event: StoredEvent): Record<string, unknown> {
  const type = parseChannel(event.channel)?.type ?? event.channel;
  return { [type]: event.object, links: event.links };
}

/**
 * `obj` as JSON, serialised once per event: the deliveries of one claim share their event
 * object (store/postgres/queue.ts claimedFrom, SqliteStore.selectClaimed; on SQLite the claims
 * after it too, while ClaimCache keeps the event, and the JSON lives as long), and only the
 * rest of the payload differs per subscription. Re-serialising the object per delivery was most of
 * buildRequest's 5% of Herald's time at 100 subscriptions per event.
 */
const objectJson = new WeakMap<StoredEvent, string>();

function notificationObjectJson(event: StoredEvent): string {
  let json = objectJson.get(event);
  if (json === undefined) {
    json = JSON.stringify(notificationObject(event));
    objectJson.set(event, json);
  }
  return json;
}

/** The fields of the notification after `obj` (CONTRACT section 4), in their order. */
function notificationFields(f: NotificationFacts, withAlgorithm: boolean): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    channel: f.event.channel,
    event_id: f.event.id,
    sub_id: f.subscription.id,
    company_id: f.company.id,
    user_id: f.subscription.user_id,
    sub_domain: f.company.sub_domain,
  };
  if (f.event.user_id) fields.actor_id = f.event.user_id;
  fields.issued_at = isoSeconds(f.now);
  fields.access_token = f.accessToken;
  fields.expires = isoSeconds(f.tokenExpiresAt);
  if (withAlgorithm) fields.algorithm = SIGNED_REQUEST_ALGORITHM;
  return fields;
}

/**
 * The notification as JSON: `JSON.stringify(notificationPayload(f))`, byte for byte
 * (test/domain/request.test.ts), with `obj` spliced in as the event's JSON. Building the
 * payload object and taking `obj` and `algorithm` out of it again was a quarter of
 * buildRequest's time (bench/store-loop.ts: build 18.3 -> 14.1 us per delivery with the
 * ISO strings memoised too).
 */
function notificationJson(f: NotificationFacts, withAlgorithm: boolean): string {
  return `{"obj":${notificationObjectJson(f.event)},${JSON.stringify(notificationFields(f, withAlgorithm)).slice(1)}`;
}

/** The notification object of CONTRACT section 4: `obj` keys the object by its type. */
export function notificationPayload(f: NotificationFacts): Record<string, unknown> {
  return { obj: notificationObject(f.event), ...notificationFields(f, true) };
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
  if (app.signature === 'standard_webhooks') {
    const timestamp = Math.floor(f.now / 1000);
    const head = JSON.stringify({ type: f.event.channel, timestamp: isoSeconds(f.now) });
    const body = `${head.slice(0, -1)},"data":${notificationJson(f, false)}}`;
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
  const payload = notificationJson(f, true);
  if (f.subscription.content_type === 'json') {
    const body = payload;
    return {
      headers: {
        ...common,
        'content-type': 'application/json',
        'x-herald-signature': [app.client_secret, ...previousSecrets].map((k) => signBody(body, k)).join(','),
      },
      body,
    };
  }
  const signed = signJson(payload, app.client_secret);
  const encoded = signed.slice(signed.indexOf('.') + 1);
  return {
    headers: {
      ...common,
      'content-type': 'application/x-www-form-urlencoded',
      ...(previousSecrets.length > 0 ? { 'x-herald-previous-signatures': previousSecrets.map((k) => hmacHex(encoded, k)).join(',') } : {}),
    },
    // Hex, a dot and base64url: every character is one encodeURIComponent leaves as it is, so
    // the form body needs no encoding. Measured (perf of Herald's main thread, bench, SQLite,
    // 100 x 3,000): encodeURIComponent (V8's Uri::Encode) scanning each body was 4.8% of the
    // thread while delivering, its largest native function.
    body: `signed_request=${signed}`,
  };
}
