/**
 * Herald's own work per delivery, phase by phase, without HTTP or a receiver: publish (the
 * event and its fan-out, committed), claim, build the signed request, record the outcome.
 * Runs in this process on one thread, so the figures are CPU time per delivery of the
 * main thread's store work, steadier than the end-to-end scenarios (nothing else competes
 * for the core). Use it to compare changes to the store; `npm run bench` says what they
 * are worth end to end.
 *
 *   node --import tsx bench/store-loop.ts            # SQLite
 *   ENGINE=postgres node --import tsx bench/store-loop.ts
 *
 * STORE_LOOP_EVENTS (default 320) events per round to STORE_LOOP_SUBS (100) subscriptions,
 * STORE_LOOP_ROUNDS (3) rounds; claims of STORE_LOOP_CLAIM (16) deliveries, about what the
 * dispatcher claims at a time under load. Prints microseconds per delivery per round.
 */
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { buildRequest } from '../src/delivery/request.js';
import { createHerald } from '../src/herald.js';
import type { Engine } from './config.js';
import { freshDatabase } from './herald-process.js';
import { benchEvent } from './payload.js';

const int = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const engine: Engine = process.env.ENGINE === 'postgres' ? 'postgres' : 'sqlite';
const SUBS = int('STORE_LOOP_SUBS', 100);
const EVENTS = int('STORE_LOOP_EVENTS', 320);
const ROUNDS = int('STORE_LOOP_ROUNDS', 3);
const CLAIM = int('STORE_LOOP_CLAIM', 16);
/** Publishes in flight, as the bench's publisher has (BENCH_PUBLISH_CONCURRENCY). */
const PUBLISHING = 16;
const ADMIN = 'store-loop-admin-token-0123456789';

const db = await freshDatabase(engine);
const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: db.url, HERALD_ADMIN_TOKEN: ADMIN, HERALD_ALLOW_PRIVATE_CALLBACKS: 'true', HERALD_SEND_THREAD: 'false', LOG_LEVEL: 'silent' });
// No dispatcher (worker: false): this loop claims and records itself.
const herald = await createHerald(config, { logger: pino({ level: 'silent' }), worker: false });
try {
  // Seeded through the API (in-process requests, nothing listens), as the bench seeds.
  const call = async (method: 'POST' | 'PUT', url: string, payload: object, token = ADMIN) => {
    const res = await herald.http!.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };
  await call('PUT', '/admin/resources/client', { plural: 'clients' });
  const company = await call('POST', '/admin/companies', { name: 'Acme', sub_domain: 'acme' });
  await call('PUT', `/admin/companies/${company.id}/roles/admin`, { permissions: { clients: ['create', 'read', 'update', 'delete'] } });
  const user = await call('POST', `/admin/companies/${company.id}/users`, { email: 'ann@acme.test', name: 'Ann', role: 'admin' });
  const app = await call('POST', '/admin/apps', { name: 'Loop', url: 'http://127.0.0.1:9/' });
  const grant = await call('POST', '/admin/grants', { app_id: app.id, user_id: user.id, scope: 'api/subs clients' });
  for (let i = 0; i < SUBS; i++) {
    await call('POST', '/api/subs', { sub: { channel: 'client.create', callback_url: `http://127.0.0.1:9/hooks/${i}` } }, grant.access_token);
  }

  const phases = { publish: [] as number[], claim: [] as number[], build: [] as number[], record: [] as number[] };
  const room = { perOrigin: 1_000_000, inFlight: new Map<string, number>() };
  let next = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const events = Math.ceil(EVENTS / PUBLISHING) * PUBLISHING;
    const n = events * SUBS;
    let t = performance.now();
    for (let i = 0; i < events; i += PUBLISHING) {
      await Promise.all(Array.from({ length: PUBLISHING }, () => herald.publish({ ...benchEvent(next++), company_id: company.id, user_id: user.id })));
    }
    phases.publish.push(((performance.now() - t) * 1000) / n);
    let claimMs = 0;
    let buildMs = 0;
    let recordMs = 0;
    let claimed = 0;
    for (;;) {
      t = performance.now();
      const batch = await herald.store.claimDueDeliveries(CLAIM, Date.now(), 60_000, room);
      claimMs += performance.now() - t;
      if (batch.length === 0) break;
      claimed += batch.length;
      const now = Date.now();
      t = performance.now();
      for (const d of batch) {
        buildRequest(d.app!, { deliveryId: d.id, event: d.event, subscription: d.subscription!, company: d.company!, accessToken: 'a'.repeat(43), tokenExpiresAt: now + 3_600_000, now }, d.previousSecrets);
      }
      buildMs += performance.now() - t;
      t = performance.now();
      await herald.store.recordOutcomes(batch.map((d) => ({
        kind: 'succeeded' as const,
        id: d.id,
        lease: d.lease,
        attempt: { delivery_id: d.id, attempt: d.attempts + 1, started_at: now, duration_ms: 2, status_code: 200, error: null, response_excerpt: null },
      })));
      recordMs += performance.now() - t;
    }
    if (claimed !== n) throw new Error(`round ${round}: claimed ${claimed} of ${n} deliveries`);
    phases.claim.push((claimMs * 1000) / n);
    phases.build.push((buildMs * 1000) / n);
    phases.record.push((recordMs * 1000) / n);
  }
  console.log(`store loop on ${engine}: ${SUBS} subscriptions x ${EVENTS} events, ${ROUNDS} rounds, claims of ${CLAIM}; us per delivery by round`);
  for (const [phase, us] of Object.entries(phases)) console.log(`  ${phase.padEnd(8)} ${us.map((x) => x.toFixed(1).padStart(6)).join(' ')}`);
} finally {
  await herald.stop();
  await db.drop();
}
