import type { BenchConfig, Engine } from './config.js';
import { drainedBy, HeraldApi, openCounter } from './herald-process.js';
import { postgresMeter, publishOne, seed, withHerald } from './herald.js';
import { Receiver } from './receiver.js';
import { cpuMeter, machineMeter, mapLimit, reservePort, round, rssSampler, type MachineLoad } from './util.js';

export interface BacklogRun {
  engine: Engine;
  /** Deliveries pending when the receiver came back: events x subs. */
  backlog: number;
  events: number;
  subs: number;
  /** Publishing the events (while every attempt was refused), and events per second. */
  publishSeconds: number;
  publishPerSecond: number;
  /** Deliveries still pending, and attempts Herald had made (all refused), when the receiver came back. */
  pendingAtReturn: number;
  attemptsWhileDown: number;
  /** From the receiver listening to its first request (the retry delay and Herald's poll). */
  firstDeliverySeconds: number;
  /** From the receiver's first request until no delivery was pending (or BENCH_TIMEOUT ran out). */
  drainSeconds: number;
  /** Deliveries that left `pending` in that time: the whole backlog unless the drain was cut short. */
  drained: number;
  complete: boolean;
  /** drained / drainSeconds. */
  perSecond: number;
  /** Herald's resident memory, sampled every second from its start: the maximum, and per phase. */
  maxRssMiB: number;
  rssByPhase: Record<string, number>;
  /** Herald's CPU and the machine while draining. */
  cpuPct: number;
  machine: MachineLoad;
  notes: string[];
}

/**
 * The retry schedule of this scenario's Herald: an attempt every second (+/- Herald's 10%
 * jitter), more times than the scenario can last (BENCH_TIMEOUT, plus the 2 minutes of grace
 * run.ts gives each scenario). With Herald's default (5s, 5m, 30m...) most of the backlog
 * would sit waiting for its next retry minutes or hours after the receiver returned, and the
 * drain would time the schedule, not Herald. With 1 s every pending delivery is due within
 * about a second of the receiver's return, so the drain measures how fast Herald works off a
 * backlog. It also keeps Herald busy failing attempts throughout the outage, which is the
 * harder case for its memory. (Every entry costs 3 bytes of environment; Linux allows 128 KiB
 * per variable, so it is capped at 40,000 entries, 11 hours.)
 */
export function backlogRetrySchedule(cfg: BenchConfig): string {
  const entries = Math.min(40_000, Math.ceil((cfg.timeoutMs + 120_000) / 900) + 10);
  return Array.from({ length: entries }, () => '1s').join(',');
}

/**
 * `size` deliveries pile up while the receiver is down, then it comes back. Herald runs
 * normally; its subscriptions point at a reserved port nobody listens on, so every attempt is
 * refused at once and retried (see backlogRetrySchedule). Once every event is published and
 * the backlog is all pending, a receiver starts on exactly that port, and the drain is timed
 * from its first request (so the fixed delay before it, at most a retry delay plus a poll, is
 * not charged to small backlogs) until no delivery is pending. Herald's RSS is sampled every
 * second throughout. run.ts runs this with the big backlog and the 10,000 reference and
 * reports the ratio of their drain rates.
 */
export async function runBacklog(engine: Engine, cfg: BenchConfig, size: number): Promise<BacklogRun> {
  const subs = Math.min(cfg.backlog.subs, size);
  const events = Math.ceil(size / subs);
  const backlog = events * subs;
  const port = await reservePort();
  const receiverUrl = `http://127.0.0.1:${port}`;
  const env = { HERALD_RETRY_SCHEDULE: backlogRetrySchedule(cfg) };
  return withHerald(engine, cfg, `herald-backlog-${engine}-${size}`, async (herald, databaseUrl) => {
    const deadline = performance.now() + cfg.timeoutMs;
    const rss = rssSampler(herald.pid, 1000);
    let receiver: Receiver | null = null;
    try {
      const api = new HeraldApi(herald.url, Math.max(cfg.seedConcurrency, cfg.publishConcurrency));
      rss.mark('seed');
      const seeded = await seed(api, receiverUrl, subs, cfg.seedConcurrency);
      rss.mark('publish');
      const p0 = performance.now();
      // Concurrently over the API: each event fans out to `subs` deliveries inside Herald.
      await mapLimit(Array.from({ length: events }, (_, i) => i), cfg.publishConcurrency, (i) => publishOne(api, seeded, i));
      const publishSeconds = (performance.now() - p0) / 1000;
      await api.close();
      const counter = await openCounter(databaseUrl);
      const pendingAtReturn = await counter.pending();
      const attemptsWhileDown = await counter.attempts();

      rss.mark('drain');
      const heraldCpu = cpuMeter(herald.pid);
      const pgCpu = engine === 'postgres' ? postgresMeter(databaseUrl) : null;
      const clock = performance.now() - Date.now(); // turns the receiver's Date.now() stamps into performance.now()
      receiver = await Receiver.start({ ports: [port] });
      const machine = machineMeter([process.pid, herald.pid, receiver.pid], pgCpu ? [pgCpu] : []);
      // count(*) over a million pending rows is not free: poll big backlogs less often. A drain
      // still running at BENCH_TIMEOUT is cut there and its rate taken over what it did.
      const end = await drainedBy(counter, deadline, Math.min(1000, Math.max(50, Math.round(size / 1000))));
      const cpu = heraldCpu();
      const load = machine();
      const pgPct = pgCpu?.().cpuPct;
      rss.mark('drained');
      const counts = await receiver.counts();
      const statuses = await counter.statuses();
      await counter.close();
      const listening = clock + receiver.listeningAt;
      const first = counts.firstAt === null ? listening : Math.max(listening, clock + counts.firstAt);
      const drainSeconds = (end.at - first) / 1000;
      const drained = pendingAtReturn - end.pending;
      const memory = rss.stop();

      const notes: string[] = [];
      if (pendingAtReturn !== backlog) notes.push(`${pendingAtReturn} pending when the receiver came back, not ${backlog}`);
      if (end.pending > 0) notes.push(`drain cut at BENCH_TIMEOUT with ${end.pending} still pending; the rate is over the ${drained} drained`);
      else if ((statuses.succeeded ?? 0) !== backlog) notes.push(`statuses ${JSON.stringify(statuses)}, expected ${backlog} succeeded`);
      if (end.pending === 0 && counts.received !== backlog) notes.push(`receiver counted ${counts.received} of ${backlog}`);
      if (pgPct !== undefined) notes.push(`its PostgreSQL backends cpu while draining ${pgPct}%`);
      const warnings = herald.logLines().length;
      if (warnings > 0) notes.push(`herald logged ${warnings} warning lines: ${herald.logLines()[0]!.slice(0, 200)}`);
      return {
        engine,
        backlog,
        events,
        subs,
        publishSeconds: round(publishSeconds, 1),
        publishPerSecond: Math.round(events / publishSeconds),
        pendingAtReturn,
        attemptsWhileDown,
        firstDeliverySeconds: round((first - listening) / 1000, 2),
        drainSeconds: round(drainSeconds, 2),
        drained,
        complete: end.pending === 0,
        perSecond: Math.round(drained / drainSeconds),
        maxRssMiB: memory.maxMiB,
        rssByPhase: memory.byPhase,
        cpuPct: cpu.cpuPct,
        machine: load,
        notes,
      };
    } finally {
      rss.stop();
      await receiver?.stop();
    }
  }, env);
}
