import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchConfig, Engine } from './config.js';
import { drainedBy, HeraldApi, openCounter, waitUntilDrained } from './herald-process.js';
import { postgresMeter, publishOne, seed, withHerald } from './herald.js';
import { benchEvent } from './payload.js';
import type { Receiver } from './receiver.js';
import { cpuMeter, forkListening, machineMeter, mapLimit, percentile, round, sleep, type MachineLoad } from './util.js';

/** The target: publish answers within 10 ms at the 99th percentile. */
export const LATENCY_TARGET_MS = 10;
/** Events published (closed loop, 4 in flight) before measuring, so Herald's code is warm. */
const WARMUP_EVENTS = 200;
/**
 * Then this long at the full rate, open loop, not measured: the 64 publisher connections
 * open and the code at that rate gets optimised. Measured with the closed-loop warm-up alone
 * (SQLite, 15 s): the first second's p99 was 164-376 ms, the later seconds' 10-40 ms; like
 * the limit loop's own warm-up, this measures the steady state.
 */
const WARMUP_SECONDS = 2;

/** Publish answer times under the open-loop load, Herald's or the floor's (answerTimes). */
export interface AnswerTimes {
  /** Events per second asked for, and for how long. */
  rate: number;
  seconds: number;
  /** Publishes scheduled, answered 202, and failed (another status, or no answer). */
  events: number;
  answered: number;
  errors: number;
  /** Answer time of each publish, counted from its scheduled start (see runLatency). */
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Publishes answered later than LATENCY_TARGET_MS after their scheduled start. */
  late: number;
  /**
   * How far behind its schedule the publisher itself sent a request (its own event loop's
   * lag, counted in the times above), at the 99th percentile of requests and at worst: the
   * part of the answer times that is the load generator's, not Herald's.
   */
  senderLagP99Ms: number;
  senderLagMaxMs: number;
}

/**
 * The answers of an open loop's publishes: `send` (openLoop's callback) makes publish `i` and
 * times its answer from its scheduled start; a failed one is counted, the first kept.
 */
class Answers {
  readonly times: number[] = [];
  /** Answer times by the second of the window they were scheduled in. */
  readonly bySecond: number[][];
  errors = 0;
  firstError: string | null = null;

  constructor(private readonly rate: number, private readonly seconds: number, private readonly publish: (i: number) => Promise<unknown>) {
    this.bySecond = Array.from({ length: seconds }, () => []);
  }

  readonly send = async (i: number, due: number): Promise<void> => {
    try {
      await this.publish(i);
      const ms = performance.now() - due;
      this.times.push(ms);
      this.bySecond[Math.min(this.seconds - 1, Math.floor(i / this.rate))]!.push(ms);
    } catch (err) {
      this.errors++;
      this.firstError ??= (err as Error).message;
    }
  };
}

function answerTimes(rate: number, seconds: number, { times, errors }: Answers, lags: number[]): AnswerTimes {
  const max = (xs: number[]) => round(xs.reduce((a, b) => Math.max(a, b), 0), 1);
  return {
    rate,
    seconds,
    events: rate * seconds,
    answered: times.length,
    errors,
    p50Ms: round(percentile(times, 50), 1),
    p99Ms: round(percentile(times, 99), 1),
    p999Ms: round(percentile(times, 99.9), 1),
    maxMs: max(times),
    late: times.filter((t) => t > LATENCY_TARGET_MS).length,
    senderLagP99Ms: round(percentile(lags, 99), 1),
    senderLagMaxMs: max(lags),
  };
}

export interface LatencyResult extends AnswerTimes {
  engine: Engine;
  subs: number;
  deliveries: {
    /** Deliveries of the events scheduled in the window (events x subs). */
    expected: number;
    /** Received by the receiver within the window, and per second. */
    inWindow: number;
    perSecond: number;
    /** Deliveries not yet received when the window closed, and the most at any 1 s sample. */
    backlogAtEnd: number;
    maxBacklog: number;
    /** From the window's end until no delivery was pending; null: still some after BENCH_TIMEOUT. */
    drainSeconds: number | null;
    /** The backlog at the window's end was under one second's worth of deliveries. */
    keptUp: boolean;
  };
  cpuPct: number;
  machine: MachineLoad;
  notes: string[];
}

/**
 * Publish latency under a steady load: `rate` events per second for `seconds`, each to
 * `subs` subscriptions on the shared receiver, so Herald delivers while it answers publishes.
 *
 * Open loop: request i is sent at t0 + i/rate whatever happened to the previous ones, and
 * its answer time counts from that scheduled start. A closed loop (send the next when the
 * previous answered) slows down exactly when Herald does, so it never measures the requests
 * a slow answer delayed: coordinated omission, which hides the tail this scenario is about.
 * Requests that the publisher itself sent late (its timer, its event loop) are still timed
 * from their schedule; senderLagMaxMs says how late it got. One keep-alive undici Pool with
 * `connections` sockets carries them; beyond that they queue in the pool, which counts too.
 */
export async function runLatency(engine: Engine, cfg: BenchConfig, receiver: Receiver): Promise<LatencyResult> {
  const { rate, seconds, subs, connections } = cfg.latency;
  return withHerald(engine, cfg, `herald-latency-${engine}`, async (herald, databaseUrl) => {
    const deadline = performance.now() + cfg.timeoutMs;
    const api = new HeraldApi(herald.url, connections);
    const seeded = await seed(api, receiver.url, subs, cfg.seedConcurrency);
    const counter = await openCounter(databaseUrl);
    await mapLimit(Array.from({ length: WARMUP_EVENTS }, (_, i) => i), 4, (i) => publishOne(api, seeded, i));
    await waitUntilDrained(counter, cfg.timeoutMs);
    await receiver.count(true);

    const n = rate * seconds;
    const interval = 1000 / rate;
    const warmup = rate * WARMUP_SECONDS;
    await Promise.all((await openLoop(warmup, interval, performance.now(), (i) => publishOne(api, seeded, WARMUP_EVENTS + i))).inFlight);
    await waitUntilDrained(counter, cfg.timeoutMs);
    await receiver.count(true);
    const answers = new Answers(rate, seconds, (i) => publishOne(api, seeded, WARMUP_EVENTS + warmup + i));

    const heraldCpu = cpuMeter(herald.pid);
    const machine = machineMeter([process.pid, herald.pid, receiver.pid], engine === 'postgres' ? [postgresMeter(databaseUrl)] : []);
    const t0 = performance.now();
    // The delivery backlog once a second: deliveries of the events scheduled so far, minus received.
    let maxBacklog = 0;
    let sampling = Promise.resolve();
    const sampler = setInterval(() => {
      sampling = receiver.count().then((received) => {
        const scheduled = Math.min(n, Math.floor((performance.now() - t0) / interval) + 1);
        maxBacklog = Math.max(maxBacklog, scheduled * subs - received);
      });
    }, 1000);
    const { inFlight, lags: senderLags } = await openLoop(n, interval, t0, answers.send);
    const windowEnd = performance.now();
    const cpu = heraldCpu();
    const load = machine();
    clearInterval(sampler);
    await sampling;
    const inWindow = await receiver.count();
    const windowS = (windowEnd - t0) / 1000;
    await Promise.all(inFlight);
    // Whether deliveries kept up is decided at the window's end; how long the rest takes is
    // secondary, so a slow drain is cut at BENCH_TIMEOUT and reported, not a failure.
    const drained = await drainedBy(counter, deadline);
    const statuses = await counter.statuses();
    const received = await receiver.count(true);
    await counter.close();
    await api.close();

    const expected = n * subs;
    const backlogAtEnd = expected - inWindow;
    const notes: string[] = [];
    if (answers.firstError) notes.push(`${answers.errors} publishes failed, the first: ${answers.firstError.slice(0, 200)}`);
    const answered = answers.times.length;
    notes.push(`p99 ms by second: ${answers.bySecond.map((t) => round(percentile(t, 99), 1)).join(' ')}`);
    if (drained.pending > 0) notes.push(`${drained.pending} deliveries still pending ${round((drained.at - windowEnd) / 1000)} s after the window (BENCH_TIMEOUT)`);
    else if ((statuses.succeeded ?? 0) !== (WARMUP_EVENTS + warmup + answered) * subs) notes.push(`statuses ${JSON.stringify(statuses)}, expected ${(WARMUP_EVENTS + warmup + answered) * subs} succeeded`);
    if (drained.pending === 0 && received !== answered * subs) notes.push(`receiver counted ${received} of ${answered * subs}`);
    const warnings = herald.logLines().length;
    if (warnings > 0) notes.push(`herald logged ${warnings} warning lines: ${herald.logLines()[0]!.slice(0, 200)}`);
    return {
      engine,
      subs,
      ...answerTimes(rate, seconds, answers, senderLags),
      deliveries: {
        expected,
        inWindow,
        perSecond: Math.round(inWindow / windowS),
        backlogAtEnd,
        maxBacklog: Math.max(maxBacklog, backlogAtEnd),
        drainSeconds: drained.pending === 0 ? round((drained.at - windowEnd) / 1000, 2) : null,
        keptUp: backlogAtEnd <= rate * subs,
      },
      cpuPct: cpu.cpuPct,
      machine: load,
      notes,
    };
  });
}

/** The floor's answer times under the same load (runLatencyFloor). */
export interface LatencyFloorResult extends AnswerTimes {
  /** Events the floor had delivered (signed POST answered 200) when the window closed, of `answered`. */
  delivered: number;
  cpuPct: number;
  machine: MachineLoad;
}

const FLOOR_ENTRY = fileURLToPath(new URL('./latency-floor-process.ts', import.meta.url));

/**
 * The latency scenario against its floor (bench/latency-floor-process.ts): a Fastify server
 * that makes each publish durable with an fdatasync and then delivers it with one signed
 * POST, storing nothing else. Same publisher (HeraldApi, `connections` keep-alive sockets),
 * same warm-up, same open loop, same receiver: what is left of Herald's answer times above
 * these is Herald's own (its database, its dispatcher), the rest is this machine's.
 */
export async function runLatencyFloor(cfg: BenchConfig, receiver: Receiver): Promise<LatencyFloorResult> {
  const { rate, seconds, connections } = cfg.latency;
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-floor-'));
  try {
    const options = { receiverUrl: receiver.url, file: join(dir, 'floor.bin'), connections: cfg.connectionsPerOrigin };
    const { child, listening } = await forkListening<{ url: string }>(FLOOR_ENTRY, options, 'latency floor');
    const exited = new Promise<void>((resolve) => (child.exitCode === null ? child.once('exit', () => resolve()) : resolve()));
    const api = new HeraldApi(listening.url, connections);
    try {
      const publish = (i: number) => api.call('POST', '/admin/events', { ...benchEvent(i), company_id: 'floor', user_id: 'floor' });
      await mapLimit(Array.from({ length: WARMUP_EVENTS }, (_, i) => i), 4, publish);
      const warmup = rate * WARMUP_SECONDS;
      const interval = 1000 / rate;
      await Promise.all((await openLoop(warmup, interval, performance.now(), (i) => publish(WARMUP_EVENTS + i))).inFlight);
      await receiver.count(true);
      const answers = new Answers(rate, seconds, (i) => publish(WARMUP_EVENTS + warmup + i));
      const cpu = cpuMeter(child.pid!);
      const machine = machineMeter([process.pid, child.pid!, receiver.pid]);
      const { inFlight, lags } = await openLoop(rate * seconds, interval, performance.now(), answers.send);
      const used = cpu();
      const load = machine();
      const delivered = await receiver.count();
      await Promise.all(inFlight);
      await receiver.count(true);
      return { ...answerTimes(rate, seconds, answers, lags), delivered, cpuPct: used.cpuPct, machine: load };
    } finally {
      await api.close();
      child.kill('SIGTERM');
      await exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Sends `n` requests, request i at t0 + i x interval whatever happened to the earlier ones
 * (open loop); resolves once all are sent, with their promises and how late the sender itself
 * sent each one.
 */
async function openLoop(n: number, interval: number, t0: number, send: (i: number, due: number) => Promise<unknown>): Promise<{ inFlight: Promise<unknown>[]; lags: number[] }> {
  const inFlight: Promise<unknown>[] = [];
  const lags: number[] = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    lags.push(performance.now() - due);
    inFlight.push(send(i, due));
  }
  return { inFlight, lags };
}
