import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { freshPostgresUrl, type FreshPostgres } from '../support/postgres.js';
import { freePort, spawnHerald, type HeraldProcess, type SpawnOptions } from '../support/process.js';
import { ADMIN_TOKEN } from '../support/server.js';

/**
 * Several real `herald serve` processes on one PostgreSQL database: SIGKILLs mid-send, a
 * PostgreSQL restart mid-run, and the --api-only / --worker-only split.
 */

const CONCURRENCY = 16;
// A 5 s timeout: a send times out (and is sent again by a live process, which the first test
// would count as a duplicate not explained by a kill) only if this busy receiver stalls that long.
const ENV = { HERALD_DELIVERY_TIMEOUT: '5s', HERALD_LEASE: '8s', HERALD_POLL_INTERVAL: '200ms', HERALD_CONCURRENCY: String(CONCURRENCY) };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Minimal admin/API client against a child process (as in crash.test.ts). */
function client(url: string) {
  return async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
}

async function seed(call: ReturnType<typeof client>, receiverUrl: string, subs: number): Promise<string> {
  await call('PUT', '/admin/resources/client', { plural: 'clients' });
  const company = await call('POST', '/admin/companies', { name: 'Acme', sub_domain: 'acme' });
  await call('PUT', `/admin/companies/${company.id}/roles/admin`, { permissions: { clients: ['create'] } });
  const user = await call('POST', `/admin/companies/${company.id}/users`, { email: 'a@acme.test', role: 'admin' });
  const app = await call('POST', '/admin/apps', { name: 'Sync', url: `${receiverUrl}/` });
  const grant = await call('POST', '/admin/grants', { app_id: app.id, user_id: user.id, scope: 'api/subs clients' });
  for (let i = 0; i < subs; i++) {
    await call('POST', '/api/subs', { sub: { channel: 'client.create', callback_url: `${receiverUrl}/hook/${i}` } }, grant.access_token);
  }
  return company.id as string;
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The event body the tests publish; the key makes a retry after a killed connection store it once. */
const eventBody = (companyId: string, i: number) => JSON.stringify({
  channel: 'client.create', company_id: companyId, object: { id: `c${i}` }, idempotency_key: `evt-${i}`,
});
const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

/** Spawns several at once; every child that did start is handed to `track`, even if another failed. */
async function spawnAll(dir: string, ports: number[], env: Record<string, string>, track: HeraldProcess[], opts?: SpawnOptions): Promise<HeraldProcess[]> {
  const settled = await Promise.allSettled(ports.map((p) => spawnOne(dir, p, env, opts)));
  for (const s of settled) if (s.status === 'fulfilled') track.push(s.value);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<HeraldProcess>).value);
}

async function killAll(procs: HeraldProcess[]): Promise<void> {
  await Promise.all(procs.map(async (h) => {
    if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
    await h.exited;
  }));
}

/**
 * Runs every cleanup step even if one fails (a failed step is reported, not thrown, so it
 * cannot hide the test's own failure).
 */
async function cleanup(...steps: (() => unknown)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      process.stderr.write(`cleanup step failed: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
}

/** A pool for the test's own checks; its idle clients must not crash the test when PostgreSQL restarts. */
function checkPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  return pool;
}

const alive = (h: HeraldProcess) => h.child.exitCode === null && h.child.signalCode === null;

async function statusCounts(db: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await db.query('SELECT status, count(*)::int AS n FROM deliveries GROUP BY status');
  return Object.fromEntries(rows.map((r) => [String(r.status), Number(r.n)]));
}

// ---------------------------------------------------------------------------------------------
// Which process sent a request. Each Herald process sends from its own loopback address
// (HERALD_EGRESS_ADDRESS: 127.0.0.2, 127.0.0.3, ...), so the receiver knows the sender of every
// request from the socket alone, at once and exactly. (Looking the client port up in /proc
// instead missed connections a sender closed between two lookups, and failed CI once.)
// ---------------------------------------------------------------------------------------------

/** The sending address of each Herald process this file started, and its pid. */
const pidByEgress = new Map<string, number>();
let lastEgress = 1;

/** `spawnHerald`, sending from an address of its own. */
async function spawnOne(dir: string, port: number, env: Record<string, string>, opts?: SpawnOptions): Promise<HeraldProcess> {
  const egress = `127.0.0.${++lastEgress}`;
  const h = await spawnHerald(dir, port, { ...env, HERALD_EGRESS_ADDRESS: egress }, opts);
  pidByEgress.set(egress, h.child.pid!);
  return h;
}

/** One webhook request as the receiver saw it. */
class Hit {
  /** When the 200 was written; null if the sender was gone first. */
  answeredAt: number | null = null;
  /** `seq`: its place in the order of arrival. */
  constructor(readonly id: string, readonly address: string, readonly at: number, readonly seq: number) {}
  /** The sending Herald process, null if it could not be told. */
  get owner(): number | null {
    return pidByEgress.get(this.address) ?? null;
  }
}

/** A loopback receiver that answers 200 after `delay()` ms and records who sent what, and what is open. */
class Tally {
  readonly hits: Hit[] = [];
  readonly open = new Set<Hit>();
  private readonly server = createServer((req, res) => this.handle(req, res));
  port = 0;
  url = '';

  private constructor(private readonly delay: () => number) {}

  static async start(delay: () => number = () => 0): Promise<Tally> {
    const t = new Tally(delay);
    await new Promise<void>((resolve) => t.server.listen(0, '127.0.0.1', resolve));
    t.port = (t.server.address() as AddressInfo).port;
    t.url = `http://127.0.0.1:${t.port}`;
    return t;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const address = req.socket.remoteAddress ?? '';
    req.resume();
    req.on('end', () => {
      const hit = new Hit(String(req.headers['webhook-id']), address, Date.now(), this.hits.length);
      this.hits.push(hit);
      this.open.add(hit);
      res.on('finish', () => {
        hit.answeredAt = Date.now();
        this.open.delete(hit);
      });
      res.on('close', () => this.open.delete(hit));
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      };
      const ms = this.delay();
      if (ms > 0) setTimeout(answer, ms);
      else answer();
    });
  }

  openFrom(pid: number): number {
    let n = 0;
    for (const h of this.open) if (h.owner === pid) n++;
    return n;
  }

  sentBy(pid: number): number {
    let n = 0;
    for (const h of this.hits) if (h.owner === pid) n++;
    return n;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------

test('three processes on one PostgreSQL database, one SIGKILLed twice mid-send: all delivered, duplicates only from the kills', { timeout: 120_000 }, async (t: TestContext) => {
  const started = Date.now();
  const EVENTS = 600;
  const SUBS = 5;
  const dir = mkdtempSync(join(tmpdir(), 'herald-multi-'));
  const procs: HeraldProcess[] = [];
  /** Publishing stops when this is set (the finally sets it, should the test fail mid-run). */
  let aborted = false;
  const phases: Promise<void>[] = [];
  let db: FreshPostgres | undefined;
  let rx: Tally | undefined;
  let pool: pg.Pool | undefined;
  try {
    db = await freshPostgresUrl();
    pool = checkPool(db.url);
    rx = await Tally.start(() => Math.floor(Math.random() * 21)); // 0-20 ms: sends are in flight
    const env = { ...ENV, DATABASE_URL: db.url };
    const ports = [await freePort(), await freePort(), await freePort()];
    // Started together: all three migrate the fresh database at once.
    const [a, b, c] = await spawnAll(dir, ports, env, procs);
    const slots = [a!, b!, c!].map((h, i) => ({ name: 'ABC'[i]!, h, port: ports[i]!, up: true }));
    const victim = slots[2]!;
    const companyId = await seed(client(a!.url), rx.url, SUBS);

    // Publishes spread round-robin over the live processes' APIs. A publish cut off by a kill
    // is retried on another process with the same idempotency key, so each event is stored once.
    const eventIds = new Map<number, string>();
    let cutOff = 0;
    const publishOne = async (i: number): Promise<string> => {
      for (let attempt = 0; attempt < 40; attempt++) {
        if (aborted) throw new Error('aborted');
        const up = slots.filter((s) => s.up);
        const s = up[(i + attempt) % up.length]!;
        try {
          const res = await fetch(`${s.h.url}/admin/events`, { method: 'POST', headers: adminHeaders, body: eventBody(companyId, i), signal: AbortSignal.timeout(10_000) });
          const text = await res.text();
          assert.equal(res.status, 202, `POST /admin/events on ${s.name}: ${text}`);
          return JSON.parse(text).id as string;
        } catch (err) {
          if (!(err instanceof TypeError)) throw err; // fetch failed: the process was killed under it
          cutOff++;
        }
        await sleep(50);
      }
      throw new Error(`event ${i} could not be published`);
    };
    const publishRange = (from: number, to: number): Promise<void> => {
      let next = from;
      const done = Promise.all(Array.from({ length: 16 }, async () => {
        while (next < to) {
          const i = next++;
          eventIds.set(i, await publishOne(i));
        }
      })).then(() => undefined);
      phases.push(done);
      done.catch(() => undefined); // awaited below; if the test fails first, the finally settles it
      return done;
    };

    /** `seq`: the requests that had arrived at the kill are those with a lower seq. */
    interface Kill { pid: number; at: number; seq: number; openTotal: number; openFromVictim: number; sentByVictim: number; openHits: Set<Hit> }
    const kills: Kill[] = [];
    /** SIGKILLs the victim once it has `minOpen` requests open at the receiver (and has sent `minSent`). */
    const killMidSend = async (minOpen: number, minSent: number) => {
      const pid = victim.h.child.pid!;
      const since = Date.now();
      // Three sends open at once, or one if the backlog stays too thin for that (a slow run).
      const busy = () => rx!.openFrom(pid) >= (Date.now() - since < 3000 ? minOpen : 1) && rx!.sentBy(pid) >= minSent;
      // Checked in the same synchronous step as the snapshot and the kill below, so what is
      // open at the receiver then is exactly what was open at the kill.
      for (;;) {
        if (busy()) break;
        if (Date.now() - since > 20_000) {
          const by = new Map<string, number>();
          for (const h of rx!.hits) by.set(String(h.owner), (by.get(String(h.owner)) ?? 0) + 1);
          throw new Error(`process ${pid} never had a send open; at +${Date.now() - started}ms: ${eventIds.size} events published, requests by process ${JSON.stringify([...by])}`);
        }
        await sleep(5);
      }
      victim.up = false;
      const openHits = new Set([...rx!.open].filter((h) => h.owner === pid));
      victim.h.child.kill('SIGKILL');
      kills.push({ pid, at: Date.now(), seq: rx!.hits.length, openTotal: rx!.open.size, openFromVictim: openHits.size, sentByVictim: rx!.sentBy(pid), openHits });
      await victim.h.exited;
    };

    const phase1 = publishRange(0, EVENTS / 2);
    await killMidSend(3, 100); // mid-run: once it has been delivering for a while
    victim.h = await spawnOne(dir, victim.port, env); // restarted on the same port and database
    procs.push(victim.h);
    victim.up = true;
    await phase1;
    const phase2 = publishRange(EVENTS / 2, EVENTS);
    await killMidSend(3, 50); // later: once the restarted process has been delivering for a while
    await phase2;
    const publishedAt = Date.now();

    const total = EVENTS * SUBS;
    await waitUntil('every delivery to succeed', async () => (await statusCounts(pool!)).succeeded === total, 45_000);
    const drainedAt = Date.now();
    await sleep(500); // a late re-send would show up here

    // The database: every event stored once, every delivery succeeded, nothing pending.
    assert.equal(eventIds.size, EVENTS);
    assert.equal(new Set(eventIds.values()).size, EVENTS);
    assert.equal(Number((await pool.query('SELECT count(*) AS n FROM events')).rows[0].n), EVENTS);
    assert.deepEqual(await statusCounts(pool), { succeeded: total });
    const ids = (await pool.query('SELECT id FROM deliveries')).rows.map((r) => String(r.id));
    assert.equal(ids.length, total);

    // The receiver: every delivery acknowledged at least once, nothing it does not know of.
    const byId = new Map<string, Hit[]>();
    for (const h of rx.hits) byId.set(h.id, [...(byId.get(h.id) ?? []), h]);
    const known = new Set(ids);
    assert.deepEqual([...byId.keys()].filter((id) => !known.has(id)), [], 'requests for deliveries not in the database');
    for (const id of ids) assert.ok(byId.get(id)?.some((h) => h.answeredAt !== null), `delivery ${id} was never acknowledged`);
    const unattributed = rx.hits.filter((h) => h.owner === null);
    assert.deepEqual(unattributed.map((h) => ({ id: h.id, address: h.address, at: h.at - started, answeredAt: h.answeredAt })), [], `every request is attributed to its sending process; kills ${JSON.stringify(kills.map((k) => ({ pid: k.pid, at: k.at - started })))}`);

    // Duplicates: only a delivery whose earlier request(s) came from a process that was then
    // killed, re-sent after the kill by a live process.
    const killOf = new Map(kills.map((k) => [k.pid, k]));
    /** Per kill, the killed process's requests that were sent again, by where each stood at the kill. */
    const perKill = kills.map(() => ({ resent: 0, answered: 0, open: 0, inTransit: 0 }));
    let duplicateAcks = 0;
    let duplicateRequests = 0;
    for (const [id, hits] of byId) {
      if (hits.length === 1) continue;
      hits.sort((x, y) => x.seq - y.seq);
      const last = hits[hits.length - 1]!;
      const earlier = hits.slice(0, -1);
      duplicateRequests += earlier.length;
      duplicateAcks += Math.max(0, hits.filter((h) => h.answeredAt !== null).length - 1);
      for (const e of earlier) {
        const k = killOf.get(e.owner!);
        assert.ok(k, `delivery ${id} was sent again although its earlier request (process ${e.owner}) was not from a killed process`);
        // Sent before the kill (a dead process sends nothing); read by this busy receiver at most a moment later.
        assert.ok(e.at <= k.at + 2000, `delivery ${id}: the earlier request reached the receiver ${e.at - k.at}ms after the kill`);
        assert.ok(last.seq >= k.seq && last.owner !== k.pid, `delivery ${id}: re-sent after the kill by a live process`);
        const c = perKill[kills.indexOf(k)]!;
        c.resent++;
        if (k.openHits.has(e)) c.open++;
        else if (e.seq >= k.seq) c.inTransit++;
        else c.answered++;
      }
    }
    // The bound. A kill loses what the killed process had claimed and not yet recorded: its
    // sends still in flight, at most HERALD_CONCURRENCY (open at the receiver, or still on the
    // wire), plus answers it had received whose outcomes were waiting for their group commit
    // (a few milliseconds' worth; 2 x HERALD_CONCURRENCY in all is the practical bound).
    for (const [n, k] of kills.entries()) {
      const c = perKill[n]!;
      const notResent = [...k.openHits].filter((h) => byId.get(h.id)!.at(-1) === h);
      const history = (id: string) => byId.get(id)!.map((h) => ({ owner: h.owner, at: h.at - started, answered: h.answeredAt === null ? null : h.answeredAt - started }));
      assert.deepEqual(notResent.map((h) => ({ id: h.id, history: history(h.id) })), [], `kill ${n + 1} at +${k.at - started}ms (pid ${k.pid}): a request open at the kill was not sent again`);
      assert.equal(c.open, k.openFromVictim, `kill ${n + 1}: every request open at the kill is sent again, and only those`);
      assert.ok(c.open + c.inTransit <= CONCURRENCY, `kill ${n + 1}: ${c.open + c.inTransit} re-sent deliveries were in flight, over HERALD_CONCURRENCY`);
      assert.ok(c.resent <= 2 * CONCURRENCY, `kill ${n + 1}: ${c.resent} deliveries re-sent, over 2 x HERALD_CONCURRENCY`);
    }
    assert.ok(duplicateAcks <= duplicateRequests && duplicateRequests <= 2 * CONCURRENCY * kills.length);

    t.diagnostic(`deliveries ${total} (events ${EVENTS} x subs ${SUBS}), requests ${rx.hits.length}, duplicate requests ${duplicateRequests}, duplicate acks ${duplicateAcks}, publishes cut off by a kill and retried ${cutOff}`);
    for (const [n, k] of kills.entries()) {
      const c = perKill[n]!;
      t.diagnostic(`kill ${n + 1} at +${k.at - started}ms: open at receiver ${k.openTotal} (from the killed process ${k.openFromVictim}), sent by it ${k.sentByVictim}; sent again ${c.resent} (answered before the kill ${c.answered}, open at it ${c.open}, still on the wire ${c.inTransit})`);
    }
    t.diagnostic(`published by +${publishedAt - started}ms, all succeeded by +${drainedAt - started}ms, total ${Date.now() - started}ms`);
  } finally {
    aborted = true;
    await cleanup(
      () => Promise.allSettled(phases),
      () => killAll(procs),
      () => rx?.close(),
      () => pool?.end(),
      () => db?.drop(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  }
});

// ---------------------------------------------------------------------------------------------

const PG_VERSION = (() => {
  try {
    return readdirSync('/etc/postgresql').sort()[0];
  } catch {
    return undefined;
  }
})();

function pgctl(action: 'stop' | 'start' | 'status'): Promise<number> {
  if (!PG_VERSION) throw new Error('no /etc/postgresql: this test restarts the local cluster with pg_ctlcluster');
  return new Promise((resolve) => {
    execFile('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, 'main', action], { timeout: 60_000 }, (err) => {
      resolve(err ? (typeof err.code === 'number' ? err.code : 1) : 0);
    });
  });
}

/** Other tests need PostgreSQL: whatever happened, leave it running. */
async function ensurePostgresRunning(): Promise<void> {
  if ((await pgctl('status')) !== 0) await pgctl('start');
}

interface Call { proc: number; start: number; end: number; status: number | 'timeout' | 'network'; type: string; body: any } // eslint-disable-line @typescript-eslint/no-explicit-any

async function timedCall(proc: number, url: string, init: RequestInit): Promise<Call> {
  const start = Date.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { proc, start, end: Date.now(), status: res.status, type: res.headers.get('content-type') ?? '', body };
  } catch (err) {
    return { proc, start, end: Date.now(), status: (err as Error).name === 'TimeoutError' ? 'timeout' : 'network', type: '', body: String(err) };
  }
}

test('PostgreSQL restarted mid-run: 503 while it is down, both processes recover by themselves, every 202 is delivered', { timeout: 120_000 }, async (t: TestContext) => {
  const started = Date.now();
  const SUBS = 3;
  const dir = mkdtempSync(join(tmpdir(), 'herald-pgrestart-'));
  const procs: HeraldProcess[] = [];
  /** The publisher and the probes run while this is true (the finally clears it, should the test fail). */
  let running = true;
  /** Set by the finally: every loop ends. */
  let done = false;
  /** The publisher, the probes and every call still under way: all settled in the finally. */
  const loops: Promise<unknown>[] = [];
  let db: FreshPostgres | undefined;
  let rx: Tally | undefined;
  let pool: pg.Pool | undefined;
  try {
    assert.equal(await pgctl('status'), 0, 'PostgreSQL is running before the test');
    db = await freshPostgresUrl();
    // 200-400 ms per answer: sends are in flight when PostgreSQL stops, their outcomes unrecorded.
    rx = await Tally.start(() => 200 + Math.floor(Math.random() * 201));
    const env = { ...ENV, DATABASE_URL: db.url };
    const hs = await spawnAll(dir, [await freePort(), await freePort()], env, procs);
    const companyId = await seed(client(hs[0]!.url), rx.url, SUBS);

    // ~20 events/s, alternating between the two processes, each call timed; /readyz of both
    // probed every 100 ms. Neither waits for the previous call, so a hang cannot hide.
    const publishes: Call[] = [];
    const probes: Call[] = [];
    const calls = new Set<Promise<void>>();
    const publisher = (async () => {
      for (let i = 0; running; i++) {
        const p = timedCall(i % 2, `${hs[i % 2]!.url}/admin/events`, { method: 'POST', headers: adminHeaders, body: eventBody(companyId, i) })
          .then((c) => void publishes.push(c));
        calls.add(p);
        loops.push(p);
        void p.finally(() => calls.delete(p));
        await sleep(50);
      }
    })();
    const prober = Promise.all(hs.map(async (h, n) => {
      while (running) {
        probes.push(await timedCall(n, `${h.url}/readyz`, {}));
        await sleep(100);
      }
    }));

    loops.push(publisher, prober);

    await sleep(4000);
    const stopAt = Date.now();
    assert.equal(await pgctl('stop'), 0, 'pg_ctlcluster stop');
    const downFrom = Date.now();
    await sleep(2000);
    const downUntil = Date.now();
    assert.equal(await pgctl('start'), 0, 'pg_ctlcluster start');
    const upAt = Date.now();
    // When both LISTEN connections are back (the listener reconnects with backoff by itself).
    pool = checkPool(db.url);
    let relistenedAt: number | null = null;
    const relistened = (async () => {
      while (!done && relistenedAt === null && Date.now() - upAt < 20_000) {
        const { rows } = await pool!.query(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'",
        ).catch(() => ({ rows: [{ n: 0 }] }));
        if (Number(rows[0]!.n) === 2) relistenedAt = Date.now();
        else await sleep(50);
      }
    })();
    loops.push(relistened);
    await sleep(5000);
    running = false;
    await publisher;
    await prober;
    await Promise.all(calls);

    for (const h of hs) assert.ok(alive(h), `a Herald process died (${h.child.exitCode ?? h.child.signalCode}):\n${h.output().slice(-4000)}`);
    // Every answer is a 202 or a 503 problem+json, promptly: no 500, no hang, no dropped connection.
    const bad = publishes.filter((c) => c.status !== 202 && c.status !== 503);
    assert.deepEqual(bad, [], 'every publish answered 202 or 503');
    for (const c of publishes.filter((x) => x.status === 503)) {
      assert.match(c.type, /^application\/problem\+json/);
      assert.equal(c.body.status, 503);
      assert.equal(c.body.code, 'SERVICE_UNAVAILABLE');
    }
    const slowest = Math.max(...publishes.map((c) => c.end - c.start));
    assert.ok(slowest < 5000, `a publish took ${slowest}ms`);
    // While PostgreSQL was down, every publish and every /readyz answered 503, on both processes.
    const inside = (c: Call) => c.start >= downFrom && c.end <= downUntil;
    const downPublishes = publishes.filter(inside);
    assert.ok(downPublishes.length >= 20, `${downPublishes.length} publishes while PostgreSQL was down`);
    assert.deepEqual([...new Set(downPublishes.map((c) => c.status))], [503]);
    for (const n of [0, 1]) {
      const down = probes.filter((c) => c.proc === n && inside(c));
      assert.ok(down.length >= 5, `process ${n}: ${down.length} /readyz probes while PostgreSQL was down`);
      assert.deepEqual([...new Set(down.map((c) => c.status))], [503], `process ${n}: /readyz while PostgreSQL was down`);
      for (const c of down) assert.match(c.type, /^application\/problem\+json/);
    }
    assert.deepEqual(probes.filter((c) => c.status !== 200 && c.status !== 503), [], 'every /readyz answered 200 or 503');

    // Both recovered by themselves (neither was restarted): ready again, publishing again.
    assert.ok(hs.every(alive), 'both processes still running');
    const recovery = [0, 1].map((n) => {
      const ready = probes.find((c) => c.proc === n && c.start >= upAt && c.status === 200);
      const published = publishes.find((c) => c.proc === n && c.start >= upAt && c.status === 202);
      assert.ok(ready, `process ${n}: /readyz 200 again after PostgreSQL came back`);
      assert.ok(published, `process ${n}: a publish answered 202 again after PostgreSQL came back`);
      return { ready: ready.end - upAt, published: published.end - upAt };
    });

    // Every 202 was stored and all its deliveries succeeded; nothing is left pending.
    const accepted = publishes.filter((c) => c.status === 202).map((c) => String(c.body.id));
    assert.equal(new Set(accepted).size, accepted.length);
    const expected = accepted.length * SUBS;
    const countFor = async (status: string) => Number((await pool!.query(
      'SELECT count(*) AS n FROM deliveries WHERE event_id = ANY($1::text[]) AND status = $2', [accepted, status],
    )).rows[0].n);
    await waitUntil('every delivery of every accepted event to succeed', async () => (await countFor('succeeded')) === expected, 30_000);
    const drainedAt = Date.now();
    const storedEvents = Number((await pool.query('SELECT count(*) AS n FROM events WHERE id = ANY($1::text[])', [accepted])).rows[0].n);
    assert.equal(storedEvents, accepted.length, 'every event answered 202 is stored');
    await waitUntil('nothing pending', async () => (await statusCounts(pool!)).pending === undefined, 10_000);
    const counts = await statusCounts(pool);
    assert.deepEqual(Object.keys(counts), ['succeeded']);
    const acked = new Set(rx.hits.filter((h) => h.answeredAt !== null).map((h) => h.id));
    const acceptedDeliveries = (await pool.query('SELECT id FROM deliveries WHERE event_id = ANY($1::text[])', [accepted])).rows;
    assert.equal(acceptedDeliveries.length, expected);
    for (const r of acceptedDeliveries) assert.ok(acked.has(String(r.id)), `delivery ${r.id} acknowledged by the receiver`);

    // Both dispatchers resumed: each process sent webhooks after PostgreSQL came back.
    const resumed = hs.map((h) => rx!.hits.find((x) => x.owner === h.child.pid && x.at >= upAt));
    for (const [n, first] of resumed.entries()) assert.ok(first, `process ${n}: delivered again after PostgreSQL came back`);
    // Outcomes whose recording failed while PostgreSQL was away, kept and retried (see the log).
    const logged = (what: string) => hs.map((h) => h.output().split('\n').filter((l) => l.includes(what)).length);

    // And both LISTEN connections came back.
    await relistened;
    assert.ok(relistenedAt !== null, 'both processes LISTEN again within 20 s');

    const count = (s: Call['status']) => publishes.filter((c) => c.status === s).length;
    t.diagnostic(`publishes ${publishes.length}: 202 ${count(202)}, 503 ${count(503)} (${downPublishes.length} while fully down), slowest ${slowest}ms; probes ${probes.length}`);
    t.diagnostic(`PostgreSQL stop took ${downFrom - stopAt}ms, down ${downUntil - downFrom}ms, start took ${upAt - downUntil}ms`);
    t.diagnostic(`after start: /readyz 200 in ${recovery.map((r) => `${r.ready}ms`).join(' / ')}, first 202 in ${recovery.map((r) => `${r.published}ms`).join(' / ')}; all ${expected} deliveries of accepted events succeeded ${drainedAt - Math.max(...publishes.map((c) => c.end))}ms after the last publish`);
    t.diagnostic(`LISTEN re-established on both ${relistenedAt - upAt}ms after start; receiver requests ${rx.hits.length} for ${counts.succeeded} deliveries`);
    t.diagnostic(`first webhook sent after start: ${resumed.map((x) => `${x!.at - upAt}ms`).join(' / ')}; logged 'recording outcomes failed; retrying' ${logged('recording outcomes failed').join(' / ')}, 'claiming deliveries failed' ${logged('claiming deliveries failed').join(' / ')}`);
    t.diagnostic(`total ${Date.now() - started}ms`);
  } finally {
    running = false;
    done = true;
    await cleanup(
      ensurePostgresRunning,
      () => Promise.allSettled(loops),
      () => killAll(procs),
      () => rx?.close(),
      () => pool?.end(),
      () => db?.drop(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  }
});

// ---------------------------------------------------------------------------------------------

test('herald serve --api-only never delivers; --worker-only serves no HTTP but delivers', { timeout: 60_000 }, async (t: TestContext) => {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'herald-split-'));
  const procs: HeraldProcess[] = [];
  let db: FreshPostgres | undefined;
  let rx: Tally | undefined;
  let pool: pg.Pool | undefined;
  try {
    db = await freshPostgresUrl();
    pool = checkPool(db.url);
    rx = await Tally.start();
    const env = { ...ENV, DATABASE_URL: db.url };
    const [api] = await spawnAll(dir, [await freePort()], env, procs, { args: ['--api-only'] });
    const call = client(api!.url);
    const companyId = await seed(call, rx.url, 2);
    for (let i = 0; i < 5; i++) await call('POST', '/admin/events', JSON.parse(eventBody(companyId, i)));
    await sleep(1500); // seven poll intervals
    assert.equal(rx.hits.length, 0, '--api-only sent nothing');
    assert.deepEqual(await statusCounts(pool), { pending: 10 });

    const workerPort = await freePort();
    const worker = await spawnOne(dir, workerPort, env, { args: ['--worker-only'], waitForHealth: false });
    procs.push(worker);
    await waitUntil('the worker to deliver the backlog', async () => {
      if (!alive(worker)) throw new Error(`--worker-only exited: ${worker.output()}`);
      return (await statusCounts(pool!)).succeeded === 10;
    }, 30_000);
    // A publish on the API process now is delivered by the worker too.
    await call('POST', '/admin/events', JSON.parse(eventBody(companyId, 5)));
    await waitUntil('the new event to be delivered', async () => (await statusCounts(pool!)).succeeded === 12, 10_000);
    assert.deepEqual(await statusCounts(pool), { succeeded: 12 });
    assert.equal(new Set(rx.hits.map((h) => h.id)).size, 12);
    assert.ok(rx.hits.every((h) => h.owner === worker.child.pid), 'every request came from the --worker-only process');

    // No HTTP: nothing listens on the port it was given, and it is still running.
    await assert.rejects(fetch(`${worker.url}/healthz`), (err: Error) => {
      assert.equal((err.cause as { code?: string } | undefined)?.code, 'ECONNREFUSED');
      return true;
    });
    assert.ok(alive(worker));
    t.diagnostic(`total ${Date.now() - started}ms`);
  } finally {
    await cleanup(
      () => killAll(procs),
      () => rx?.close(),
      () => pool?.end(),
      () => db?.drop(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  }
});
