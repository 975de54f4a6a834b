import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ADMIN_TOKEN } from '../support/server.js';
import { freePort, spawnHerald } from '../support/process.js';
import { Receiver } from '../support/receiver.js';

/** Minimal admin/API client against a child process. */
function client(url: string) {
  return async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
}

async function seed(call: ReturnType<typeof client>, receiverUrl: string, subs: number) {
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

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a process killed with SIGKILL mid-send redelivers everything after restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-crash-'));
  // Phase 1: the receiver holds every request open, so deliveries are in flight when we kill.
  const succeeded = new Map<string, number>();
  let hold = true;
  const rx = await Receiver.start((r) => {
    if (hold) return { status: 200, delayMs: 60_000 };
    const id = String(r.headers['webhook-id']);
    succeeded.set(id, (succeeded.get(id) ?? 0) + 1);
    return { status: 200 };
  });
  const port = await freePort();
  const env = { HERALD_DELIVERY_TIMEOUT: '10s', HERALD_LEASE: '12s', HERALD_CONCURRENCY: '8' };
  let h = await spawnHerald(dir, port, env);
  try {
    const call = client(h.url);
    const companyId = await seed(call, rx.url, 3);
    const events = 20;
    for (let i = 0; i < events; i++) {
      await call('POST', '/admin/events', { channel: 'client.create', company_id: companyId, object: { id: `c${i}` } });
    }
    await rx.waitFor(8, 10_000); // eight sends in flight (the concurrency), none answered
    const inFlight = new Set(rx.received.map((r) => String(r.headers['webhook-id'])));
    h.child.kill('SIGKILL');
    await h.exited;

    // Phase 2: restart on the same database with a receiver that answers at once.
    hold = false;
    h = await spawnHerald(dir, port, env);
    const call2 = client(h.url);
    const total = events * 3;
    await waitUntil('every delivery to succeed', async () => {
      const { deliveries } = await call2('GET', '/admin/deliveries?status=succeeded&limit=1000');
      return deliveries.length === total;
    }, 45_000);
    const pending = await call2('GET', '/admin/deliveries?status=pending&limit=1000');
    assert.equal(pending.deliveries.length, 0);
    const all = (await call2('GET', '/admin/deliveries?limit=1000')).deliveries as { id: string }[];
    assert.equal(all.length, total);
    for (const d of all) assert.ok(succeeded.has(d.id), `delivery ${d.id} was acknowledged by the receiver`);
    // Every delivery was acknowledged exactly once after the restart; those in flight at the
    // kill were also sent once before it (unanswered), which is the only duplication allowed.
    for (const [id, n] of succeeded) assert.equal(n, 1, `delivery ${id} acknowledged ${n} times`);
    assert.ok(inFlight.size <= 8);
  } finally {
    h.child.kill('SIGKILL');
    await h.exited;
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM drains in-flight sends and records them before exiting', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-term-'));
  const rx = await Receiver.start(() => ({ status: 200, delayMs: 800 }));
  const port = await freePort();
  let h = await spawnHerald(dir, port);
  try {
    const call = client(h.url);
    const companyId = await seed(call, rx.url, 2);
    await call('POST', '/admin/events', { channel: 'client.create', company_id: companyId, object: { id: 'c1' } });
    await rx.waitFor(2, 10_000);
    h.child.kill('SIGTERM');
    assert.equal(await h.exited, 0, h.output());
    // Restart: both deliveries were recorded as succeeded before exit, so nothing is re-sent.
    h = await spawnHerald(dir, port);
    const { deliveries } = await client(h.url)('GET', '/admin/deliveries');
    assert.deepEqual(deliveries.map((d: { status: string; attempts: number }) => [d.status, d.attempts]), [['succeeded', 1], ['succeeded', 1]]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rx.received.length, 2);
  } finally {
    h.child.kill('SIGKILL');
    await h.exited;
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
