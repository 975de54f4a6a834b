import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { DeliveryConfig } from '../config.js';
import type { Notification } from './request.js';
import { noAnswer, type SendResult, type Transport } from './transport.js';

/**
 * One delivery as it crosses to the send thread: the thread builds and signs its request
 * (buildNotification). A turn's deliveries cross in one message, an array of these; the
 * parts they share (event, subscription, company, signer: toNotification) are cloned once.
 *
 * Why the thread signs: Herald's main thread is what limits it (bench, SQLite, 100 x 1,000:
 * 51 us of main-thread time per delivery, 89% busy, while the send thread idled 43% of the
 * time), and building the request (JSON, base64url, HMAC) was 12% of the main thread's time.
 */
export interface SendRequest {
  id: number;
  url: string;
  notification: Notification;
}

/**
 * A Transport that sends from a worker thread: the main thread claims, checks and records;
 * the thread signs (SendRequest) and runs undici (HTTP framing, socket writes, parsing answers, timers).
 * Requests made in one turn of the event loop go in one message, answers come back the
 * same way, so the cost between threads is per batch, not per delivery.
 *
 * Why: on SQLite Herald's one thread was the limit (95-100% of a core at 4,300-4,800
 * deliveries/s, the machine 64% busy), and undici's part of it (its own code, socket
 * writes, streams) was about a third (--cpu-prof of bench/herald.ts). One thread keeps every
 * origin's connections in one undici agent, so HERALD_CONNECTIONS_PER_ORIGIN still holds.
 *
 * If the thread dies, what it had in flight fails as attempts that sent nothing ("sender
 * thread stopped"), retried on the schedule like any failure, and the next send starts a
 * new thread.
 */
export class ThreadedSender implements Transport {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: SendResult) => void; started: number }>();
  private readonly outbox = new PerTurn<SendRequest>((batch) => this.thread().postMessage(batch));
  private idle: (() => void)[] = [];
  private closed = false;

  constructor(private readonly cfg: DeliveryConfig, private readonly allowPrivate: boolean) {}

  deliver(url: string, notification: Notification): Promise<SendResult> {
    if (this.closed) return Promise.resolve(noAnswer('sender closed', 0));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve, started: performance.now() });
      this.outbox.push({ id, url, notification });
    });
  }

  private settle(id: number, result: SendResult): void {
    this.pending.get(id)?.resolve(result);
    this.pending.delete(id);
    if (this.pending.size === 0) for (const done of this.idle.splice(0)) done();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    setFlagsFromString(`--initial-old-space-size=${THREAD_INITIAL_OLD_MB}`); // THREAD_INITIAL_OLD_MB says why
    const workerData = { cfg: this.cfg, allowPrivate: this.allowPrivate };
    const worker = import.meta.url.endsWith('.ts')
      ? // Running from src/ under tsx (tests, the bench): a worker does not inherit tsx's
        // loader, so it registers it before importing the TypeScript file.
        new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./send-worker.ts', import.meta.url).href)}); });`,
          { eval: true, workerData, resourceLimits: THREAD_HEAP },
        )
      : new Worker(new URL('./send-worker.js', import.meta.url), { workerData, resourceLimits: THREAD_HEAP });
    worker.on('message', (answers: [number, SendResult][]) => {
      for (const [id, result] of answers) this.settle(id, result);
    });
    const lost = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = null;
      for (const [id, p] of this.pending) this.settle(id, noAnswer(why, performance.now() - p.started));
    };
    worker.on('error', (err) => lost(`sender thread stopped: ${err.message}`));
    worker.on('exit', (code) => lost(`sender thread stopped (exit ${code})`));
    this.worker = worker;
    return worker;
  }

  /** @internal Ends the thread as a crash would (tests of what a lost thread does). */
  async terminate(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Lets the thread finish what it has in flight (they end by their timeout at worst), then stops it. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    if (this.pending.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.worker !== worker) return; // it died meanwhile
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage('close');
    await exited;
  }
}

/**
 * The thread's heap. A young generation of 16 MB: big enough that a request in flight
 * (about 20 ms at 256 slots) mostly dies before a scavenge copies it, small enough to keep
 * resident memory down. Measured (bench, SQLite, 100 x 1,000, alternating runs, deliveries/s):
 * 4 MB 9,266, 9,491 and 9,349; 16 MB 9,906, 10,462 and 10,757; 32 MB 9,347, 10,927 and 11,296;
 * 64 MB 9,294, 10,462 and 11,611. With 4 MB the thread scavenged every 10 ms, copying what was
 * in flight each time and promoting it, so old space filled too: --trace-gc counted 845
 * scavenges (1,374 ms) and 65 mark-compacts (267 ms, and concurrent marking on V8's helper
 * threads, 27% of a core) out of the thread's 4.8 s; with 16 MB, 187 (873 ms) and 43 (234 ms).
 * Resident memory (bench/backlog.ts, 1,000,000 pending, max RSS): 4 MB 247 and 224 MiB
 * (SQLite, PostgreSQL), 16 MB 251-255 and 233-247 MiB (three full runs), 32 MB 268 and 252
 * MiB. Earlier, with 100,000 pending: V8's default young generation made it 301 MiB, and 1 MB
 * drained slower (4,897 against 6,147 deliveries/s).
 *
 * The old generation is capped at 256 MB. Request bodies are not in it while in flight: the
 * thread turns each into bytes outside V8's heap as soon as it is signed (send-worker.ts), so
 * neither `concurrency` sends of the largest body nor sends that stalled (dispatcher.ts,
 * STALL_MS) fill it. Measured (test/integration/delivery.test.ts, 256 requests of 1.4 MiB in
 * flight at once): while bodies were strings in the thread's heap, this cap ended the thread
 * ("JS heap out of memory", all 256 failed); as bytes, all were answered.
 */
const THREAD_HEAP = { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 256 };

/**
 * Where the thread's old generation starts its first mark-compact, in MB. V8 sizes a new
 * isolate's first old-generation limit from its small start-up heap, and the thread's
 * stayed small: --trace-gc of the bench's SQLite scenario (100 x 1,000) counted 43-45
 * mark-compacts in its 14 s, one every 300 ms, each freeing 7 MB of an 18 MB heap. Their
 * concurrent marking runs on V8's helper threads, which (with the scavenges' parallel work)
 * had 10-13% of Herald's samples in perf. With the first limit at 32 MB the thread ran no
 * mark-compact in the whole run, and its scavenges paused it for 478 ms in all, against
 * 918-1,152 ms. Alternating runs (deliveries/s; Herald's CPU per delivery): SQLite 7,016 ->
 * 9,814, 6,161 -> 6,911, 6,006 -> 6,574 (170 -> 112, 193 -> 168, 198 -> 175 us); PostgreSQL
 * 3,902 -> 4,861, 4,936 -> 6,323, 5,537 -> 6,332 (210 -> 152, 154 -> 122, 147 -> 119 us).
 * Resident memory with 1,000,000 deliveries pending (bench/backlog.ts, max RSS): 260 and 247
 * MiB (SQLite, PostgreSQL), against 250-255 and 233-247 in earlier full runs.
 *
 * A V8 flag is process-wide and is read when an isolate is created: it is set just before
 * the thread starts, so the main thread's heap (created with the process) keeps V8's own
 * sizing. Isolates started later get it too: the checkpointer's (checkpointer.ts), where it
 * does nothing (it allocates next to nothing), and, when Herald runs embedded (createHerald),
 * the host's own worker threads, whose first mark-compact then also waits for 32 MB of old
 * generation. The young generation is as above.
 */
const THREAD_INITIAL_OLD_MB = 32;

/** Items pushed during one turn of the event loop, handed to `flush` together at its end. */
export class PerTurn<T> {
  private items: T[] = [];

  constructor(private readonly flush: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > 1) return;
    setImmediate(() => {
      const items = this.items;
      this.items = [];
      this.flush(items);
    });
  }
}
