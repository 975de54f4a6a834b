import { parseChannel } from '../domain/catalog.js';
import { hmacHex, signBody, SIGNED_REQUEST_ALGORITHM } from '../domain/signature.js';
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

/** A request as the send thread builds it: the body as UTF-8 bytes. */
export interface OutgoingBytes {
  headers: Record<string, string>;
  body: Buffer;
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
 * A notification as the send thread builds it (buildNotification): plain data, cloned to the
 * thread with each turn's batch. Its parts come from one object per event, subscription,
 * company and app (toNotification keeps them), and a structured clone writes an object it
 * meets again in the same message as a reference: the event's JSON crosses once per batch,
 * not once per delivery.
 */
export interface Notification {
  deliveryId: string;
  event: EventPart;
  subscription: SubscriptionPart;
  company: CompanyPart;
  signer: Signer;
  accessToken: string;
  tokenExpiresAt: number;
  now: number;
}

interface EventPart {
  id: string;
  channel: string;
  /**
   * The payload's opening, `{"obj":…,"channel":…,"event_id":…`, as JSON in UTF-8, serialised
   * once per event, in an ArrayBuffer of its own. As bytes it lands in the send thread outside
   * V8's heap, whose old generation is capped (THREAD_HEAP): as a string, a turn's 256
   * deliveries of 256 different 1 MiB events took 256 MiB of it and ended the thread
   * (test/integration/delivery.test.ts).
   */
  head: Uint8Array;
  /** `,"actor_id":…`, or nothing for an event no user made. */
  actor: string;
}

interface SubscriptionPart {
  headers: Record<string, string>;
  contentType: Subscription['content_type'];
  /** `,"sub_id":…`, as the payload has it. */
  idField: string;
  /** `,"user_id":…`. */
  userField: string;
}

interface CompanyPart {
  /** `,"company_id":…`. */
  idField: string;
  /** `,"sub_domain":…`. */
  domainField: string;
}

/** The app's format and its keys: the current secret first, then those a rotation replaced and whose grace period runs. */
interface Signer {
  format: App['signature'];
  secrets: readonly string[];
}

/**
 * Each event's part, its `obj` serialised once: the deliveries of one claim share their
 * event object (store/postgres/queue.ts claimedFrom, SqliteStore.selectClaimed; on SQLite
 * the claims after it too, while ClaimCache keeps the event). Re-serialising the object per
 * delivery was most of buildRequest's 5% of Herald's time at 100 subscriptions per event.
 */
const eventParts = new WeakMap<StoredEvent, EventPart>();
const subscriptionParts = new WeakMap<Subscription, SubscriptionPart>();
const companyParts = new WeakMap<Company, CompanyPart>();
const signers = new WeakMap<App, Signer>();

function partOf<K extends object, V>(parts: WeakMap<K, V>, key: K, make: (key: K) => V): V {
  let part = parts.get(key);
  if (part === undefined) {
    part = make(key);
    parts.set(key, part);
  }
  return part;
}

/**
 * `text` as UTF-8 in an ArrayBuffer of its own: Buffer.from puts a small one in Node's shared
 * 8 KiB pool, and a structured clone copies a view's whole ArrayBuffer.
 */
function ownBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.byteLength(text));
  Buffer.from(bytes.buffer).write(text);
  return bytes;
}

/** The strings and bytes joined as UTF-8, in one allocation. */
function joinBytes(parts: readonly (string | Uint8Array)[]): Buffer {
  let size = 0;
  for (const p of parts) size += typeof p === 'string' ? Buffer.byteLength(p) : p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    if (typeof p === 'string') at += out.write(p, at);
    else {
      out.set(p, at);
      at += p.length;
    }
  }
  return out;
}

function signerOf(app: App, previousSecrets: readonly string[]): Signer {
  const current = app.signature === 'standard_webhooks' ? app.signing_secret : app.client_secret;
  const kept = signers.get(app);
  if (kept && kept.format === app.signature && kept.secrets[0] === current && kept.secrets.length === previousSecrets.length + 1 && previousSecrets.every((k, i) => kept.secrets[i + 1] === k)) return kept;
  const signer = { format: app.signature, secrets: [current, ...previousSecrets] };
  signers.set(app, signer);
  return signer;
}

/** The Notification of these facts, its parts shared with the other notifications of the same event, subscription, company and app. */
export function toNotification(app: App, f: NotificationFacts, previousSecrets: readonly string[] = []): Notification {
  return { ...unsigned(f), signer: signerOf(app, previousSecrets) };
}

/** What a notification says (its signer aside). */
function unsigned(f: NotificationFacts): Omit<Notification, 'signer'> {
  return {
    deliveryId: f.deliveryId,
    event: partOf(eventParts, f.event, eventPart),
    subscription: partOf(subscriptionParts, f.subscription, (s) => ({ headers: s.headers, contentType: s.content_type, idField: field('sub_id', s.id), userField: field('user_id', s.user_id) })),
    company: partOf(companyParts, f.company, (c) => ({ idField: field('company_id', c.id), domainField: field('sub_domain', c.sub_domain) })),
    accessToken: f.accessToken,
    tokenExpiresAt: f.tokenExpiresAt,
    now: f.now,
  };
}

/** The bytes of the event's JSON that each of its requests carries (serialised once, kept for its notifications). */
export function eventBytes(e: StoredEvent): number {
  return partOf(eventParts, e, eventPart).head.byteLength;
}

function eventPart(e: StoredEvent): EventPart {
  const head = `{"obj":${JSON.stringify(notificationObject(e))}${field('channel', e.channel)}${field('event_id', e.id)}`;
  return { id: e.id, channel: e.channel, head: ownBytes(head), actor: e.user_id ? field('actor_id', e.user_id) : '' };
}

/** `,"name":value` as JSON: one field of the payload, to follow another. */
function field(name: string, value: string): string {
  return `,"${name}":${JSON.stringify(value)}`;
}

const ALGORITHM_FIELD = field('algorithm', SIGNED_REQUEST_ALGORITHM);

/**
 * The notification as JSON bytes, `before` and `after` around it: `JSON.stringify` of
 * notificationPayload, byte for byte (test/domain/request.test.ts). The fields of the event,
 * subscription and company are JSON already (their parts keep them); only the times and the
 * token are written per delivery. Measured: building the payload object and taking `obj` and
 * `algorithm` out of it again was a quarter of buildRequest's time (bench/store-loop.ts:
 * build 18.3 -> 14.1 us per delivery with the ISO strings memoised too); serialising the
 * fields per delivery then was 1.4 KB of the send thread's 14.7 KB allocated per delivery
 * (sampling heap profiler, bench, SQLite). Writing them once per part instead, and the
 * headers as one object: build 29.9-33.1 -> 23.0-27.4 us per delivery (bench/store-loop.ts,
 * SQLite, three rounds each, on a slower machine than the figures above).
 */
function notificationJson(n: Omit<Notification, 'signer'>, withAlgorithm: boolean, before = '', after = ''): Buffer {
  const { event, subscription, company } = n;
  const tail = `${event.actor},"issued_at":"${isoSeconds(n.now)}","access_token":${JSON.stringify(n.accessToken)},"expires":"${isoSeconds(n.tokenExpiresAt)}"${withAlgorithm ? ALGORITHM_FIELD : ''}}${after}`;
  return joinBytes([before, event.head, subscription.idField, company.idField, subscription.userField, company.domainField, tail]);
}

/** The notification object of CONTRACT section 4: `obj` keys the object by its type. */
export function notificationPayload(f: NotificationFacts): Record<string, unknown> {
  const { event, subscription, company } = f;
  return {
    obj: notificationObject(event),
    channel: event.channel,
    event_id: event.id,
    sub_id: subscription.id,
    company_id: company.id,
    user_id: subscription.user_id,
    sub_domain: company.sub_domain,
    ...(event.user_id ? { actor_id: event.user_id } : {}),
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
  const req = buildNotification(toNotification(app, f, previousSecrets));
  return { headers: req.headers, body: req.body.toString('utf8') };
}

/** buildRequest from a Notification, the body as bytes: what the send thread runs (send-worker.ts). */
export function buildNotification(n: Notification): OutgoingBytes {
  // One object, written in the order the headers go out: the subscription's own headers after
  // Herald's identifying ones, the format's after those.
  const headers: Record<string, string> = Object.assign({ 'webhook-id': n.deliveryId, 'x-herald-channel': n.event.channel, 'x-herald-event-id': n.event.id }, n.subscription.headers);
  const { format, secrets } = n.signer;
  if (format === 'standard_webhooks') {
    const timestamp = Math.floor(n.now / 1000);
    const body = notificationJson(n, false, `{"type":${JSON.stringify(n.event.channel)},"timestamp":"${isoSeconds(n.now)}","data":`, '}');
    headers['content-type'] = 'application/json';
    headers['webhook-timestamp'] = String(timestamp);
    headers['webhook-signature'] = secrets.map((k) => signStandardWebhook(k, n.deliveryId, timestamp, body)).join(' ');
    return { headers, body };
  }
  const payload = notificationJson(n, true);
  if (n.subscription.contentType === 'json') {
    headers['content-type'] = 'application/json';
    headers['x-herald-signature'] = secrets.map((k) => signBody(payload, k)).join(',');
    return { headers, body: payload };
  }
  // signJson, from the bytes.
  const encoded = payload.toString('base64url');
  headers['content-type'] = 'application/x-www-form-urlencoded';
  if (secrets.length > 1) headers['x-herald-previous-signatures'] = secrets.slice(1).map((k) => hmacHex(encoded, k)).join(',');
  // Hex, a dot and base64url: every character is one encodeURIComponent leaves as it is, so
  // the form body needs no encoding. Measured (perf of Herald's main thread, bench, SQLite,
  // 100 x 3,000): encodeURIComponent (V8's Uri::Encode) scanning each body was 4.8% of the
  // thread while delivering, its largest native function.
  return { headers, body: joinBytes(['signed_request=', hmacHex(encoded, secrets[0]!), '.', encoded]) };
}
