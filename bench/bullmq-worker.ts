/**
 * The BullMQ worker of scenario 2, in its own process like Herald's dispatcher: each job is
 * one delivery; it signs and POSTs it with undici and throws on a non-2xx answer, so BullMQ
 * retries it with the same schedule as Herald (attempts and delays from HERALD_RETRY_SCHEDULE).
 */
import { Worker } from 'bullmq';
import { Agent, request } from 'undici';
import { buildBenchRequest, type BenchDelivery } from './payload.js';

export interface WorkerSetup {
  queue: string;
  redisUrl: string;
  concurrency: number;
  connectionsPerOrigin: number;
  /** Jobs before the measured ones (the warm-up): 'warm' is sent when they have ended. */
  warmUp: number;
  /** The measured jobs: 'done' is sent when they have ended too. */
  expected: number;
  retrySchedule: number[];
}
export type WorkerReply = { type: 'ready' } | { type: 'warm' } | { type: 'done'; completed: number; failed: number };

const setup = JSON.parse(process.env.BENCH_WORKER_SETUP!) as WorkerSetup;
const redis = new URL(setup.redisUrl);
const agent = new Agent({ connections: setup.connectionsPerOrigin, keepAliveTimeout: 10_000 });

const worker = new Worker<BenchDelivery>(
  setup.queue,
  async (job) => {
    const req = buildBenchRequest(job.data, Date.now());
    const res = await request(job.data.sub.callback_url, { method: 'POST', headers: req.headers, body: req.body, dispatcher: agent, signal: AbortSignal.timeout(15_000) });
    await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`receiver answered ${res.statusCode}`);
  },
  {
    connection: { host: redis.hostname, port: Number(redis.port || 6379), maxRetriesPerRequest: null },
    concurrency: setup.concurrency,
    settings: { backoffStrategy: (attemptsMade: number) => setup.retrySchedule[attemptsMade - 1] ?? setup.retrySchedule.at(-1) ?? 0 },
  },
);

// Jobs ended in the current phase: the warm-up's, then (counted from zero) the measured ones,
// which are only enqueued once 'warm' has been answered.
let warming = setup.warmUp > 0;
let completed = 0;
let failed = 0;
const finish = () => {
  const ended = completed + failed;
  if (warming && ended === setup.warmUp) {
    warming = false;
    completed = failed = 0;
    process.send!({ type: 'warm' } satisfies WorkerReply);
  } else if (!warming && ended === setup.expected) process.send!({ type: 'done', completed, failed } satisfies WorkerReply);
};
worker.on('completed', () => {
  completed++;
  finish();
});
worker.on('failed', (job) => {
  if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) failed++;
  finish();
});
worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));

await worker.waitUntilReady();
process.send!({ type: 'ready' } satisfies WorkerReply);
process.on('message', async (msg: { type: string }) => {
  if (msg.type !== 'stop') return;
  await worker.close();
  await agent.close();
  process.exit(0);
});
