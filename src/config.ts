import { isIP } from 'node:net';
import { DEFAULT_RETRY_SCHEDULE, parseDuration, parseRetrySchedule } from './domain/retry.js';

/**
 * Herald's configuration, read and validated once from the environment into one frozen
 * object that is passed explicitly. Every default lives here, next to its option.
 */
export interface Config {
  /** `PORT`, default 8080. */
  port: number;
  /** `HOST`, default `0.0.0.0`. */
  host: string;
  /** `DATABASE_URL`: `sqlite:<path>` (default `sqlite:./data/herald.db`) or `postgres://…`. */
  databaseUrl: string;
  /** `HERALD_ADMIN_TOKEN`; null: one is generated on first start, stored hashed, printed once. */
  adminToken: string | null;
  /** `HERALD_ALLOW_PRIVATE_CALLBACKS=true`: http and loopback/private callbacks (development). */
  allowPrivateCallbacks: boolean;
  /** `HERALD_RETRY_SCHEDULE`, delays between attempts in ms. Default `5s,5m,30m,2h,5h,10h,10h`. */
  retrySchedule: number[];
  /** `HERALD_PUBLIC_URL`, default `http://localhost:$PORT`. */
  publicUrl: string;
  /** `HERALD_CATALOG`: a JSON file of resource types declared at start. Default none. */
  catalogFile: string | null;
  /** `HERALD_ACCESS_TOKEN_TTL`, default `1h`. */
  accessTokenTtlMs: number;
  /** `HERALD_BODY_LIMIT` in bytes, default 1 MiB: larger requests answer 413. */
  bodyLimit: number;
  /** `HERALD_ACCESS_CHECK_URL`: the host's HTTP access check for resource subscriptions. Default none. */
  accessCheckUrl: string | null;
  /** `HERALD_ACCESS_CHECK_TOKEN`: sent as a bearer token to that URL. Default none. */
  accessCheckToken: string | null;
  /**
   * `HERALD_RETENTION_DAYS`, an integer from 1 to 3650, default 30. Worker processes prune
   * hourly what is older: finished events with their deliveries and attempts (so an
   * idempotency key is remembered that long), and tokens, codes and rotated secrets that
   * expired that long ago. Pending deliveries and their events are never pruned.
   */
  retentionDays: number;
  /** `LOG_LEVEL`, default `info`. */
  logLevel: string;
  delivery: DeliveryConfig;
}

export interface DeliveryConfig {
  /** `HERALD_CONNECT_TIMEOUT`, default `5s`. */
  connectTimeoutMs: number;
  /** `HERALD_DELIVERY_TIMEOUT`: the whole request, connect included. Default `15s`. */
  timeoutMs: number;
  /**
   * `HERALD_LEASE`: how long a claimed delivery is reserved. Must outlive the delivery timeout
   * (plus time to record the outcome), or a slow delivery is sent twice. Default `60s`.
   */
  leaseMs: number;
  /**
   * `HERALD_CONCURRENCY`: deliveries in flight per process. Default 256.
   *
   * A delivery holds its slot from the claim until the main thread has taken its answer, so
   * part of every slot's time is spent in the process (claiming, signing, handing requests to
   * the send thread and answers back), not at the receiver. Measured (bench, one receiver,
   * 100 subscriptions x 2,000 events, 2-core VM, the send thread's requests sampled every
   * millisecond): with 64 slots only 34 of them were at undici on average; with 128, 72, and
   * SQLite's steady rate went from 17,500 to 19,500 deliveries/s; while publishing (when the
   * main thread also stores the fan-out) the rate went from 4,400-6,700 to 9,400 with 256.
   * End to end, in alternating runs: SQLite 13,180/14,557/14,097 (64) against
   * 14,930/14,830/15,012 (128) and 14,927/15,641 (256); PostgreSQL 9,588/9,486/9,134
   * against 10,341/9,811/9,845 and 10,591/11,564. 512 measured as 256. The limit loop,
   * which takes the same concurrency, did not move (27,000-30,000).
   */
  concurrency: number;
  /** `HERALD_CONNECTIONS_PER_ORIGIN`: keep-alive sockets per receiver origin. Default 16. */
  connectionsPerOrigin: number;
  /**
   * `HERALD_MAX_IN_FLIGHT_PER_ORIGIN`: deliveries in flight to one receiver origin, so a slow
   * or hanging receiver holds at most that many of the `concurrency` slots. Default twice
   * `connectionsPerOrigin` (each connection has the next request queued), at most `concurrency`.
   */
  maxInFlightPerOrigin: number;
  /** `HERALD_POLL_INTERVAL`: how often an idle dispatcher looks for due work. Default `1s`. */
  pollIntervalMs: number;
  /**
   * `HERALD_EGRESS_ADDRESS`: the local IP address webhooks are sent from, on a host with
   * several (so receivers can allowlist one address). Default: the system's choice.
   */
  egressAddress: string | null;
  /** Bytes of the receiver's answer kept with each attempt. */
  responseExcerptBytes: number;
  /**
   * `HERALD_SEND_THREAD`: send from a worker thread (HTTP there; claims, checks, signing and
   * records in the main thread). Default `true`; `false` sends from the main thread.
   */
  sendThread: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function duration(env: Env, name: string, fallback: string): number {
  const raw = env[name] ?? fallback;
  const ms = parseDuration(raw);
  if (ms === null) throw new ConfigError(`${name}: "${raw}" is not a duration like 500ms, 5s, 5m, 2h or 1d`);
  return ms;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}: "${raw}" must be an integer from ${min} to ${max}`);
  return n;
}

function bool(env: Env, name: string, fallback = false): boolean {
  const raw = (env[name] ?? '').toLowerCase();
  if (raw === '') return fallback;
  if (raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name}: "${env[name]}" must be true or false`);
}

export function loadConfig(env: Env = process.env): Config {
  const port = integer(env, 'PORT', 8080, 0, 65535);
  const databaseUrl = env.DATABASE_URL || 'sqlite:./data/herald.db';
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    throw new ConfigError(`DATABASE_URL: "${databaseUrl.replace(/\/\/[^@]*@/, '//***@')}" must start with sqlite: or postgres://`);
  }
  let retrySchedule: number[];
  try {
    retrySchedule = parseRetrySchedule(env.HERALD_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const adminToken = env.HERALD_ADMIN_TOKEN || null;
  if (adminToken !== null && adminToken.length < 16) throw new ConfigError('HERALD_ADMIN_TOKEN must be at least 16 characters');
  const concurrency = integer(env, 'HERALD_CONCURRENCY', 256, 1, 10_000);
  const connectionsPerOrigin = integer(env, 'HERALD_CONNECTIONS_PER_ORIGIN', 16, 1, 1000);
  const delivery: DeliveryConfig = {
    connectTimeoutMs: duration(env, 'HERALD_CONNECT_TIMEOUT', '5s'),
    timeoutMs: duration(env, 'HERALD_DELIVERY_TIMEOUT', '15s'),
    leaseMs: duration(env, 'HERALD_LEASE', '60s'),
    concurrency,
    connectionsPerOrigin,
    maxInFlightPerOrigin: integer(env, 'HERALD_MAX_IN_FLIGHT_PER_ORIGIN', Math.min(concurrency, 2 * connectionsPerOrigin), 1, 10_000),
    pollIntervalMs: duration(env, 'HERALD_POLL_INTERVAL', '1s'),
    egressAddress: env.HERALD_EGRESS_ADDRESS || null,
    responseExcerptBytes: 1024,
    sendThread: bool(env, 'HERALD_SEND_THREAD', true),
  };
  if (delivery.egressAddress !== null && isIP(delivery.egressAddress) === 0) {
    throw new ConfigError(`HERALD_EGRESS_ADDRESS: "${delivery.egressAddress}" is not an IP address`);
  }
  if (delivery.leaseMs < delivery.timeoutMs + 2000) {
    throw new ConfigError(`HERALD_LEASE (${delivery.leaseMs}ms) must exceed HERALD_DELIVERY_TIMEOUT (${delivery.timeoutMs}ms) by at least 2s`);
  }
  if (env.HERALD_ACCESS_CHECK_URL && !/^https?:\/\//.test(env.HERALD_ACCESS_CHECK_URL)) {
    throw new ConfigError(`HERALD_ACCESS_CHECK_URL: "${env.HERALD_ACCESS_CHECK_URL}" must be an http(s) URL`);
  }
  const publicUrl = (env.HERALD_PUBLIC_URL || `http://localhost:${port}`).replace(/\/+$/, '');
  try {
    new URL(publicUrl);
  } catch {
    throw new ConfigError(`HERALD_PUBLIC_URL: "${publicUrl}" is not a URL`);
  }
  return Object.freeze({
    port,
    host: env.HOST || '0.0.0.0',
    databaseUrl,
    adminToken,
    allowPrivateCallbacks: bool(env, 'HERALD_ALLOW_PRIVATE_CALLBACKS'),
    retrySchedule,
    publicUrl,
    catalogFile: env.HERALD_CATALOG || null,
    accessTokenTtlMs: duration(env, 'HERALD_ACCESS_TOKEN_TTL', '1h'),
    bodyLimit: integer(env, 'HERALD_BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    accessCheckUrl: env.HERALD_ACCESS_CHECK_URL || null,
    accessCheckToken: env.HERALD_ACCESS_CHECK_TOKEN || null,
    retentionDays: integer(env, 'HERALD_RETENTION_DAYS', 30, 1, 3650),
    logLevel: env.LOG_LEVEL || 'info',
    delivery: Object.freeze(delivery),
  });
}
