import { loadConfig } from '../src/config.js';
import { parseDuration } from '../src/domain/retry.js';

/**
 * The benchmark's sizes, read once from the environment. The throughput scenarios' defaults
 * finish in a few minutes on a 2-core machine, where Herald delivered a few hundred per second
 * (see the README's Benchmarks section); their full target is `BENCH_EVENTS=20000` (two million
 * deliveries per scenario: hours there). The fan-out, latency, backlog and hanging scenarios
 * default to the issue's own sizes; the backlog of a million deliveries dominates the run.
 */
export interface BenchConfig {
  /** `BENCH_SUBS`: subscriptions each event fans out to. Default 100. */
  subs: number;
  /** `BENCH_EVENTS`: events published per throughput scenario. Default 200 (20,000 deliveries). */
  events: number;
  /**
   * `BENCH_LIMIT_DELIVERIES`: requests of the plain undici loop. Default subs x events, at
   * least 30,000: at thousands per second, fewer would be over before the noise averages out.
   */
  limitDeliveries: number;
  /**
   * `BENCH_ROUNDS`: rounds of the throughput scenarios against the limit. Default 3. The limit
   * runs first and again after each round (Herald on SQLite, then on PostgreSQL), and each
   * Herald run is compared with the mean of the two limit runs around it; the ratio reported
   * is the median of the rounds'. Measured in one session: the limit's two runs of one round
   * apart by up to 27% (14,090 and 11,075/s) and the ratios of four one-round runs 0.64-0.76
   * (SQLite) and 0.51-0.64 (PostgreSQL): the machine's speed drifts within minutes.
   */
  rounds: number;
  /** `BENCH_PUBLISH_CONCURRENCY`: POST /admin/events in flight. Default 16. */
  publishConcurrency: number;
  /**
   * `BENCH_SEED_CONCURRENCY`: POST /api/subs in flight while seeding subscriptions. Default 64.
   * Measured on the 2-core VM: 3,000 subscriptions took 5.0 s on SQLite and 9.2 s on
   * PostgreSQL, so about 17 s and 31 s for the fan-out's 10,000; with 16 in flight, 1,000 took
   * 2.2 s on SQLite instead of 1.3 s (each is one write transaction; more in flight batch better).
   */
  seedConcurrency: number;
  /** `BENCH_FANOUT`: subscriptions of the fan-out event; 0 skips it. Default 10,000, the size. */
  fanout: number;
  /** `BENCH_FANOUT_ENGINES`: engines the fan-out runs on. Default `sqlite,postgres`. */
  fanoutEngines: Engine[];
  /** Scenario `latency`: publish answer time under an open-loop load. */
  latency: {
    /** `BENCH_LATENCY_RATE`: events per second, each scheduled at its own start time. Default 1000. */
    rate: number;
    /** `BENCH_LATENCY_SECONDS`: how long to publish at that rate. Default 30. */
    seconds: number;
    /** `BENCH_LATENCY_SUBS`: subscriptions each event matches, so deliveries run meanwhile. Default 1. */
    subs: number;
    /** `BENCH_LATENCY_CONNECTIONS`: keep-alive connections of the publisher's undici Pool. Default 64. */
    connections: number;
    /** `BENCH_LATENCY_ENGINES`. Default `sqlite,postgres`. */
    engines: Engine[];
  };
  /** Scenario `backlog`: deliveries pile up while the receiver is down, then drain. */
  backlog: {
    /**
     * `BENCH_BACKLOG`: deliveries pending before the receiver comes back. Default 1,000,000,
     * the size: publishing and draining that many takes long (the drain alone, at a
     * few hundred deliveries per second, about an hour), so raise BENCH_TIMEOUT with it.
     */
    size: number;
    /** `BENCH_BACKLOG_SMALL`: the reference backlog whose drain rate the big one is compared with. Default 10,000. */
    small: number;
    /** `BENCH_BACKLOG_SUBS`: subscriptions each event fans out to (events = backlog / subs). Default 100. */
    subs: number;
    /** `BENCH_BACKLOG_ENGINES`. Default `sqlite,postgres`. */
    engines: Engine[];
  };
  /** Scenario `hanging`: several receiver origins, one of them never answering. */
  hanging: {
    /** `BENCH_HANGING_ORIGINS`: receiver origins (ports), one app each. Default 10. */
    origins: number;
    /** `BENCH_HANGING_SUBS`: subscriptions per origin. Default 10. */
    subs: number;
    /**
     * `BENCH_HANGING_EVENTS`: events published, each to every subscription. Default 300
     * (30,000 deliveries): the healthy origins' run lasts past the hanging origin's timeout
     * (its requests time out and its deliveries come back), and a run of 2 s (100 events)
     * moved the ratio by 0.1 between runs.
     */
    events: number;
    /** `BENCH_HANGING_TIMEOUT`: HERALD_DELIVERY_TIMEOUT of that Herald, e.g. `5s`. Default 5 s. */
    timeoutMs: number;
    /** `BENCH_HANGING_ENGINES`. Default `sqlite,postgres`. */
    engines: Engine[];
  };
  /**
   * `BENCH_SCENARIOS`: which to run, comma-separated. Default all:
   * `limit,bullmq,sqlite,postgres,fanout,latency,backlog,hanging,idle`.
   */
  scenarios: Set<Scenario>;
  /** `BENCH_PROFILE=1`: run the Herald children under `--cpu-prof` (slower; numbers marked). */
  profile: boolean;
  /** `BENCH_TIMEOUT`: the longest one scenario may take, e.g. `600s`. Default 10 minutes. */
  timeoutMs: number;
  /** `BENCH_REDIS_URL`, default `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** `BENCH_BULLMQ_KEEP`: completed jobs BullMQ keeps in Redis (Herald keeps every delivery). Default 100000. */
  bullmqKeep: number;
  /** From Herald's own configuration, so every scenario uses the same numbers. */
  concurrency: number;
  connectionsPerOrigin: number;
  /** Herald's HERALD_MAX_IN_FLIGHT_PER_ORIGIN: what the hanging scenario (ten origins) runs with. */
  maxInFlightPerOrigin: number;
  /**
   * The cap every single-receiver scenario gives Herald: `concurrency`, unless
   * HERALD_MAX_IN_FLIGHT_PER_ORIGIN is set. The limit loop and the BullMQ worker keep
   * `concurrency` requests in flight to their one receiver; Herald's default cap (twice the
   * connections per origin, 32) would hold it to half of that, which is not the same
   * concurrency. (Measured: 2,992 against 3,618 deliveries/s on SQLite, in one session.)
   */
  singleOriginInFlight: number;
  retrySchedule: number[];
}

export type Engine = 'sqlite' | 'postgres';
export type Scenario = 'limit' | 'bullmq' | 'sqlite' | 'postgres' | 'fanout' | 'latency' | 'backlog' | 'hanging' | 'idle';
const SCENARIOS: Scenario[] = ['limit', 'bullmq', 'sqlite', 'postgres', 'fanout', 'latency', 'backlog', 'hanging', 'idle'];
const ENGINES = ['sqlite', 'postgres'] as const;

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: "${raw}" must be an integer >= ${min}`);
  return n;
}

function list<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = env[name];
  if (!raw) return [...fallback];
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`${name}: "${item}" is not one of ${allowed.join(', ')}`);
  return items as T[];
}

export function loadBenchConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const herald = loadConfig(env);
  const subs = int(env, 'BENCH_SUBS', 100, 1);
  const events = int(env, 'BENCH_EVENTS', 200, 1);
  const timeoutS = /^(\d+)s?$/.exec(env.BENCH_TIMEOUT ?? '600');
  if (!timeoutS?.[1]) throw new Error(`BENCH_TIMEOUT: "${env.BENCH_TIMEOUT}" must be seconds, e.g. 600s`);
  const hangingTimeout = parseDuration(env.BENCH_HANGING_TIMEOUT ?? '5s');
  if (hangingTimeout === null || hangingTimeout < 1000) throw new Error(`BENCH_HANGING_TIMEOUT: "${env.BENCH_HANGING_TIMEOUT}" must be a duration of at least 1s, e.g. 5s`);
  return {
    subs,
    events,
    limitDeliveries: int(env, 'BENCH_LIMIT_DELIVERIES', Math.max(subs * events, 30_000), 1),
    rounds: int(env, 'BENCH_ROUNDS', 3, 1),
    publishConcurrency: int(env, 'BENCH_PUBLISH_CONCURRENCY', 16, 1),
    seedConcurrency: int(env, 'BENCH_SEED_CONCURRENCY', 64, 1),
    fanout: int(env, 'BENCH_FANOUT', 10_000),
    fanoutEngines: list(env, 'BENCH_FANOUT_ENGINES', ENGINES, ENGINES),
    latency: {
      rate: int(env, 'BENCH_LATENCY_RATE', 1000, 1),
      seconds: int(env, 'BENCH_LATENCY_SECONDS', 30, 1),
      subs: int(env, 'BENCH_LATENCY_SUBS', 1, 1),
      connections: int(env, 'BENCH_LATENCY_CONNECTIONS', 64, 1),
      engines: list(env, 'BENCH_LATENCY_ENGINES', ENGINES, ENGINES),
    },
    backlog: {
      size: int(env, 'BENCH_BACKLOG', 1_000_000, 1),
      small: int(env, 'BENCH_BACKLOG_SMALL', 10_000, 1),
      subs: int(env, 'BENCH_BACKLOG_SUBS', 100, 1),
      engines: list(env, 'BENCH_BACKLOG_ENGINES', ENGINES, ENGINES),
    },
    hanging: {
      origins: int(env, 'BENCH_HANGING_ORIGINS', 10, 2),
      subs: int(env, 'BENCH_HANGING_SUBS', 10, 1),
      events: int(env, 'BENCH_HANGING_EVENTS', 300, 1),
      timeoutMs: hangingTimeout,
      engines: list(env, 'BENCH_HANGING_ENGINES', ENGINES, ENGINES),
    },
    scenarios: new Set(list(env, 'BENCH_SCENARIOS', SCENARIOS, SCENARIOS)),
    profile: env.BENCH_PROFILE === '1' || env.BENCH_PROFILE === 'true',
    timeoutMs: Number(timeoutS[1]) * 1000,
    redisUrl: env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    bullmqKeep: int(env, 'BENCH_BULLMQ_KEEP', 100_000),
    concurrency: herald.delivery.concurrency,
    connectionsPerOrigin: herald.delivery.connectionsPerOrigin,
    maxInFlightPerOrigin: herald.delivery.maxInFlightPerOrigin,
    singleOriginInFlight: env.HERALD_MAX_IN_FLIGHT_PER_ORIGIN === undefined ? herald.delivery.concurrency : herald.delivery.maxInFlightPerOrigin,
    retrySchedule: herald.retrySchedule,
  };
}
