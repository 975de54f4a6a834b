import { rmSync } from 'node:fs';
import type { BenchConfig, Engine } from './config.js';
import { freshDatabase, HeraldApi, openCounter, startHerald, waitUntilDrained, type DeliveryCounter, type HeraldChild } from './herald-process.js';
import type { ThroughputResult } from './limit.js';
import { benchEvent } from './payload.js';
import type { Receiver } from './receiver.js';
import { commandCpuMeter, cpuMeter, machineMeter, mapLimit, percentile, round, rssMiB, sleep, type MachineLoad } from './util.js';

export interface HeraldResult extends ThroughputResult {
  engine: Engine;
  publish: { events: number; seconds: number; perSecond: number; p50Ms: number; p99Ms: number; maxMs: number };
  rssAfterMiB: number;
  profile: string | null;
}

export interface Seeded {
  companyId: string;
  userId: string;
}

/** A company with one user whose role may do everything to `client`, the channel's resource. */
export async function seedTenant(api: HeraldApi): Promise<Seeded> {
  await api.call('PUT', '/admin/resources/client', { plural: 'clients' });
  const company = await api.call('POST', '/admin/companies', { name: 'Acme', sub_domain: 'acme' });
  await api.call('PUT', `/admin/companies/${company.id}/roles/admin`, { permissions: { clients: ['create', 'read', 'update', 'delete'] } });
  const user = await api.call('POST', `/admin/companies/${company.id}/users`, { email: 'ann@acme.test', name: 'Ann', role: 'admin' });
  return { companyId: company.id, userId: user.id };
}

/**
 * An app at `receiverUrl` (callbacks must lie within its URL, so one app per receiver
 * origin), a grant `api/subs clients` for the tenant's user, and `n` subscriptions to
 * `channel`, created over the API with `concurrency` in flight. Resolves with the app's id.
 */
export async function seedApp(api: HeraldApi, tenant: Seeded, receiverUrl: string, n: number, concurrency: number, name = 'Bench', channel = 'client.create'): Promise<string> {
  const app = await api.call('POST', '/admin/apps', { name, url: `${receiverUrl}/` });
  const grant = await api.call('POST', '/admin/grants', { app_id: app.id, user_id: tenant.userId, scope: 'api/subs clients' });
  const subs = Array.from({ length: n }, (_, i) => i);
  await mapLimit(subs, concurrency, (i) =>
    api.call('POST', '/api/subs', { sub: { channel, callback_url: `${receiverUrl}/hooks/${i}` } }, grant.access_token),
  );
  return app.id;
}

/** One app, one user, a grant `api/subs clients`, and `n` subscriptions to client.create, over the API. */
export async function seed(api: HeraldApi, receiverUrl: string, n: number, concurrency: number): Promise<Seeded> {
  const tenant = await seedTenant(api);
  await seedApp(api, tenant, receiverUrl, n, concurrency);
  return tenant;
}

/** POSTs one event; resolves with its answer time in ms. */
export async function publishOne(api: HeraldApi, seeded: Seeded, i: number): Promise<number> {
  const t = performance.now();
  await api.call('POST', '/admin/events', { ...benchEvent(i), company_id: seeded.companyId, user_id: seeded.userId });
  return performance.now() - t;
}

/** CPU of the PostgreSQL backends serving this database (not the server's shared processes). */
export function postgresMeter(databaseUrl: string) {
  return commandCpuMeter('postgres', ` ${new URL(databaseUrl).pathname.slice(1)} `);
}

function profileOption(cfg: BenchConfig, name: string) {
  if (!cfg.profile) return {};
  const dir = `bench/results/profiles/${name}`;
  rmSync(dir, { recursive: true, force: true });
  return { cpuProfile: { dir } };
}

/** A Herald on a fresh database for `fn`; `env` is added to that Herald's environment. */
export async function withHerald<T>(
  engine: Engine,
  cfg: BenchConfig,
  profileName: string,
  fn: (herald: HeraldChild, databaseUrl: string) => Promise<T>,
  env?: Record<string, string>,
): Promise<T> {
  const db = await freshDatabase(engine);
  let herald: HeraldChild | null = null;
  try {
    herald = await startHerald({
      databaseUrl: db.url,
      ...profileOption(cfg, profileName),
      env: { HERALD_MAX_IN_FLIGHT_PER_ORIGIN: String(cfg.singleOriginInFlight), ...env },
    });
    return await fn(herald, db.url);
  } finally {
    await herald?.stop();
    await db.drop();
  }
}

/**
 * Scenario 3: Herald end to end. Seeds `subs` subscriptions, warms up (warmUp), publishes
 * `events` events over HTTP (`publishConcurrency` in flight), and measures from the first
 * publish until every delivery has its outcome in the database.
 */
export async function runHeraldThroughput(engine: Engine, cfg: BenchConfig, receiver: Receiver): Promise<HeraldResult> {
  const name = `herald-${engine}`;
  return withHerald(engine, cfg, name, async (herald, databaseUrl) => {
    const api = new HeraldApi(herald.url, cfg.publishConcurrency);
    const seeded = await seed(api, receiver.url, cfg.subs, cfg.publishConcurrency);
    const counter = await openCounter(databaseUrl);
    const expected = cfg.subs * cfg.events;
    await warmUp(api, seeded, receiver, cfg, counter);
    await receiver.count(true);
    const heraldCpu = cpuMeter(herald.pid);
    const recv = cpuMeter(receiver.pid);
    const postgresCpu = engine === 'postgres' ? postgresMeter(databaseUrl) : null;
    const machine = machineMeter([process.pid, herald.pid, receiver.pid], postgresCpu ? [postgresCpu] : []);
    const t0 = performance.now();
    const latencies = await mapLimit(Array.from({ length: cfg.events }, (_, i) => i), cfg.publishConcurrency, (i) => publishOne(api, seeded, i));
    const published = performance.now();
    const drained = await waitUntilDrained(counter, cfg.timeoutMs);
    const cpu = heraldCpu();
    const load = machine();
    const pgCpu = postgresCpu?.().cpuPct;
    const seconds = (drained - t0) / 1000;
    const statuses = await counter.statuses();
    const received = await receiver.count(true);
    const rssAfterMiB = round(rssMiB(herald.pid));
    await counter.close();
    await api.close();
    const publishS = (published - t0) / 1000;
    const notes = [`publishing took ${round(publishS, 1)} s`];
    if (pgCpu !== undefined) notes.push(`its PostgreSQL backends cpu ${pgCpu}%`);
    const stored = expected + WARM_UP_DELIVERIES;
    if ((statuses.succeeded ?? 0) !== stored) notes.push(`statuses ${JSON.stringify(statuses)}, expected ${stored} succeeded (warm-up included)`);
    if (received !== expected) notes.push(`receiver counted ${received} of ${expected}`);
    const warnings = herald.logLines().length;
    if (warnings > 0) notes.push(`herald logged ${warnings} warning lines: ${herald.logLines()[0]!.slice(0, 200)}`);
    return {
      scenario: `Herald on ${engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, end to end`,
      engine,
      deliveries: expected,
      seconds: round(seconds, 2),
      perSecond: Math.round(expected / seconds),
      cpuPct: cpu.cpuPct,
      receiverCpuPct: recv().cpuPct,
      machine: load,
      notes,
      publish: {
        events: cfg.events,
        seconds: round(publishS, 2),
        perSecond: Math.round(cfg.events / publishS),
        p50Ms: round(percentile(latencies, 50), 1),
        p99Ms: round(percentile(latencies, 99), 1),
        maxMs: round(Math.max(...latencies), 1),
      },
      rssAfterMiB,
      profile: cfg.profile ? `bench/results/profiles/${name}` : null,
    };
  });
}

export interface FanoutRun {
  publishMs: number;
  allDeliveredSeconds: number;
  perSecond: number;
  cpuPct: number;
  machine: MachineLoad;
}

/** The fan-out's runs (one event each, to the same subscriptions) and, as the headline, the median run by rate. */
export interface FanoutResult extends FanoutRun {
  engine: Engine;
  subscriptions: number;
  seedSeconds: number;
  /** Every run, in order (BENCH_ROUNDS of them). */
  runs: FanoutRun[];
  /** The slowest publish answer of all runs. */
  maxPublishMs: number;
  notes: string[];
  /** The round of limit runs around it (run.ts: the limit runs again after the fan-out). */
  round?: number;
}

/** Deliveries Herald makes before a throughput scenario measures (warmUp). */
const WARM_UP_DELIVERIES = 2000;

/**
 * The warm-up before a throughput scenario measures, as the limit loop's: 2,000 deliveries to
 * the same receiver (200 events on another channel, client.update, to 10 subscriptions of
 * another app) open the sockets, start the send thread and make the delivery path's code hot,
 * so what follows measures the rate, not the start of Herald's sending. Without it the first
 * deliveries wait for the send thread to start and the connections to open, and V8 compiles
 * the delivery path while it runs (perf of the end-to-end scenario, SQLite: its optimising
 * compiler was 5-6% of Herald's samples, nearly all in the first four seconds).
 */
async function warmUp(api: HeraldApi, seeded: Seeded, receiver: Receiver, cfg: BenchConfig, counter: DeliveryCounter): Promise<void> {
  await seedApp(api, seeded, receiver.url, 10, cfg.seedConcurrency, 'Warm-up', 'client.update');
  await mapLimit(Array.from({ length: WARM_UP_DELIVERIES / 10 }, (_, i) => i), cfg.seedConcurrency, (i) =>
    api.call('POST', '/admin/events', { ...benchEvent(i), channel: 'client.update', company_id: seeded.companyId, user_id: seeded.userId }));
  await waitUntilDrained(counter, cfg.timeoutMs, 20);
}

/**
 * One event to `cfg.fanout` subscriptions: the publish answer time, then the time until all
 * were delivered; BENCH_ROUNDS such events, one after the other, to the same subscriptions
 * (seeded once), each with nothing of its audience kept from the run before. A run lasts a second or two, where the machine's speed drifts by a quarter
 * within minutes: the median run is the headline, and every run is kept.
 */
export async function runFanout(engine: Engine, cfg: BenchConfig, receiver: Receiver): Promise<FanoutResult> {
  return withHerald(engine, cfg, `herald-fanout-${engine}`, async (herald, databaseUrl) => {
    const api = new HeraldApi(herald.url, cfg.seedConcurrency);
    const s0 = performance.now();
    const seeded = await seed(api, receiver.url, cfg.fanout, cfg.seedConcurrency);
    const seedSeconds = (performance.now() - s0) / 1000;
    const counter = await openCounter(databaseUrl);
    await warmUp(api, seeded, receiver, cfg, counter);
    const runs: FanoutRun[] = [];
    const notes: string[] = [];
    for (let n = 0; n < cfg.rounds; n++) {
      // Each run as the first to its audience: the same role written again counts up SQLite's
      // config_version, so the claims read every subscription again (ClaimCache) instead of
      // the later runs finding them kept.
      await api.call('PUT', `/admin/companies/${seeded.companyId}/roles/admin`, { permissions: { clients: ['create', 'read', 'update', 'delete'] } });
      await receiver.count(true);
      const heraldCpu = cpuMeter(herald.pid);
      const machine = machineMeter([process.pid, herald.pid, receiver.pid], engine === 'postgres' ? [postgresMeter(databaseUrl)] : []);
      const t0 = performance.now();
      const publishMs = await publishOne(api, seeded, n);
      const drained = await waitUntilDrained(counter, cfg.timeoutMs, 20);
      const seconds = (drained - t0) / 1000;
      runs.push({ publishMs: round(publishMs, 1), allDeliveredSeconds: round(seconds, 2), perSecond: Math.round(cfg.fanout / seconds), cpuPct: heraldCpu().cpuPct, machine: machine() });
      const received = await receiver.count(true);
      if (received !== cfg.fanout) notes.push(`run ${n + 1}: receiver counted ${received} of ${cfg.fanout}`);
    }
    const statuses = await counter.statuses();
    await counter.close();
    await api.close();
    const expected = cfg.fanout * cfg.rounds + WARM_UP_DELIVERIES;
    if ((statuses.succeeded ?? 0) !== expected) notes.push(`statuses ${JSON.stringify(statuses)}, expected ${expected} succeeded (warm-up included)`);
    // The median run (the lower middle one of an even count: a run, not a mean of two).
    const median = [...runs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor((runs.length - 1) / 2)]!;
    return {
      ...median,
      engine,
      subscriptions: cfg.fanout,
      seedSeconds: round(seedSeconds, 1),
      runs,
      maxPublishMs: Math.max(...runs.map((r) => r.publishMs)),
      notes,
    };
  });
}

export interface IdleResult {
  runner: string;
  rssMiB: number;
}

/** Resident memory of a freshly started Herald (SQLite, nothing seeded) after 5 s idle. */
export async function measureIdle(runner: string, compiledCli?: string): Promise<IdleResult> {
  const db = await freshDatabase('sqlite');
  const herald = await startHerald({ databaseUrl: db.url, ...(compiledCli ? { compiledCli } : {}) });
  try {
    await sleep(5000);
    return { runner, rssMiB: round(rssMiB(herald.pid)) };
  } finally {
    await herald.stop();
    await db.drop();
  }
}
