import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Pool } from 'undici';
import { freshPostgresUrl } from '../test/support/postgres.js';
import type { Engine } from './config.js';
import { freePort, sleep } from './util.js';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The node flags `npm start` gives Herald (package.json's start script, `node <flags>
 * dist/cli.js serve`; src/cli.ts says why). The bench runs Herald with them, so it measures
 * the process `npm start` runs.
 */
export const START_FLAGS: readonly string[] = (() => {
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
  const flags = /^node((?: --[\w-]+(?:=\S+)?)*) dist\/cli\.js serve$/.exec(start);
  if (!flags) throw new Error(`package.json's start script is not "node [flags] dist/cli.js serve": ${start}`);
  return flags[1]!.trim().split(' ').filter(Boolean);
})();

/** A fresh, empty database for one Herald: a SQLite file in a temp dir, or a new PostgreSQL database. */
export async function freshDatabase(engine: Engine): Promise<{ url: string; drop(): Promise<void> }> {
  if (engine === 'postgres') return freshPostgresUrl();
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  return { url: `sqlite:${join(dir, 'herald.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HeraldChild {
  url: string;
  pid: number;
  /** Lines Herald logged (LOG_LEVEL=warn: only warnings and errors). */
  logLines(): string[];
  /** SIGTERM (Herald drains and exits, which also writes a --cpu-prof profile), then waits. */
  stop(): Promise<void>;
}

export interface StartOptions {
  databaseUrl: string;
  /** Run a compiled cli.js instead of src/cli.ts under tsx. */
  compiledCli?: string;
  /**
   * Write V8 CPU profiles of the whole run into this directory: one per thread, and under
   * tsx the module loader's thread writes one too (mainThreadProfile() picks Herald's).
   */
  cpuProfile?: { dir: string };
  /** Extra environment of this Herald (HERALD_RETRY_SCHEDULE, HERALD_DELIVERY_TIMEOUT...); wins over the bench's own. */
  env?: Record<string, string>;
}

/** `herald serve` in its own process, so its CPU is its own; resolves once /healthz answers. */
export async function startHerald(opts: StartOptions): Promise<HeraldChild> {
  const port = await freePort();
  const args = [
    ...START_FLAGS,
    ...(opts.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfile.dir}`] : []),
    ...(opts.compiledCli ? [opts.compiledCli] : ['--import', 'tsx', join(ROOT, 'src/cli.ts')]),
    'serve',
  ];
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: opts.databaseUrl,
    HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
    HERALD_ALLOW_PRIVATE_CALLBACKS: 'true',
    LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`herald exited at start: ${out}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`herald did not start within 30 s: ${out}`);
    }
    await sleep(100);
  }
  return {
    url,
    pid: child.pid!,
    logLines: () => out.split('\n').filter(Boolean),
    stop: () => stopChild(child, exited),
  };
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** JSON over HTTP to Herald, on a pool of keep-alive connections. */
export class HeraldApi {
  private readonly pool: Pool;

  constructor(readonly url: string, connections: number) {
    this.pool = new Pool(url, { connections, keepAliveTimeout: 10_000 });
  }

  async call(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, token = ADMIN_TOKEN, expect = [200, 201, 202]): Promise<any> {
    const res = await this.pool.request({
      method,
      path,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    if (!expect.includes(res.statusCode)) throw new Error(`${method} ${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Reads the deliveries table directly (not over Herald's API, which would load the process
 * being measured). Polls `anyPending`, which the due index (SQLite's partial
 * `deliveries_due`, PostgreSQL's `delivery_queue_due`) answers with one probe: once every
 * publish was acknowledged, no pending row left means every delivery has its outcome;
 * `statuses()` then checks they all succeeded. (Polling `count(*)` of the pending rows every
 * 50 ms read the whole backlog each time: on PostgreSQL, mid-run samples found that count
 * running in 18 of 60, a backend's worth of CPU taken from Herald's.)
 */
export interface DeliveryCounter {
  /** Whether any delivery is pending, or a fan-out still has deliveries to queue: an index probe and a look at `fanouts`. */
  anyPending(): Promise<boolean>;
  /** How many are: reads them all, so not for tight polling. */
  pending(): Promise<number>;
  statuses(): Promise<Record<string, number>>;
  /** Attempts made so far, over every delivery (a table scan: not for tight polling). */
  attempts(): Promise<number>;
  close(): Promise<void>;
}

/**
 * `origins` (receiver origins as deliveries store them, `http://127.0.0.1:port/`) limits the
 * counts to the deliveries to those origins (the hanging scenario counts the healthy ones
 * apart). `anyPending` then probes the (origin, due) index once per origin. (Filtered by app
 * instead, the probe walked the hanging origin's pending backlog on every poll: 3.3 ms a
 * poll on PostgreSQL by the end of a 10 s run, CPU taken from the Herald being measured in
 * that run only.)
 */
export async function openCounter(databaseUrl: string, origins?: readonly string[]): Promise<DeliveryCounter> {
  const sqlite = databaseUrl.startsWith('sqlite:');
  const only = !origins ? '' : sqlite ? ` AND origin IN (${origins.map(() => '?').join(', ')})` : ' AND origin = ANY($1)';
  // On PostgreSQL the pending deliveries are the rows of delivery_queue (migration 009).
  const pendingRows = sqlite ? "deliveries WHERE status = 'pending'" : 'delivery_queue WHERE true';
  const PENDING = `SELECT count(*) AS n FROM ${pendingRows}${only}`;
  // A fan-out whose publish left the rest to queue (its `fanouts` row, migration 008) is
  // pending too, though none of its later deliveries exist yet: without it, a fan-out whose
  // queued chunk was delivered before the next chunk was queued counted as drained (seen with
  // expansion chunks of 2,500 on PostgreSQL: runs "delivered" 10,000 at 149,325/s, and the
  // run after took the rest). One statement, so one snapshot: an expansion moves deliveries
  // and its cursor in one transaction. With `origins`, any fan-out still counts (its
  // deliveries' origins are not known before they are queued).
  const ANY_PENDING = `SELECT (EXISTS (SELECT 1 FROM ${pendingRows}${only}) OR EXISTS (SELECT 1 FROM fanouts)) AS any`;
  const STATUSES = `SELECT status, count(*) AS n FROM deliveries WHERE true${only} GROUP BY status`;
  const ATTEMPTS = `SELECT coalesce(sum(attempts), 0) AS n FROM deliveries WHERE true${only}`;
  const toRecord = (rows: { status: string; n: number | string }[]) => Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  if (sqlite) {
    const db = new Database(databaseUrl.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
    const pending = db.prepare(PENDING);
    const anyPending = db.prepare(ANY_PENDING);
    const statuses = db.prepare(STATUSES);
    const attempts = db.prepare(ATTEMPTS);
    const params = origins ?? [];
    return {
      anyPending: async () => (anyPending.get(...params) as { any: number }).any === 1,
      pending: async () => (pending.get(...params) as { n: number }).n,
      statuses: async () => toRecord(statuses.all(...params) as { status: string; n: number }[]),
      attempts: async () => (attempts.get(...params) as { n: number }).n,
      close: async () => void db.close(),
    };
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  // A connection PostgreSQL ends (a restart, a forced drop) must fail the scenario's next
  // query, not crash the whole run through an unhandled 'error' event.
  let lost: Error | null = null;
  client.on('error', (err) => (lost = err));
  await client.connect();
  const params = origins ? [origins] : [];
  return {
    anyPending: async () => (await client.query<{ any: boolean }>(ANY_PENDING, params)).rows[0]!.any,
    pending: async () => Number((await client.query<{ n: string }>(PENDING, params)).rows[0]!.n),
    statuses: async () => toRecord((await client.query<{ status: string; n: string }>(STATUSES, params)).rows),
    attempts: async () => Number((await client.query<{ n: string }>(ATTEMPTS, params)).rows[0]!.n),
    close: () => (lost ? Promise.resolve() : client.end()),
  };
}

/** Polls until no delivery is pending; resolves with performance.now() at that moment. */
export async function waitUntilDrained(counter: DeliveryCounter, timeoutMs: number, intervalMs = 50): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!(await counter.anyPending())) return performance.now();
    if (performance.now() > deadline) throw new Error(`deliveries still pending after ${timeoutMs / 1000}s (BENCH_TIMEOUT)`);
    await sleep(intervalMs);
  }
}

/**
 * Polls until no delivery is pending or `deadline` (performance.now()) has passed; resolves
 * with the moment and what was still pending then (0 when drained), so a scenario can report
 * a partial drain instead of failing.
 */
export async function drainedBy(counter: DeliveryCounter, deadline: number, intervalMs = 50): Promise<{ at: number; pending: number }> {
  for (;;) {
    const any = await counter.anyPending();
    const at = performance.now();
    if (!any) return { at, pending: 0 };
    if (at > deadline) return { at, pending: await counter.pending() };
    await sleep(intervalMs);
  }
}
