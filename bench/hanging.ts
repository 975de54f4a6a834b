import type { BenchConfig, Engine } from './config.js';
import { HeraldApi, openCounter, waitUntilDrained } from './herald-process.js';
import { postgresMeter, publishOne, seedApp, seedTenant, withHerald } from './herald.js';
import { originKey } from '../src/store/types.js';
import { Receiver } from './receiver.js';
import { cpuMeter, machineMeter, mapLimit, round, type MachineLoad } from './util.js';

export interface HangingRun {
  engine: Engine;
  /** Whether origin 0 hung (read each request, never answered) or answered like the others. */
  hanging: boolean;
  origins: number;
  /** Subscriptions per origin, and events (each to every subscription). */
  subs: number;
  events: number;
  /** Deliveries to origins 1..n-1, the healthy ones in both runs. */
  healthyDeliveries: number;
  /** From the first publish until no delivery to origins 1..n-1 was pending. */
  seconds: number;
  /** healthyDeliveries / seconds. */
  perSecond: number;
  publishSeconds: number;
  /** Requests each origin answered (origin 0 first), and those origin 0 read and held. */
  perOrigin: number[];
  held: number;
  /** Origin 0's deliveries when the healthy ones were done. */
  origin0Statuses: Record<string, number>;
  cpuPct: number;
  machine: MachineLoad;
  notes: string[];
}

/**
 * Receivers that hang: `origins` receiver origins (ports of one receiver process, one app
 * each, `subs` subscriptions each), `events` events each fanned out to all of them. Origin 0
 * either answers like the others or, with `hang`, reads each request and never answers, so
 * every delivery to it holds one of Herald's in-flight slots and one of its sockets until
 * HERALD_DELIVERY_TIMEOUT. Measured: the time until the other origins' deliveries all have
 * an outcome, from the deliveries table (by app, so by origin), which the receiver's per-port
 * counts confirm. Both runs use the same Herald settings (timeout BENCH_HANGING_TIMEOUT, Herald's
 * own retry schedule, so origin 0's deliveries come back for a second try 5 s later, as they would).
 */
export async function runHangingOnce(engine: Engine, cfg: BenchConfig, hang: boolean): Promise<HangingRun> {
  const { origins, subs, events, timeoutMs } = cfg.hanging;
  const env = {
    HERALD_DELIVERY_TIMEOUT: `${timeoutMs}ms`,
    // Herald requires the lease to outlive the delivery timeout by 2 s; 10 s leaves room to record outcomes.
    HERALD_LEASE: `${timeoutMs + 10_000}ms`,
    // Ten origins: Herald's own cap, the one that keeps the hanging origin to its share.
    HERALD_MAX_IN_FLIGHT_PER_ORIGIN: String(cfg.maxInFlightPerOrigin),
  };
  const receiver = await Receiver.start({ ports: Array.from({ length: origins }, () => 0), hang: hang ? [0] : [] });
  try {
    return await withHerald(engine, cfg, `herald-hanging-${engine}-${hang ? 'hang' : 'ok'}`, async (herald, databaseUrl) => {
      const api = new HeraldApi(herald.url, Math.max(cfg.seedConcurrency, cfg.publishConcurrency));
      const tenant = await seedTenant(api);
      for (const [i, url] of receiver.urls.entries()) await seedApp(api, tenant, url, subs, cfg.seedConcurrency, `Origin ${i}`);
      const keys = receiver.urls.map((url) => originKey(`${url}/`));
      const healthy = await openCounter(databaseUrl, keys.slice(1));
      const origin0 = await openCounter(databaseUrl, keys.slice(0, 1));
      await receiver.counts(true);
      const heraldCpu = cpuMeter(herald.pid);
      const pgCpu = engine === 'postgres' ? postgresMeter(databaseUrl) : null;
      const machine = machineMeter([process.pid, herald.pid, receiver.pid], pgCpu ? [pgCpu] : []);
      const t0 = performance.now();
      await mapLimit(Array.from({ length: events }, (_, i) => i), cfg.publishConcurrency, (i) => publishOne(api, tenant, i));
      const published = performance.now();
      const done = await waitUntilDrained(healthy, cfg.timeoutMs);
      const cpu = heraldCpu();
      const load = machine();
      const pgPct = pgCpu?.().cpuPct;
      const counts = await receiver.counts();
      const statuses = await healthy.statuses();
      const origin0Statuses = await origin0.statuses();
      await healthy.close();
      await origin0.close();
      await api.close();

      const healthyDeliveries = (origins - 1) * subs * events;
      const seconds = (done - t0) / 1000;
      const notes: string[] = [];
      if ((statuses.succeeded ?? 0) !== healthyDeliveries) notes.push(`healthy origins' statuses ${JSON.stringify(statuses)}, expected ${healthyDeliveries} succeeded`);
      const short = counts.perPort.slice(1).findIndex((n) => n !== subs * events);
      if (short >= 0) notes.push(`origin ${short + 1} answered ${counts.perPort[short + 1]} requests, expected ${subs * events}`);
      if (pgPct !== undefined) notes.push(`its PostgreSQL backends cpu ${pgPct}%`);
      const warnings = herald.logLines().length;
      if (warnings > 0) notes.push(`herald logged ${warnings} warning lines: ${herald.logLines()[0]!.slice(0, 200)}`);
      return {
        engine,
        hanging: hang,
        origins,
        subs,
        events,
        healthyDeliveries,
        seconds: round(seconds, 2),
        perSecond: Math.round(healthyDeliveries / seconds),
        publishSeconds: round((published - t0) / 1000, 2),
        perOrigin: counts.perPort,
        held: counts.held[0] ?? 0,
        origin0Statuses,
        cpuPct: cpu.cpuPct,
        machine: load,
        notes,
      };
    }, env);
  } finally {
    await receiver.stop();
  }
}
