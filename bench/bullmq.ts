/**
 * Scenario 2, the usual alternative: BullMQ on Redis. `bullmq` (and `ioredis`, its Redis
 * driver) are devDependencies used only here: BullMQ with a worker per delivery is the
 * comparison baseline issue 6 asks for, the queue most Node.js webhook senders are built on.
 *
 * One job per delivery (subs x events), enqueued with addBulk in chunks, a Worker in its own
 * process with Herald's concurrency and retry schedule; measured from the first enqueue to
 * the last completed job. Completed jobs stay in Redis (up to BENCH_BULLMQ_KEEP), as Herald
 * keeps each delivery. The queue is obliterated before and after.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { BenchConfig } from './config.js';
import type { WorkerReply, WorkerSetup } from './bullmq-worker.js';
import type { ThroughputResult } from './limit.js';
import { benchDelivery, type BenchDelivery } from './payload.js';
import type { Receiver } from './receiver.js';
import { cpuMeter, machineMeter, round, withTimeout } from './util.js';

const QUEUE = 'herald-bench';
const CHUNK = 1000;
/** Jobs the worker runs before the measured ones (the warm-up). */
const WARM_UP_JOBS = 2000;
const WORKER = fileURLToPath(new URL('./bullmq-worker.ts', import.meta.url));

export async function runBullmq(cfg: BenchConfig, receiver: Receiver): Promise<ThroughputResult> {
  const url = new URL(cfg.redisUrl);
  const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
  const queue = new Queue<BenchDelivery>(QUEUE, { connection });
  await queue.obliterate({ force: true });
  const expected = cfg.subs * cfg.events;
  const setup: WorkerSetup = {
    queue: QUEUE,
    redisUrl: cfg.redisUrl,
    concurrency: cfg.concurrency,
    connectionsPerOrigin: cfg.connectionsPerOrigin,
    warmUp: WARM_UP_JOBS,
    expected,
    retrySchedule: cfg.retrySchedule,
  };
  const child = fork(WORKER, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_WORKER_SETUP: JSON.stringify(setup) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (type: WorkerReply['type']) =>
    new Promise<WorkerReply>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`bullmq worker exited with ${code}`)));
      child.on('message', (m: WorkerReply) => m.type === type && resolve(m));
    });
  const redisPid = await redisServerPid(cfg.redisUrl);
  const jobOpts = {
    attempts: cfg.retrySchedule.length + 1,
    backoff: { type: 'custom' },
    removeOnComplete: { count: cfg.bullmqKeep },
    removeOnFail: false,
  };
  try {
    await withTimeout(next('ready'), 30_000, 'bullmq worker start');
    // The warm-up, as the limit loop's and Herald's (bench/herald.ts, warmUp): sockets open
    // and code hot before measuring. Jobs for 10 subscriptions, counted apart by the worker.
    const warm = next('warm');
    await queue.addBulk(Array.from({ length: WARM_UP_JOBS }, (_, i) => ({ name: 'deliver', data: benchDelivery(receiver.url, cfg.events + Math.floor(i / 10), i % 10), opts: jobOpts })));
    await withTimeout(warm, cfg.timeoutMs, 'bullmq warm-up');
    const done = next('done');
    await receiver.count(true);
    const worker = cpuMeter(child.pid!);
    const recv = cpuMeter(receiver.pid);
    const redisCpu = redisPid ? cpuMeter(redisPid) : null;
    const machine = machineMeter([process.pid, child.pid!, receiver.pid, ...(redisPid ? [redisPid] : [])]);
    const t0 = performance.now();
    let batch: { name: string; data: BenchDelivery; opts: typeof jobOpts }[] = [];
    for (let e = 0; e < cfg.events; e++) {
      for (let s = 0; s < cfg.subs; s++) {
        batch.push({ name: 'deliver', data: benchDelivery(receiver.url, e, s), opts: jobOpts });
        if (batch.length === CHUNK) {
          await queue.addBulk(batch);
          batch = [];
        }
      }
    }
    if (batch.length > 0) await queue.addBulk(batch);
    const enqueueS = (performance.now() - t0) / 1000;
    const result = (await withTimeout(done, cfg.timeoutMs, 'bullmq')) as Extract<WorkerReply, { type: 'done' }>;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = worker();
    const load = machine();
    const received = await receiver.count(true);
    const notes = [`enqueue ${round(enqueueS, 1)} s`];
    if (redisCpu) notes.push(`redis cpu ${redisCpu().cpuPct}%`);
    if (result.failed > 0) notes.push(`${result.failed} failed`);
    if (received !== expected) notes.push(`receiver counted ${received} of ${expected}`);
    return {
      scenario: 'BullMQ + Redis, worker process',
      deliveries: expected,
      seconds: round(seconds, 2),
      perSecond: Math.round(expected / seconds),
      cpuPct: cpu.cpuPct,
      receiverCpuPct: recv().cpuPct,
      machine: load,
      notes,
    };
  } finally {
    child.removeAllListeners('exit');
    if (child.connected) child.send({ type: 'stop' });
    await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
    await queue.obliterate({ force: true });
    await queue.close();
  }
}

/** The Redis server's pid, to measure its CPU too (null when Redis is not local). */
async function redisServerPid(redisUrl: string): Promise<number | null> {
  const url = new URL(redisUrl);
  if (!['127.0.0.1', 'localhost', '::1'].includes(url.hostname)) return null;
  const redis = new Redis({ host: url.hostname, port: Number(url.port || 6379), lazyConnect: true });
  try {
    await redis.connect();
    const m = /process_id:(\d+)/.exec(await redis.info('server'));
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  } finally {
    redis.disconnect();
  }
}
