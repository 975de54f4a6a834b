/**
 * How long the SQLite store's commits hold the main thread, with WAL checkpoints on a thread
 * of their own ahead of the store's own (the default, src/store/sqlite/checkpointer.ts) and
 * with the store's own only (SQLite's automatic checkpoint, inside the COMMIT that takes the
 * WAL past 1,000 pages). A commit that holds the thread holds every request and delivery
 * with it: this is part of what the publish-latency scenario's p99 is made of, measured
 * without HTTP, a receiver or the noise of the other processes on the machine.
 *
 * The write mix of that scenario (bench/latency.ts: 1,000 publishes a second, one
 * subscription each), into Herald's own tables: on a 1 ms timer (about 800 commits a second
 * on a 2-core VM) the commit of an event and its delivery, followed by its WAL sync as a
 * publish's answer is (WalSync); every 20 ms the commit of the outcomes of the deliveries
 * before (an attempt row each and the delivery's update), as the dispatcher records them on
 * SQLite.
 *
 *   node --import tsx bench/commit-stalls.ts
 *
 * COMMIT_STALLS_SECONDS (default 20) per run, COMMIT_STALLS_ROUNDS (3) rounds of the two
 * ways, alternating. Prints per run: commits, their time on the main thread (p50, p99,
 * p99.9, max, how many took over 5 ms), the event loop's delay (p99, max) and the largest
 * size of the WAL file (sampled every 100 commits).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const SECONDS = Number(process.env.COMMIT_STALLS_SECONDS ?? 20);
const ROUNDS = Number(process.env.COMMIT_STALLS_ROUNDS ?? 3);
const BODY = JSON.stringify({ object: { id: 'x'.repeat(12), name: 'Acme Corporation', email: 'billing@acme.example', notes: 'n'.repeat(400) } });

interface Run {
  way: string;
  commits: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  over5ms: number;
  loopP99: number;
  loopMax: number;
  walMiB: number;
}

async function run(checkpointThread: boolean): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-commit-stalls-'));
  const path = join(dir, 'h.db');
  const store = new SqliteStore(path, { checkpointThread });
  try {
    await store.migrate();
    const { db } = store;
    db.pragma('foreign_keys = OFF'); // events and deliveries without the company, app and subscription they name
    const event = db.prepare(`INSERT INTO events (id, company_id, channel, body, user_id, idempotency_key, created_at) VALUES (?, 'cmp_1', 'client.create', ?, 'usr_1', NULL, ?)`);
    const delivery = db.prepare(`INSERT INTO deliveries (id, event_id, subscription_id, company_id, app_id, channel, origin, status, attempts, next_attempt_at, created_at, updated_at)
      VALUES (?, ?, 'sub_1', 'cmp_1', 'app_1', 'client.create', 'http://127.0.0.1:9', 'pending', 0, ?, ?, ?)`);
    const attempt = db.prepare('INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt) VALUES (?, 1, ?, 3, 200, NULL, NULL)');
    const outcome = db.prepare(`UPDATE deliveries SET status = 'succeeded', attempts = attempts + 1, next_attempt_at = NULL, last_status_code = 200, updated_at = ? WHERE id = ?`);
    const wal = store['walSync']!; // private: how commitPublishes makes a publish durable

    const times: number[] = [];
    const timed = (fn: () => void) => {
      const t = performance.now();
      store.writeRelaxed(fn);
      times.push(performance.now() - t);
    };
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    let n = 0;
    let largestWal = 0;
    let recorded = 0;
    let lastRecord = performance.now();
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) {
      const now = Date.now();
      const id = String(n).padStart(10, '0');
      timed(() => {
        event.run(`evt_${id}`, BODY, now);
        delivery.run(`dlv_${id}`, `evt_${id}`, now, now, now);
      });
      void wal.sync();
      n++;
      if (n % 100 === 0) largestWal = Math.max(largestWal, statSync(`${path}-wal`).size);
      if (performance.now() - lastRecord >= 20) {
        lastRecord = performance.now();
        const upTo = n;
        timed(() => {
          for (; recorded < upTo; recorded++) {
            const rid = `dlv_${String(recorded).padStart(10, '0')}`;
            attempt.run(rid, now);
            outcome.run(now, rid);
          }
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    loop.disable();
    times.sort((a, b) => a - b);
    const q = (p: number) => round(times[Math.min(times.length - 1, Math.floor(times.length * p))]!);
    return {
      way: checkpointThread ? 'checkpoint thread' : 'checkpoint in COMMIT',
      commits: times.length, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: round(times.at(-1)!),
      over5ms: times.filter((t) => t > 5).length,
      loopP99: round(loop.percentile(99) / 1e6), loopMax: round(loop.max / 1e6),
      walMiB: round(largestWal / 2 ** 20),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

console.log(`commit stalls: ${SECONDS} s per run, ${ROUNDS} rounds, publish-latency write mix (1 publish/ms, outcomes every 20 ms)`);
console.log('| way                  | commits | p50 ms | p99 ms | p99.9 ms | max ms | > 5 ms | loop delay p99 / max ms | largest WAL MiB |');
console.log('| -------------------- | ------: | -----: | -----: | -------: | -----: | -----: | ----------------------: | --------------: |');
for (let r = 0; r < ROUNDS; r++) {
  for (const threaded of r % 2 === 0 ? [false, true] : [true, false]) {
    const x = await run(threaded);
    console.log(`| ${x.way.padEnd(20)} | ${String(x.commits).padStart(7)} | ${String(x.p50).padStart(6)} | ${String(x.p99).padStart(6)} | ${String(x.p999).padStart(8)} | ${String(x.max).padStart(6)} | ${String(x.over5ms).padStart(6)} | ${`${x.loopP99} / ${x.loopMax}`.padStart(23)} | ${String(x.walMiB).padStart(15)} |`);
  }
}
