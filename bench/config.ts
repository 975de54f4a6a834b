import { loadConfig } from '../src/config.js';

/**
 * The benchmark's sizes, read once from the environment. The defaults finish the whole run
 * in about four minutes on a 2-core machine, where Herald on SQLite, the slowest scenario,
 * delivers about 200/s (it waits on fsync, see the README's Benchmarks section). The issue's
 * full target is `BENCH_EVENTS=20000 BENCH_FANOUT=10000` (two million deliveries per
 * scenario: hours there, at those rates).
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
  /** `BENCH_PUBLISH_CONCURRENCY`: POST /admin/events in flight. Default 16. */
  publishConcurrency: number;
  /**
   * `BENCH_FANOUT`: subscriptions of the fan-out event; 0 skips it. Default 2,000, not the
   * issue's 10,000: seeding 10,000 subscriptions over the API alone takes over a minute here.
   */
  fanout: number;
  /** `BENCH_FANOUT_ENGINES`: engines the fan-out runs on. Default `sqlite,postgres`. */
  fanoutEngines: Engine[];
  /** `BENCH_SCENARIOS`: which to run, comma-separated. Default all: `limit,bullmq,sqlite,postgres,fanout,idle`. */
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
  retrySchedule: number[];
}

export type Engine = 'sqlite' | 'postgres';
export type Scenario = 'limit' | 'bullmq' | 'sqlite' | 'postgres' | 'fanout' | 'idle';
const SCENARIOS: Scenario[] = ['limit', 'bullmq', 'sqlite', 'postgres', 'fanout', 'idle'];

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
  return {
    subs,
    events,
    limitDeliveries: int(env, 'BENCH_LIMIT_DELIVERIES', Math.max(subs * events, 30_000), 1),
    publishConcurrency: int(env, 'BENCH_PUBLISH_CONCURRENCY', 16, 1),
    fanout: int(env, 'BENCH_FANOUT', 2000),
    fanoutEngines: list(env, 'BENCH_FANOUT_ENGINES', ['sqlite', 'postgres'] as const, ['sqlite', 'postgres']),
    scenarios: new Set(list(env, 'BENCH_SCENARIOS', SCENARIOS, SCENARIOS)),
    profile: env.BENCH_PROFILE === '1' || env.BENCH_PROFILE === 'true',
    timeoutMs: Number(timeoutS[1]) * 1000,
    redisUrl: env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    bullmqKeep: int(env, 'BENCH_BULLMQ_KEEP', 100_000),
    concurrency: herald.delivery.concurrency,
    connectionsPerOrigin: herald.delivery.connectionsPerOrigin,
    retrySchedule: herald.retrySchedule,
  };
}
