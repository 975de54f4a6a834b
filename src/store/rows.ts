import type { ResourceType } from '../domain/catalog.js';
import type { App, ClaimedDelivery, Company, Delivery, Grant, Role, StoredEvent, Subscription, User } from './types.js';

/**
 * Row <-> record mapping shared by every engine: JSON columns are text on SQLite and on
 * PostgreSQL alike, times are epoch milliseconds (BIGINT arrives as a string from pg).
 */
type Row = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const str = (v: unknown): string => String(v);
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const json = <T>(v: unknown): T => JSON.parse(String(v)) as T;

export const toResourceType = (r: Row): ResourceType => ({
  type: str(r.type),
  plural: str(r.plural),
  actions: json<string[]>(r.actions),
  parents: json<string[]>(r.parents),
});

export const toCompany = (r: Row): Company => ({
  id: str(r.id),
  name: str(r.name),
  sub_domain: str(r.sub_domain),
  created_at: num(r.created_at),
});

export const toRole = (r: Row): Role => ({
  company_id: str(r.company_id),
  name: str(r.name),
  permissions: json(r.permissions),
});

export const toUser = (r: Row): User => ({
  id: str(r.id),
  company_id: str(r.company_id),
  email: str(r.email),
  name: str(r.name),
  role: str(r.role),
  created_at: num(r.created_at),
  updated_at: num(r.updated_at),
});

export const toApp = (r: Row): App => ({
  id: str(r.id),
  name: str(r.name),
  url: str(r.url),
  redirect_uris: json<string[]>(r.redirect_uris),
  signature: str(r.signature) as App['signature'],
  client_id: str(r.client_id),
  client_secret: str(r.client_secret),
  signing_secret: str(r.signing_secret),
  public_client: r.public_client === true || Number(r.public_client) === 1,
  created_at: num(r.created_at),
});

export const toGrant = (r: Row): Grant => ({
  id: str(r.id),
  app_id: str(r.app_id),
  user_id: str(r.user_id),
  company_id: str(r.company_id),
  scope: str(r.scope),
  created_at: num(r.created_at),
  revoked_at: numOrNull(r.revoked_at),
});

export const toSubscription = (r: Row): Subscription => ({
  id: str(r.id),
  grant_id: str(r.grant_id),
  app_id: str(r.app_id),
  user_id: str(r.user_id),
  company_id: str(r.company_id),
  channels: json<string[]>(r.channels),
  callback_url: str(r.callback_url),
  resource: r.resource_type === null || r.resource_type === undefined ? null : { type: str(r.resource_type), id: str(r.resource_id) },
  headers: json<Record<string, string>>(r.headers),
  content_type: r.content_type === 'json' ? 'json' : 'form',
  created_at: num(r.created_at),
  updated_at: num(r.updated_at),
});

export const eventBody = (e: Pick<StoredEvent, 'object' | 'links' | 'resources'>): string =>
  JSON.stringify({ object: e.object, links: e.links, resources: e.resources });

export const toEvent = (r: Row): StoredEvent => {
  const body = json<Pick<StoredEvent, 'object' | 'links' | 'resources'>>(r.body);
  return {
    id: str(r.id),
    company_id: str(r.company_id),
    channel: str(r.channel),
    object: body.object,
    links: body.links,
    resources: body.resources,
    user_id: strOrNull(r.user_id),
    idempotency_key: strOrNull(r.idempotency_key),
    created_at: num(r.created_at),
  };
};

export const toDelivery = (r: Row): Delivery => ({
  id: str(r.id),
  event_id: str(r.event_id),
  subscription_id: str(r.subscription_id),
  company_id: str(r.company_id),
  app_id: str(r.app_id),
  channel: str(r.channel),
  status: str(r.status) as Delivery['status'],
  attempts: num(r.attempts),
  next_attempt_at: numOrNull(r.next_attempt_at),
  last_status_code: numOrNull(r.last_status_code),
  last_error: strOrNull(r.last_error),
  created_at: num(r.created_at),
  updated_at: num(r.updated_at),
});

/** `s.id AS s__id, s.name AS s__name, …`: lets one joined row carry several tables. */
export function prefixed(alias: string, columns: readonly string[]): string {
  return columns.map((c) => `${alias}.${c} AS ${alias}__${c}`).join(', ');
}

/** The columns of one table out of a joined row, or null when the LEFT JOIN found nothing. */
export function unprefix(row: Row, alias: string): Row | null {
  const out: Row = {};
  const p = `${alias}__`;
  for (const [k, v] of Object.entries(row)) if (k.startsWith(p)) out[k.slice(p.length)] = v;
  return out.id === null || out.id === undefined ? null : out;
}

export const COLUMNS = {
  events: ['id', 'company_id', 'channel', 'body', 'user_id', 'idempotency_key', 'created_at'],
  subscriptions: ['id', 'grant_id', 'app_id', 'user_id', 'company_id', 'channels', 'callback_url', 'resource_type', 'resource_id', 'headers', 'content_type', 'created_at', 'updated_at'],
  apps: ['id', 'name', 'url', 'redirect_uris', 'signature', 'client_id', 'client_secret', 'signing_secret', 'public_client', 'created_at'],
  grants: ['id', 'app_id', 'user_id', 'company_id', 'scope', 'created_at', 'revoked_at'],
  companies: ['id', 'name', 'sub_domain', 'created_at'],
  users: ['id', 'company_id', 'email', 'name', 'role', 'created_at', 'updated_at'],
} as const;

/** What a claim reads of each claimed delivery's own row: the rows it names go by these ids. */
export interface ClaimKey {
  id: string;
  attempts: number;
  event_id: string;
  subscription_id: string;
  app_id: string;
  company_id: string;
}

/** The rows a claim's deliveries name, each read once per claim (both engines' claims). */
export interface ClaimRows {
  events: Map<string, StoredEvent>;
  subscriptions: Map<string, Subscription>;
  apps: Map<string, App>;
  grants: Map<string, Grant>;
  companies: Map<string, Company>;
  users: Map<string, User>;
  role: (user: User) => Role | null;
  previousSecrets: (appId: string) => string[];
}

/**
 * The claimed deliveries of `keys`, sharing the rows they name (none is mutated downstream),
 * as a join of the tables had it: a delivery whose event is gone is left out (an inner join);
 * a deleted subscription, app, grant, company, user or role is null (left joins), and the
 * dispatcher drops the delivery with the reason. The grant and user are the subscription's.
 */
export function claimedDeliveries(lease: string, keys: readonly ClaimKey[], rows: ClaimRows): ClaimedDelivery[] {
  const out: ClaimedDelivery[] = [];
  for (const k of keys) {
    const event = rows.events.get(k.event_id);
    if (!event) continue;
    const subscription = rows.subscriptions.get(k.subscription_id) ?? null;
    const app = rows.apps.get(k.app_id) ?? null;
    const user = subscription ? (rows.users.get(subscription.user_id) ?? null) : null;
    out.push({
      id: k.id,
      lease,
      attempts: Number(k.attempts),
      event,
      subscription,
      app,
      previousSecrets: app ? rows.previousSecrets(app.id) : [],
      grant: subscription ? (rows.grants.get(subscription.grant_id) ?? null) : null,
      company: rows.companies.get(k.company_id) ?? null,
      user,
      role: user ? rows.role(user) : null,
    });
  }
  return out;
}

/**
 * `originKey(s.callback_url)` in SQL: everything up to the first slash after `scheme://`
 * (searched from the 9th character on, past `https://`), slash included. `locate` is
 * SQLite's `instr` or PostgreSQL's `strpos`.
 */
export const originSql = (locate: 'instr' | 'strpos') => `substr(s.callback_url, 1, ${locate}(substr(s.callback_url, 9), '/') + 8)`;

/**
 * Claims look this many times `limit` rows ahead for deliveries whose origins have room,
 * before stepping over origins (see the engines' claims). It was 10 while the window was all a
 * claim could see; reading 640 rows per claim was 6% of Herald's time on SQLite at 3,900
 * deliveries/s, and the step over origins now handles a head of the queue without room.
 */
export const CLAIM_WINDOW = 2;

/**
 * A publish queues the deliveries of at most this many subscriptions in its own transaction;
 * the rest of a larger fan-out is stored as a `fanouts` row (migration 008) and queued after
 * the publish has answered, this many per transaction (Store.expandFanOut). Measured (bench,
 * one event to 10,000 subscriptions, all queued by the publish): the publish answered in
 * 64 ms on SQLite and 162 ms on PostgreSQL, and its transaction held SQLite's writer (and the
 * event loop) all that time; with chunks of 1,000, 19.5 ms and 34.1 ms. With chunks of 250
 * (bench fan-out, two runs each against two with 1,000, alternating): the publish answered in
 * 9.5-12.4 ms on SQLite (20.6-31.1 with 1,000) and 11.6-13.1 ms on PostgreSQL (26.2-30.4),
 * and all 10,000 were delivered at 7,531-8,186/s (7,585-7,706) and 5,068-5,440/s
 * (4,880-5,189): each chunk holds the event loop a quarter as long while deliveries run.
 */
export const FAN_OUT_CHUNK = 250;

/**
 * Whether a publish left part of its fan-out for Store.expandFanOut: its first chunk filled.
 * (A chunk exactly full leaves a `fanouts` row whose expansion queues nothing and removes it.)
 */
export const leftFanOut = (r: { deliveries: number }): boolean => r.deliveries >= FAN_OUT_CHUNK;

/** The parameters of one fan-out chunk of an event, the same at publish and when expanding. */
export interface FanOutChunk {
  event_id: string;
  company_id: string;
  channel: string;
  /** The event's `resources`, as JSON text. */
  resources: string;
  /** The resource type of the event's object: the channel's `object` part. */
  object_type: string;
  object_id: string;
  /** Subscriptions with ids after this one (in id order), from where the last chunk stopped; '' for the first. */
  after: string;
  /** Subscriptions created after this time are not the event's audience (Number.MAX_SAFE_INTEGER at publish). */
  before: number;
  /** The deliveries' next_attempt_at: the event's publish time, so they queue in its place. */
  due: number;
}

/** The first chunk of a new event's fan-out. */
export function firstChunk(e: { id: string; company_id: string; channel: string; object: { id: string | number }; resources: Record<string, string> }, now: number): FanOutChunk {
  return {
    event_id: e.id,
    company_id: e.company_id,
    channel: e.channel,
    resources: JSON.stringify(e.resources),
    object_type: e.channel.slice(0, e.channel.indexOf('.')),
    object_id: String(e.object.id),
    after: '',
    before: Number.MAX_SAFE_INTEGER,
    due: now,
  };
}

/** The next chunk of a stored event's fan-out: its `fanouts` row joined with the event (body as stored by eventBody). */
export function nextChunk(r: Row): FanOutChunk {
  const body = json<{ object: { id: string | number }; resources?: Record<string, string> }>(r.body);
  const chunk = firstChunk({ id: str(r.event_id), company_id: str(r.company_id), channel: str(r.channel), object: body.object, resources: body.resources ?? {} }, num(r.created_at));
  return { ...chunk, after: str(r.after_subscription), before: num(r.created_at) };
}

/**
 * OAuthStore.countSignInAttempt's statement on both engines, with their placeholders for the
 * key's hash, the end of a new window and now: one attempt more in the window, or the first of
 * a new one when it has ended; returns the window's attempts and its end.
 */
export const signInAttemptSql = (key: string, reset: string, now: string) => `
  INSERT INTO sign_in_attempts (key_hash, attempts, reset_at) VALUES (${key}, 1, ${reset})
  ON CONFLICT (key_hash) DO UPDATE SET
    attempts = CASE WHEN sign_in_attempts.reset_at <= ${now} THEN 1 ELSE sign_in_attempts.attempts + 1 END,
    reset_at = CASE WHEN sign_in_attempts.reset_at <= ${now} THEN excluded.reset_at ELSE sign_in_attempts.reset_at END
  RETURNING attempts, reset_at`;
