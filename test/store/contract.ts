import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '../../src/domain/ids.js';
import { matchesResource } from '../../src/domain/subscription.js';
import { FAN_OUT_CHUNK } from '../../src/store/rows.js';
import { originKey, type App, type Attempt, type ClaimedDelivery, type Store, type Subscription } from '../../src/store/types.js';

/**
 * For the engines' migration tests of the unique attempt index (PostgreSQL 011, SQLite 009):
 * attempts as a database could hold them before it, one logged twice and attempt 1 of a
 * second holder, and what the migration keeps of them ([started_at, response_excerpt]).
 */
export const ATTEMPTS_LOGGED_TWICE = `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt) VALUES
  ('dlv_a', 1, 100, 5, 200, NULL, 'first'), ('dlv_a', 1, 100, 5, 200, NULL, 'again'), ('dlv_a', 1, 900, 7, 500, NULL, 'other holder')`;
export const ATTEMPTS_KEPT = [[100, 'first'], [900, 'other holder']];

/**
 * The Store contract: every engine must pass this suite, each run on a fresh database.
 * `open` returns a new, empty, migrated-or-not store; `dispose` removes it.
 */
export function storeContract(engine: string, open: () => Promise<Store>, dispose: (s: Store) => Promise<void>): void {
  describe(`Store contract: ${engine}`, () => {
    let store: Store;
    const T0 = 1_700_000_000_000;
    let companyId: string;
    let appId: string;
    let userId: string;
    let grantId: string;

    before(async () => {
      store = await open();
      await store.migrate();
      await store.migrate(); // idempotent
      await store.putResourceType({ type: 'client', plural: 'clients', actions: ['create', 'update', 'delete', 'merge'], parents: [] });
      await store.putResourceType({ type: 'task', plural: 'tasks', actions: ['create'], parents: ['project'] });
      companyId = newId('co');
      await store.createCompany({ id: companyId, name: 'Acme', sub_domain: `acme-${companyId.slice(-6).toLowerCase()}`, created_at: T0 });
      await store.putRole({ company_id: companyId, name: 'admin', permissions: { clients: ['create'] } });
      userId = newId('usr');
      await store.createUser({ id: userId, company_id: companyId, email: 'a@acme.test', name: 'A', role: 'admin', created_at: T0, updated_at: T0 }, null);
      appId = newId('app');
      await store.createApp({
        id: appId, name: 'App', url: 'https://app.example.com/', redirect_uris: [], signature: 'signed_request',
        client_id: newId('app'), client_secret: 's', signing_secret: 'whsec_x', public_client: false, created_at: T0,
      });
      grantId = newId('grt');
      await store.createGrant(
        { id: grantId, app_id: appId, user_id: userId, company_id: companyId, scope: 'api/subs clients', created_at: T0, revoked_at: null },
        { hash: `hash-${grantId}`, grant_id: grantId, expires_at: T0 + 3600_000, created_at: T0 },
      );
    });
    after(async () => dispose(store));

    const owner = () => ({ app_id: appId, user_id: userId, company_id: companyId });
    async function newSub(channels: string[], resource: Subscription['resource'] = null, grant = grantId): Promise<Subscription> {
      const sub: Subscription = {
        id: newId('sub'), grant_id: grant, ...owner(), channels, callback_url: 'https://app.example.com/h',
        resource, headers: { 'X-Key': 'v' }, content_type: 'form', created_at: T0, updated_at: T0,
      };
      await store.createSubscription(sub);
      return sub;
    }
    const event = (channel: string, extra: { resources?: Record<string, string>; key?: string; objectId?: string | number } = {}) => ({
      id: newId('evt'), company_id: companyId, channel, object: { id: extra.objectId ?? 'o1' }, links: [],
      resources: extra.resources ?? {}, user_id: null, idempotency_key: extra.key ?? null,
    });
    const attempt = (id: string, n: number, at: number, code: number | null): Attempt => ({
      delivery_id: id, attempt: n, started_at: at, duration_ms: 5, status_code: code, error: code === 200 ? null : 'x', response_excerpt: null,
    });
    /** Claims everything due and leaves the queue empty for the next test. */
    async function drain(now: number) {
      const claimed = await store.claimDueDeliveries(1000, now, 10_000);
      await store.recordOutcomes(claimed.map((c) => ({ kind: 'dropped' as const, id: c.id, lease: c.lease, reason: 'test', at: now })));
    }

    test('settings keep the first value', async () => {
      assert.equal(await store.settingIfAbsent('k', 'one'), 'one');
      assert.equal(await store.settingIfAbsent('k', 'two'), 'one');
    });

    test('resource types: upsert keeps order, a plural names one type', async () => {
      await store.putResourceType({ type: 'client', plural: 'clients', actions: ['create', 'update', 'delete', 'merge'], parents: [] });
      const types = await store.listResourceTypes();
      assert.deepEqual(types.map((t) => t.type), ['client', 'task']);
      assert.deepEqual(types[0]!.actions, ['create', 'update', 'delete', 'merge']);
      await assert.rejects(store.putResourceType({ type: 'customer', plural: 'clients', actions: ['create'], parents: [] }), { code: 'CONFLICT' });
    });

    test('unique sub_domain and per-company email', async () => {
      const c = (await store.getCompany(companyId))!;
      await assert.rejects(store.createCompany({ ...c, id: newId('co') }), { code: 'SUB_DOMAIN_TAKEN' });
      const u = (await store.getUser(companyId, userId))!;
      await assert.rejects(store.createUser({ ...u, id: newId('usr') }, null), { code: 'EMAIL_TAKEN' });
      assert.equal(await store.getUser('co_other', userId), null);
    });

    test('an access token is found by its hash with its grant, app and user', async () => {
      const ctx = await store.findAccessToken(`hash-${grantId}`);
      assert.equal(ctx?.grant.id, grantId);
      assert.equal(ctx?.app.id, appId);
      assert.equal(ctx?.user.id, userId);
      assert.equal(ctx?.expires_at, T0 + 3600_000);
      assert.equal(await store.findAccessToken('nope'), null);
    });

    test('subscriptions are visible only to their owner', async () => {
      const sub = await newSub(['client.create']);
      assert.deepEqual(await store.getSubscription(owner(), sub.id), sub);
      assert.equal(await store.getSubscription({ ...owner(), user_id: 'usr_x' }, sub.id), null);
      assert.equal(await store.getSubscription({ ...owner(), app_id: 'app_x' }, sub.id), null);
      assert.ok((await store.listSubscriptions(owner())).some((s) => s.id === sub.id));
      assert.equal(await store.deleteSubscription({ ...owner(), company_id: 'co_x' }, sub.id, 'r', T0), false);
      assert.equal(await store.deleteSubscription(owner(), sub.id, 'r', T0), true);
      assert.equal(await store.getSubscription(owner(), sub.id), null);
    });

    test('publish fans out by company, channel and resource, atomically with the event', async () => {
      const plain = await newSub(['task.create']);
      const proj1 = await newSub(['task.create'], { type: 'project', id: 'proj1' });
      const proj2 = await newSub(['task.create'], { type: 'project', id: 'proj2' });
      const other = await newSub(['client.update']);
      const r = await store.publishEvent(event('task.create', { resources: { project: 'proj1' } }), T0);
      assert.deepEqual(r.deliveries, 2);
      const ds = await store.listDeliveries({ event_id: r.id, limit: 10 });
      assert.deepEqual(new Set(ds.map((d) => d.subscription_id)), new Set([plain.id, proj1.id]));
      assert.ok(ds.every((d) => d.status === 'pending' && d.attempts === 0 && d.channel === 'task.create'));
      for (const s of [plain, proj1, proj2, other]) await store.deleteSubscription(owner(), s.id, 'cleanup', T0);
      await drain(T0 + 1);
    });

    test('the engine picks exactly the subscriptions matchesResource (the domain rule) picks', async () => {
      const resources: Subscription['resource'][] = [
        null, { type: 'project', id: 'proj1' }, { type: 'project', id: 'proj2' }, { type: 'team', id: 'red' }, { type: 'team', id: 'proj1' },
        { type: 'task', id: 't1' }, { type: 'task', id: 't2' }, { type: 'task', id: '42' }, { type: 'company', id: 'proj1' },
        { type: 'project', id: "o'brien \"x\"" },
      ];
      const subs: Subscription[] = [];
      for (const r of resources) subs.push(await newSub(['task.update'], r));
      const events = [
        event('task.update', { resources: { project: 'proj1', team: 'red' }, objectId: 't1' }),
        event('task.update', { resources: {}, objectId: 't2' }),
        event('task.update', { resources: { project: "o'brien \"x\"" }, objectId: 'none' }),
        { ...event('task.update', { resources: { team: 'proj1' } }), object: { id: 42 } },
      ];
      for (const [i, e] of events.entries()) {
        const r = await store.publishEvent(e, T0 + i);
        const got = new Set((await store.listDeliveries({ event_id: r.id, limit: 100 })).map((d) => d.subscription_id));
        const want = new Set(subs.filter((s) => matchesResource(s.resource, e)).map((s) => s.id));
        assert.deepEqual(got, want, `event ${i}`);
        assert.equal(r.deliveries, want.size);
      }
      for (const s of subs) await store.deleteSubscription(owner(), s.id, 'cleanup', T0);
      await drain(T0 + 10);
    });

    test('an idempotency key stores one event per company', async () => {
      await newSub(['client.delete']);
      const a = await store.publishEvent(event('client.delete', { key: 'same' }), T0);
      const b = await store.publishEvent(event('client.delete', { key: 'same' }), T0);
      assert.equal(b.id, a.id);
      assert.equal(b.duplicate, true);
      assert.equal((await store.listDeliveries({ event_id: a.id, limit: 10 })).length, 1);
      await drain(T0 + 1);
    });

    test('concurrent publishes: each is stored on its own, one failing leaves the others, one key gives one event', async () => {
      await newSub(['client.copy']);
      const clash = event('client.copy');
      await store.publishEvent(clash, T0);
      // Started together (on SQLite: committed together), with a repeated event id among them.
      const results = await Promise.allSettled([
        store.publishEvent(event('client.copy'), T0),
        store.publishEvent({ ...event('client.copy'), id: clash.id }, T0),
        store.publishEvent(event('client.copy', { key: 'together' }), T0),
        store.publishEvent(event('client.copy', { key: 'together' }), T0),
        store.publishEvent(event('client.copy'), T0),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      const [first, , keyed, again, last] = results.map((r) => (r.status === 'fulfilled' ? r.value : null));
      assert.equal(again?.id, keyed?.id);
      assert.deepEqual([keyed?.duplicate, again?.duplicate].sort(), [false, true]);
      for (const r of [first, keyed, last]) assert.equal((await store.listDeliveries({ event_id: r!.id, limit: 10 })).length, 1);
      assert.equal((await store.listDeliveries({ event_id: clash.id, limit: 10 })).length, 1, 'the failed one added nothing');
      await drain(T0 + 1);
    });

    test('publishes started together (one batch on both engines) each get their own fan-out and answer', async () => {
      const plain = await newSub(['task.move']);
      const proj1 = await newSub(['task.move'], { type: 'project', id: 'proj1' });
      const other = await newSub(['client.move']);
      const inputs = [
        event('task.move', { resources: { project: 'proj1' } }), // plain and proj1
        event('task.move', { resources: { project: 'proj2' } }), // plain
        event('client.move', { key: 'k1' }), // other
        event('task.move', { objectId: 'proj1' }), // plain (a task is no project)
        event('client.move', { key: 'k1' }), // the key again: the first's id
        event('nothing.here'), // no subscription: stored, no delivery
      ];
      const results = await Promise.all(inputs.map((e) => store.publishEvent(e, T0 + 7)));
      assert.deepEqual(results.map((r) => r.deliveries), [2, 1, 1, 1, 0, 0]);
      assert.deepEqual(results.map((r) => r.duplicate), [false, false, false, false, true, false]);
      assert.equal(results[4]!.id, results[2]!.id);
      results.forEach((r, i) => { if (i !== 4) assert.equal(r.id, inputs[i]!.id); });
      const subsOf = async (id: string) => (await store.listDeliveries({ event_id: id, limit: 10 })).map((d) => d.subscription_id).sort();
      assert.deepEqual(await subsOf(results[0]!.id), [plain.id, proj1.id].sort());
      assert.deepEqual(await subsOf(results[1]!.id), [plain.id]);
      assert.deepEqual(await subsOf(results[2]!.id), [other.id]);
      assert.deepEqual(await subsOf(results[3]!.id), [plain.id]);
      assert.deepEqual(await subsOf(results[5]!.id), []);
      // Delivery ids increase in the order they are made (nextTick), so each batch is appended
      // to the indexes keyed by them: a later publish's sort after, even at an earlier time.
      const later = await store.publishEvent(event('client.move'), T0 - 60_000);
      const [dLater] = await store.listDeliveries({ event_id: later.id, limit: 1 });
      const [dEarlier] = await store.listDeliveries({ event_id: results[2]!.id, limit: 1 });
      assert.ok(dEarlier!.id < dLater!.id, `${dEarlier!.id} < ${dLater!.id}`);
      for (const s of [plain, proj1, other]) await store.deleteSubscription(owner(), s.id, 'cleanup', T0);
      await drain(T0 + 10);
    });

    test('a fan-out past FAN_OUT_CHUNK: the publish queues one chunk, expandFanOut the rest, each audience member once', async () => {
      const DAY = 86_400_000;
      const at = T0 - 10 * DAY; // older than every other test's event: the prune below touches only this one
      const sub = (created: number, resource: Subscription['resource'] = null): Subscription => ({
        id: newId('sub'), grant_id: grantId, ...owner(), channels: ['lead.create'], callback_url: 'https://app.example.com/h',
        resource, headers: {}, content_type: 'form', created_at: created, updated_at: created,
      });
      const rest = Math.floor(FAN_OUT_CHUNK * 0.7) + 3; // a last chunk that does not fill
      // Last in id order, so in the chunk expandFanOut queues last: subscriptions to the event's
      // project and to its object, whose numeric id matches as String() writes it (1e+21), not
      // as PostgreSQL's jsonb would (1000000000000000000000).
      const last = (s: Subscription): Subscription => ({ ...s, id: `sub_zz${s.id.slice(4)}` });
      const audience = [
        ...Array.from({ length: 2 * FAN_OUT_CHUNK + rest - 6 }, () => sub(at - 1)),
        ...Array.from({ length: 3 }, () => last(sub(at - 1, { type: 'project', id: 'proj1' }))),
        ...Array.from({ length: 3 }, () => last(sub(at - 1, { type: 'lead', id: '1e+21' }))),
      ];
      const elsewhere = [
        ...Array.from({ length: 50 }, () => sub(at - 1, { type: 'project', id: 'proj9' })),
        sub(at - 1, { type: 'lead', id: '1000000000000000000000' }),
      ];
      for (const s of [...audience, ...elsewhere]) await store.createSubscription(s);
      const e = event('lead.create', { resources: { project: 'proj1' }, objectId: 1e21 });
      const r = await store.publishEvent(e, at);
      assert.equal(r.deliveries, FAN_OUT_CHUNK);
      // Created after the event: not its audience, wherever their ids fall.
      const late = Array.from({ length: 20 }, () => sub(at + 1));
      for (const s of late) await store.createSubscription(s);

      const delivered: string[] = [];
      const claimAll = async (now: number) => {
        const claimed = await store.claimDueDeliveries(5000, now, 10_000);
        delivered.push(...claimed.map((c) => c.subscription!.id));
        await store.recordOutcomes(claimed.map((c) => ({ kind: 'dropped' as const, id: c.id, lease: c.lease, reason: 'test', at: now })));
      };
      await claimAll(at);
      assert.equal(delivered.length, FAN_OUT_CHUNK);
      // Its first chunk is finished, but the event stays until its fan-out is complete.
      await store.prune(at + 1, 1000);
      assert.equal((await store.listDeliveries({ event_id: e.id, limit: 10 })).length, 10);

      const progress = [];
      for (let p = await store.expandFanOut(at + 5); p; p = await store.expandFanOut(at + 5)) progress.push(p);
      assert.deepEqual(progress, [
        { event_id: e.id, deliveries: FAN_OUT_CHUNK, done: false },
        { event_id: e.id, deliveries: rest, done: true },
      ]);
      await claimAll(at + 5); // queued in the event's place in line: due at its time
      assert.equal(delivered.length, audience.length);
      assert.deepEqual(new Set(delivered), new Set(audience.map((s) => s.id)));
      for (const s of [...audience, ...elsewhere, ...late]) await store.deleteSubscription(owner(), s.id, 'cleanup', at);
    });

    test('what falls due ahead of the deliveries in flight is claimed next: a publish at an earlier time, an early retry, a lease that ran out', async () => {
      const sub = await newSub(['client.create']);
      const at = T0 + 50_000;
      const events: string[] = [];
      for (let i = 0; i < 6; i++) events.push((await store.publishEvent(event('client.create'), at + 10 + i)).id);
      const now = at + 100;
      const first = await store.claimDueDeliveries(3, now, 60_000);
      assert.deepEqual(first.map((d) => d.event.id), events.slice(0, 3), 'the oldest first');
      const second = await store.claimDueDeliveries(2, now, 60_000);
      assert.deepEqual(second.map((d) => d.event.id), events.slice(3, 5));
      // Due before everything held: a publish at an earlier time, then a retry.
      const early = (await store.publishEvent(event('client.create'), at + 1)).id;
      const third = await store.claimDueDeliveries(10, now, 60_000);
      assert.deepEqual(third.map((d) => d.event.id).sort(), [early, events[5]!].sort());
      await store.recordOutcomes([{ kind: 'retry', id: first[0]!.id, lease: first[0]!.lease, attempt: attempt(first[0]!.id, 1, now, 500), next_attempt_at: at + 2 }]);
      const retried = await store.claimDueDeliveries(10, now, 60_000);
      assert.deepEqual(retried.map((d) => d.id), [first[0]!.id]);
      third.push(...retried);
      // Leases of 50 ms: once they run out, their deliveries are claimed again.
      await store.recordOutcomes(third.map((d) => ({ kind: 'retry' as const, id: d.id, lease: d.lease, attempt: attempt(d.id, 1, now, 500), next_attempt_at: at + 3 })));
      const short = await store.claimDueDeliveries(10, now + 1, 50);
      assert.equal(short.length, 3);
      assert.deepEqual(await store.claimDueDeliveries(10, now + 2, 50), [], 'held');
      const back = await store.claimDueDeliveries(10, now + 51, 60_000);
      assert.deepEqual(back.map((d) => d.id).sort(), short.map((d) => d.id).sort());
      await store.recordOutcomes([...first.slice(1), ...second, ...back].map((d) => ({ kind: 'dropped' as const, id: d.id, lease: d.lease, reason: 'test', at: now })));
      await drain(now + 100);
      await store.deleteSubscription(owner(), sub.id, 'cleanup', now);
    });

    test('claims lease deliveries: not claimed twice, back after the lease, only the holder records', async () => {
      const sub = await newSub(['client.create']);
      const { id: eventId } = await store.publishEvent(event('client.create'), T0);
      assert.equal(await store.nextDueAt(), T0);
      const [first] = await store.claimDueDeliveries(10, T0, 1000);
      assert.ok(first);
      assert.equal(first.event.id, eventId);
      assert.equal(first.subscription?.id, sub.id);
      assert.equal(first.grant?.id, grantId);
      assert.equal(first.user?.id, userId);
      assert.deepEqual(first.role?.permissions, { clients: ['create'] });
      assert.deepEqual(await store.claimDueDeliveries(10, T0 + 999, 1000), [], 'leased');
      const [again] = await store.claimDueDeliveries(10, T0 + 1000, 1000);
      assert.equal(again?.id, first.id, 'back after the lease expired');
      // The first holder's lease is gone: its outcome does not change the state…
      await store.recordOutcomes([{ kind: 'succeeded', id: first.id, lease: first.lease, attempt: attempt(first.id, 1, T0, 200) }]);
      assert.equal((await store.getDelivery(first.id))?.status, 'pending');
      // …the current holder's does, and both attempts are logged.
      await store.recordOutcomes([{ kind: 'retry', id: again.id, lease: again.lease, attempt: attempt(again.id, 1, T0 + 1000, 500), next_attempt_at: T0 + 5000 }]);
      const d = (await store.getDelivery(first.id))!;
      assert.deepEqual([d.status, d.attempts, d.next_attempt_at, d.last_status_code], ['pending', 1, T0 + 5000, 500]);
      assert.equal((await store.listAttempts(first.id)).length, 2);
      assert.deepEqual(await store.claimDueDeliveries(10, T0 + 4999, 1000), []);
      const [third] = await store.claimDueDeliveries(10, T0 + 5000, 1000);
      assert.equal(third?.attempts, 1);
      await store.recordOutcomes([{ kind: 'succeeded', id: third!.id, lease: third!.lease, attempt: attempt(third!.id, 2, T0 + 5000, 200) }]);
      assert.equal((await store.getDelivery(first.id))?.status, 'succeeded');
      assert.equal(await store.nextDueAt(), null);
      await store.deleteSubscription(owner(), sub.id, 'cleanup', T0);
    });

    test('outcomes recorded again (the write committed but its answer was lost) change nothing and log no attempt twice', async () => {
      const sub = await newSub(['client.create']);
      for (let i = 0; i < 4; i++) await store.publishEvent(event('client.create'), T0);
      const [a, b, c, d] = await store.claimDueDeliveries(4, T0, 60_000);
      assert.ok(a && b && c && d);
      const ok = (x: ClaimedDelivery) => ({ kind: 'succeeded' as const, id: x.id, lease: x.lease, attempt: attempt(x.id, 1, T0, 200) });
      const retry = { kind: 'retry' as const, id: a.id, lease: a.lease, attempt: attempt(a.id, 1, T0, 500), next_attempt_at: T0 + 5000 };
      await store.recordOutcomes([retry, ok(b)]);
      // The dispatcher records a batch again when its write failed: all of it logged already…
      await store.recordOutcomes([retry, ok(b)]);
      // …or part of it, beside outcomes that are new (they are recorded)…
      await store.recordOutcomes([retry, ok(c)]);
      // …also with its next claim (recordAndClaim, where the engine has it), which still claims.
      await store.publishEvent(event('client.create'), T0);
      if (store.recordAndClaim) {
        const claimed = await store.recordAndClaim([ok(b), ok(d)], 10, T0 + 1, 60_000);
        assert.equal(claimed.length, 1, 'the fifth delivery, due; not the retry (due at T0 + 5000)');
      } else {
        await store.recordOutcomes([ok(b), ok(d)]);
      }
      const da = (await store.getDelivery(a.id))!;
      assert.deepEqual([da.status, da.attempts, da.next_attempt_at, da.last_status_code], ['pending', 1, T0 + 5000, 500]);
      for (const x of [b, c, d]) {
        const dx = (await store.getDelivery(x.id))!;
        assert.deepEqual([dx.status, dx.attempts, dx.last_status_code], ['succeeded', 1, 200], x.id);
      }
      assert.deepEqual((await store.listAttempts(a.id)).map((x) => [x.attempt, x.started_at, x.status_code]), [[1, T0, 500]]);
      for (const x of [b, c, d]) assert.deepEqual((await store.listAttempts(x.id)).map((t) => [t.attempt, t.started_at, t.status_code]), [[1, T0, 200]]);
      await store.deleteSubscription(owner(), sub.id, 'cleanup', T0);
    });

    test('a 410 Gone recorded again removes nothing more and logs its attempt once', async () => {
      await newSub(['client.create']);
      await store.publishEvent(event('client.create'), T0);
      await store.publishEvent(event('client.create'), T0);
      const [g, other] = await store.claimDueDeliveries(2, T0, 60_000);
      assert.ok(g && other);
      const gone = { kind: 'gone' as const, id: g.id, lease: g.lease, attempt: attempt(g.id, 1, T0, 410), subscription_id: g.subscription!.id };
      await store.recordOutcomes([gone]);
      await store.recordOutcomes([gone]);
      assert.deepEqual([(await store.getDelivery(g.id))?.status, (await store.getDelivery(other.id))?.status], ['failed', 'dropped']);
      assert.equal((await store.listAttempts(g.id)).length, 1);
      assert.equal(await store.getSubscription(owner(), g.subscription!.id), null);
    });

    test('a claim sees every change made since the previous claim to the rows it reads (role, user, subscription, grant)', async () => {
      const sub = await newSub(['client.update']);
      const claimOne = async (now: number) => {
        await store.publishEvent(event('client.update'), now);
        const claimed = await store.claimDueDeliveries(10, now + 1, 10_000);
        await store.recordOutcomes(claimed.map((c) => ({ kind: 'dropped' as const, id: c.id, lease: c.lease, reason: 'test', at: now + 1 })));
        return claimed.find((c) => c.subscription?.id === sub.id)!;
      };
      const first = await claimOne(T0);
      assert.deepEqual([first.role?.permissions, first.user?.role, first.subscription?.headers, first.grant?.scope], [{ clients: ['create'] }, 'admin', { 'X-Key': 'v' }, 'api/subs clients']);
      await store.putRole({ company_id: companyId, name: 'admin', permissions: { clients: ['create', 'update'] } });
      await store.updateSubscription(owner(), { ...sub, headers: { 'X-Key': 'w' }, updated_at: T0 + 2 });
      const second = await claimOne(T0 + 2);
      assert.deepEqual([second.role?.permissions, second.subscription?.headers], [{ clients: ['create', 'update'] }, { 'X-Key': 'w' }]);
      await store.putRole({ company_id: companyId, name: 'viewer', permissions: { clients: ['read'] } });
      await store.setUserRole(companyId, userId, 'viewer', T0 + 4);
      const third = await claimOne(T0 + 4);
      assert.deepEqual([third.user?.role, third.role?.name, third.role?.permissions], ['viewer', 'viewer', { clients: ['read'] }]);
      await store.setUserRole(companyId, userId, 'admin', T0 + 6);
      await store.putRole({ company_id: companyId, name: 'admin', permissions: { clients: ['create'] } });
      const fourth = await claimOne(T0 + 6);
      assert.deepEqual([fourth.user?.role, fourth.role?.permissions], ['admin', { clients: ['create'] }]);
      await store.deleteSubscription(owner(), sub.id, 'cleanup', T0);
    });

    test('a claim reads each delivery\'s own app, previous secrets, grant, user and role, and null for a role that is gone', async () => {
      // A second app signing with Standard Webhooks whose signing secret was rotated, and a
      // user of a role that does not exist, each with a subscription to the same event.
      const app2: App = {
        id: newId('app'), name: 'App 2', url: 'https://app2.example.com/', redirect_uris: [], signature: 'standard_webhooks',
        client_id: newId('app'), client_secret: 's2', signing_secret: 'whsec_old', public_client: false, created_at: T0,
      };
      await store.createApp(app2);
      await store.rotateAppSecret(app2.id, 'signing', 'whsec_new', T0 + 3600_000, T0);
      const grant2 = newId('grt');
      await store.createGrant(
        { id: grant2, app_id: app2.id, user_id: userId, company_id: companyId, scope: 'api/subs clients', created_at: T0, revoked_at: null },
        { hash: `hash-${grant2}`, grant_id: grant2, expires_at: T0 + 3600_000, created_at: T0 },
      );
      const user2 = newId('usr');
      await store.createUser({ id: user2, company_id: companyId, email: 'b@acme.test', name: 'B', role: 'gone', created_at: T0, updated_at: T0 }, null);
      const grant3 = newId('grt');
      await store.createGrant(
        { id: grant3, app_id: appId, user_id: user2, company_id: companyId, scope: 'api/subs clients', created_at: T0, revoked_at: null },
        { hash: `hash-${grant3}`, grant_id: grant3, expires_at: T0 + 3600_000, created_at: T0 },
      );
      const sub1 = await newSub(['client.merge']);
      const sub2: Subscription = { ...sub1, id: newId('sub'), grant_id: grant2, app_id: app2.id, callback_url: 'https://app2.example.com/h' };
      const sub3: Subscription = { ...sub1, id: newId('sub'), grant_id: grant3, user_id: user2 };
      await store.createSubscription(sub2);
      await store.createSubscription(sub3);
      const { id: eventId } = await store.publishEvent(event('client.merge'), T0);

      const claimed = await store.claimDueDeliveries(10, T0 + 1, 10_000);
      const bySub = new Map(claimed.map((d) => [d.subscription?.id, d]));
      assert.equal(claimed.length, 3);
      const [d1, d2, d3] = [bySub.get(sub1.id)!, bySub.get(sub2.id)!, bySub.get(sub3.id)!];
      for (const d of [d1, d2, d3]) {
        assert.equal(d.event.id, eventId);
        assert.deepEqual(d.event.object, { id: 'o1' });
        assert.equal(d.company?.id, companyId);
        assert.equal(d.attempts, 0);
      }
      assert.deepEqual([d1.app?.id, d1.app?.signing_secret, d1.previousSecrets, d1.grant?.id, d1.user?.id], [appId, 'whsec_x', [], grantId, userId]);
      assert.deepEqual(d1.role, { company_id: companyId, name: 'admin', permissions: { clients: ['create'] } });
      assert.deepEqual(d1.subscription, sub1);
      assert.deepEqual([d2.app?.id, d2.app?.signature, d2.app?.signing_secret, d2.previousSecrets, d2.grant?.id], [app2.id, 'standard_webhooks', 'whsec_new', ['whsec_old'], grant2]);
      assert.equal(d2.grant?.revoked_at, null);
      assert.deepEqual([d3.app?.id, d3.grant?.id, d3.user?.id, d3.user?.role, d3.role], [appId, grant3, user2, 'gone', null]);
      await store.recordOutcomes(claimed.map((c) => ({ kind: 'dropped' as const, id: c.id, lease: c.lease, reason: 'test', at: T0 + 1 })));
      for (const s of [sub1, sub2, sub3]) await store.deleteSubscription({ app_id: s.app_id, user_id: s.user_id, company_id: companyId }, s.id, 'cleanup', T0);
    });

    test('a claim with room takes at most what each receiver origin has room for, oldest first', async () => {
      const urls = ['https://a.example.com/h1', 'https://a.example.com/h2?x=1', 'https://b.example.com:8443/h', 'http://c.example.com/'];
      const subs: Subscription[] = [];
      for (const url of urls) {
        const sub: Subscription = {
          id: newId('sub'), grant_id: grantId, ...owner(), channels: ['client.merge'], callback_url: url,
          resource: null, headers: {}, content_type: 'form', created_at: T0, updated_at: T0,
        };
        await store.createSubscription(sub);
        subs.push(sub);
      }
      assert.deepEqual(urls.map(originKey), ['https://a.example.com/', 'https://a.example.com/', 'https://b.example.com:8443/', 'http://c.example.com/']);
      // Three events, at T0, T0+1, T0+2: 6 deliveries to a (2 per event), 3 to b, 3 to c.
      for (let i = 0; i < 3; i++) await store.publishEvent(event('client.merge'), T0 + i);
      const room = { perOrigin: 3, inFlight: new Map([['https://a.example.com/', 1], ['http://c.example.com/', 3]]) };
      const claimed = await store.claimDueDeliveries(100, T0 + 10, 1000, room);
      const count = (origin: string) => claimed.filter((d) => originKey(d.subscription!.callback_url) === origin).length;
      assert.deepEqual([count('https://a.example.com/'), count('https://b.example.com:8443/'), count('http://c.example.com/')], [2, 3, 0]);
      // a's two are the oldest of its six: the first event's.
      const aTimes = claimed.filter((d) => d.subscription!.callback_url.startsWith('https://a.')).map((d) => d.event.id);
      assert.equal(new Set(aTimes).size, 1);
      // With `limit` below the room, the limit wins; without room, a claim takes everything due.
      assert.equal((await store.claimDueDeliveries(2, T0 + 10, 1000, { perOrigin: 100, inFlight: new Map() })).length, 2);
      assert.equal((await store.claimDueDeliveries(100, T0 + 10, 1000)).length, 12 - 5 - 2);
      for (const sub of subs) await store.deleteSubscription(owner(), sub.id, 'cleanup', T0);
      await drain(T0 + 5000);
    });

    test('a claim with room looks past a head of the queue whose origin has none, and follows a changed URL', async () => {
      const make = async (url: string, channel: string) => {
        const sub: Subscription = {
          id: newId('sub'), grant_id: grantId, ...owner(), channels: [channel], callback_url: url,
          resource: null, headers: {}, content_type: 'form', created_at: T0, updated_at: T0,
        };
        await store.createSubscription(sub);
        return sub;
      };
      const hanging = await make('https://hang.example.com/h', 'client.archive');
      const b = await make('https://b.example.com/h', 'client.restore');
      const c = await make('https://c.example.com/h', 'client.restore');
      // 30 due deliveries to the hanging origin ahead of 6 to b and c: more than a window of 2 × CLAIM_WINDOW.
      for (let i = 0; i < 30; i++) await store.publishEvent(event('client.archive'), T0 + i);
      for (let i = 0; i < 3; i++) await store.publishEvent(event('client.restore'), T0 + 100 + i);
      const room = { perOrigin: 2, inFlight: new Map([['https://hang.example.com/', 2]]) };
      const originsOf = (ds: { subscription: Subscription | null }[]) => ds.map((d) => originKey(d.subscription!.callback_url)).sort();
      const first = await store.claimDueDeliveries(2, T0 + 200, 1000, room);
      assert.equal(first.length, 2, 'two claimed from behind the head');
      assert.ok(originsOf(first).every((o) => o !== 'https://hang.example.com/'), 'none to the origin without room');
      // With room per origin 2, and first's in flight: b and c have what first left of their 2 each.
      const inFlight = new Map(room.inFlight);
      for (const o of originsOf(first)) inFlight.set(o, (inFlight.get(o) ?? 0) + 1);
      const second = await store.claimDueDeliveries(10, T0 + 200, 1000, { perOrigin: 2, inFlight });
      assert.deepEqual(originsOf([...first, ...second]), ['https://b.example.com/', 'https://b.example.com/', 'https://c.example.com/', 'https://c.example.com/']);
      // The hanging subscription moves to another origin: its pending deliveries count against the new one.
      await store.updateSubscription(owner(), { ...hanging, callback_url: 'https://moved.example.com/h', updated_at: T0 + 300 });
      // (b's and c's third deliveries come too: this claim is not told that their first two are in flight.)
      const moved = await store.claimDueDeliveries(10, T0 + 300, 1000, room);
      assert.deepEqual(originsOf(moved), ['https://b.example.com/', 'https://c.example.com/', 'https://moved.example.com/', 'https://moved.example.com/']);
      for (const sub of [hanging, b, c]) await store.deleteSubscription(owner(), sub.id, 'cleanup', T0);
      await drain(T0 + 5000);
    });

    test('410 Gone fails the delivery, removes the subscription and drops its other pending deliveries', async () => {
      const sub = await newSub(['client.update']);
      await store.publishEvent(event('client.update'), T0);
      await store.publishEvent(event('client.update'), T0 + 10);
      const [d1] = await store.claimDueDeliveries(1, T0 + 10, 1000);
      await store.recordOutcomes([{ kind: 'gone', id: d1!.id, lease: d1!.lease, attempt: attempt(d1!.id, 1, T0 + 10, 410), subscription_id: sub.id }]);
      assert.equal(await store.getSubscription(owner(), sub.id), null);
      const ds = await store.listDeliveries({ subscription_id: sub.id, limit: 10 });
      assert.deepEqual(ds.map((d) => d.status).sort(), ['dropped', 'failed']);
    });

    test('deleting a subscription drops its pending deliveries, in-flight ones included', async () => {
      const sub = await newSub(['client.create']);
      await store.publishEvent(event('client.create'), T0);
      // Simulate the race: deleted after the delivery was queued but the row still pending.
      const claimedBefore = await store.claimDueDeliveries(10, T0, 1);
      assert.equal(claimedBefore.length, 1);
      await store.deleteSubscription(owner(), sub.id, 'gone', T0);
      const d = await store.getDelivery(claimedBefore[0]!.id);
      assert.equal(d?.status, 'dropped');
      assert.equal(d?.last_error, 'gone');
    });

    test('revoking a grant deletes its tokens and subscriptions and drops pending deliveries', async () => {
      const g = newId('grt');
      await store.createGrant(
        { id: g, app_id: appId, user_id: userId, company_id: companyId, scope: 'clients', created_at: T0, revoked_at: null },
        { hash: `hash-${g}`, grant_id: g, expires_at: T0 + 3600_000, created_at: T0 },
      );
      await store.insertAccessTokens([{ hash: `hash2-${g}`, grant_id: g, expires_at: T0 + 3600_000, created_at: T0 }]);
      const sub = await newSub(['client.create'], null, g);
      const { id: eventId } = await store.publishEvent(event('client.create'), T0);
      assert.equal(await store.revokeGrant(g, T0 + 1), true);
      assert.equal(await store.revokeGrant(g, T0 + 2), false, 'already revoked');
      assert.equal(await store.findAccessToken(`hash-${g}`), null);
      assert.equal(await store.findAccessToken(`hash2-${g}`), null);
      assert.equal(await store.getSubscription(owner(), sub.id), null);
      const ds = await store.listDeliveries({ event_id: eventId, subscription_id: sub.id, limit: 10 });
      assert.deepEqual(ds.map((d) => [d.status, d.last_error]), [['dropped', 'grant revoked']]);
      assert.equal((await store.getGrant(g))?.revoked_at, T0 + 1);
    });

    test('deliveries list filters by status and limit, newest first', async () => {
      const all = await store.listDeliveries({ limit: 1000 });
      assert.ok(all.length >= 5);
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.created_at >= all[i]!.created_at);
      const dropped = await store.listDeliveries({ status: 'dropped', limit: 2 });
      assert.equal(dropped.length, 2);
      assert.ok(dropped.every((d) => d.status === 'dropped'));
      assert.deepEqual(await store.listDeliveries({ company_id: 'co_none', limit: 10 }), []);
    });

    // Last: it prunes what the tests above left behind.
    test('prune deletes old finished events with their deliveries and attempts, and expired tokens, codes and secrets; keeps the rest', async () => {
      const DAY = 86_400_000;
      const T1 = T0 + 100 * DAY;
      const CUT = T1 + 30 * DAY;
      await drain(T1);
      assert.ok((await store.prune(T1, 1000)) > 0, 'the earlier tests\' finished events are older than T1');
      const [s1, s2] = [await newSub(['client.merge']), await newSub(['client.merge'])];
      const publishAndClaim = async (key: string, at: number, channel = 'client.merge') => {
        const { id } = await store.publishEvent(event(channel, { key }), at);
        const claimed = await store.claimDueDeliveries(10, at, 1000);
        assert.ok(claimed.every((c) => c.event.id === id));
        return { id, claimed };
      };
      const ok = (c: { id: string; lease: string }, at: number, n = 1) =>
        ({ kind: 'succeeded' as const, id: c.id, lease: c.lease, attempt: attempt(c.id, n, at, 200) });
      const retry = (c: { id: string; lease: string }, at: number, next: number) =>
        ({ kind: 'retry' as const, id: c.id, lease: c.lease, attempt: attempt(c.id, 1, at, 500), next_attempt_at: next });

      // A: old, finished (succeeded; failed after a retry), 3 attempts: pruned.
      const A = await publishAndClaim('ret-A', T1);
      assert.equal(A.claimed.length, 2);
      const [a1, a2] = A.claimed as [typeof A.claimed[0], typeof A.claimed[0]];
      await store.recordOutcomes([ok(a1, T1), retry(a2, T1, T1 + 1000)]);
      const [a2again] = await store.claimDueDeliveries(10, T1 + 1000, 1000);
      assert.equal(a2again?.id, a2.id);
      await store.recordOutcomes([{ kind: 'failed', id: a2.id, lease: a2again!.lease, attempt: attempt(a2.id, 2, T1 + 1000, 500) }]);
      // E: old, nobody listened (no delivery): pruned.
      const E = await publishAndClaim('ret-E', T1, 'task.create');
      assert.equal(E.claimed.length, 0);
      // B: old, one delivery finished and one still pending (retrying far ahead): kept whole.
      const B = await publishAndClaim('ret-B', T1 + 2000);
      const [b1, b2] = B.claimed as [typeof B.claimed[0], typeof B.claimed[0]];
      await store.recordOutcomes([ok(b1, T1 + 2000), retry(b2, T1 + 2000, T1 + 1000 * DAY)]);
      // C: old, but its last delivery finished after the cutoff: kept.
      const C = await publishAndClaim('ret-C', T1 + 3000);
      const [c1, c2] = C.claimed as [typeof C.claimed[0], typeof C.claimed[0]];
      await store.recordOutcomes([ok(c1, T1 + 3000), retry(c2, T1 + 3000, CUT + DAY)]);
      const [c2again] = await store.claimDueDeliveries(10, CUT + DAY, 1000);
      assert.equal(c2again?.id, c2.id);
      await store.recordOutcomes([ok(c2again!, CUT + DAY, 2)]);
      // D: recent and finished: kept.
      const D = await publishAndClaim('ret-D', CUT + 2 * DAY);
      await store.recordOutcomes(D.claimed.map((d) => ok(d, CUT + 2 * DAY)));

      // Access tokens, OAuth codes, refresh tokens and rotated secrets on either side of the cutoff.
      await store.insertAccessTokens([
        { hash: 'ret-at-old', grant_id: grantId, expires_at: CUT - 1, created_at: T1 },
        { hash: 'ret-at-new', grant_id: grantId, expires_at: CUT + 1, created_at: T1 },
      ]);
      const code = (hash: string, expires_at: number, used_at: number | null) => ({
        hash, app_id: appId, user_id: userId, company_id: companyId, scope: 'api/subs clients', redirect_uri: 'https://app.example.com/cb',
        code_challenge: null, code_challenge_method: null, expires_at, created_at: T1, used_at, grant_id: null,
      });
      await store.oauth.saveAuthCode(code('ret-code-expired', CUT - 1, null));
      await store.oauth.saveAuthCode(code('ret-code-used', CUT + 1, CUT - 1));
      await store.oauth.saveAuthCode(code('ret-code-live', CUT + 1, null));
      const grant = { id: newId('grt'), app_id: appId, user_id: userId, company_id: companyId, scope: 'api/subs clients', created_at: T1, revoked_at: null };
      const tokenPair = (name: string, expires_at: number) => [
        { hash: `ret-at-${name}`, grant_id: '', expires_at, created_at: T1 },
        { hash: `ret-rt-${name}`, grant_id: '', expires_at, created_at: T1 },
      ] as const;
      assert.equal(await store.oauth.authorize(grant, 'ret-code-live', ...tokenPair('pair-old', CUT - 1)), grantId, 'the live grant is reused');
      await store.oauth.authorize(grant, 'ret-code-live', ...tokenPair('pair-new', CUT + 1));
      await store.rotateAppSecret(appId, 'client', 's2', CUT - 1, T1);
      await store.rotateAppSecret(appId, 'client', 's3', CUT + 1, T1);

      // Event A (1), its deliveries (2) and attempts (3); event E (1); access tokens ret-at-old and
      // ret-at-pair-old (2); codes expired and used (2); refresh token ret-rt-pair-old (1); secret "s" (1).
      assert.equal(await store.prune(CUT, 2), 13);
      assert.equal(await store.prune(CUT, 2), 0, 'nothing more to prune');

      assert.equal(await store.getDelivery(a1.id), null);
      assert.equal(await store.getDelivery(a2.id), null);
      assert.deepEqual(await store.listAttempts(a1.id), []);
      assert.deepEqual(await store.listAttempts(a2.id), []);
      // A pruned event frees its idempotency key; a kept one still answers with its id.
      const again = async (key: string) => store.publishEvent(event('task.create', { key }), CUT + 3 * DAY);
      assert.equal((await again('ret-A')).duplicate, false);
      assert.equal((await again('ret-E')).duplicate, false);
      for (const kept of [B, C, D]) {
        assert.deepEqual(await again(`ret-${kept.id === B.id ? 'B' : kept.id === C.id ? 'C' : 'D'}`), { id: kept.id, duplicate: true, deliveries: 0 });
        assert.equal((await store.listDeliveries({ event_id: kept.id, limit: 10 })).length, 2);
      }
      assert.equal((await store.getDelivery(b2.id))?.status, 'pending');
      assert.equal((await store.getDelivery(b1.id))?.status, 'succeeded');
      assert.equal((await store.listAttempts(b1.id)).length, 1);
      assert.equal((await store.listAttempts(c2.id)).length, 2);

      assert.equal(await store.findAccessToken('ret-at-old'), null);
      assert.equal(await store.findAccessToken('ret-at-pair-old'), null);
      assert.equal((await store.findAccessToken('ret-at-new'))?.expires_at, CUT + 1);
      assert.equal((await store.findAccessToken('ret-at-pair-new'))?.expires_at, CUT + 1);
      assert.equal(await store.oauth.useAuthCode('ret-code-expired', CUT), null);
      assert.equal(await store.oauth.useAuthCode('ret-code-used', CUT), null);
      assert.equal((await store.oauth.useAuthCode('ret-code-live', CUT))?.hash, 'ret-code-live');
      assert.equal(await store.oauth.findRefreshToken('ret-rt-pair-old'), null);
      assert.equal((await store.oauth.findRefreshToken('ret-rt-pair-new'))?.token.expires_at, CUT + 1);
      assert.deepEqual(await store.oauth.previousSecrets(appId, 'client', 0), ['s2']);

      await assert.rejects(store.prune(CUT, 0), RangeError);
      await assert.rejects(store.prune(Number.NaN, 10), RangeError);
      for (const s of [s1, s2]) await store.deleteSubscription(owner(), s!.id, 'cleanup', CUT);
    });

    test('prune stops between batches once its signal is aborted', async () => {
      const DAY = 86_400_000;
      const T2 = T0 + 200 * DAY;
      await store.prune(T2, 1000);
      for (let i = 0; i < 5; i++) await store.publishEvent(event('task.create'), T2);
      const aborted = new AbortController();
      aborted.abort();
      assert.equal(await store.prune(T2 + 1, 2, aborted.signal), 0);
      assert.equal(await store.prune(T2 + 1, 2), 5);
    });

    test('sign-in attempts count per key within their window, start over after it, and clear', async () => {
      const W = 15 * 60_000;
      const counts = [];
      for (let i = 0; i < 3; i++) counts.push(await store.oauth.countSignInAttempt('key-a', T0 + i, W));
      assert.deepEqual(counts, [1, 2, 3].map((attempts) => ({ attempts, reset_at: T0 + W })));
      assert.deepEqual(await store.oauth.countSignInAttempt('key-b', T0 + 5, W), { attempts: 1, reset_at: T0 + 5 + W }, 'another key counts apart');
      assert.deepEqual(await store.oauth.countSignInAttempt('key-a', T0 + W - 1, W), { attempts: 4, reset_at: T0 + W }, 'the window is fixed from the first attempt');
      assert.deepEqual(await store.oauth.countSignInAttempt('key-a', T0 + W, W), { attempts: 1, reset_at: T0 + 2 * W }, 'a new window once it ended');
      await store.oauth.clearSignInAttempts('key-a');
      assert.equal((await store.oauth.countSignInAttempt('key-a', T0 + W + 1, W)).attempts, 1, 'cleared');
      // Concurrent attempts each get their own count: none is lost.
      const parallel = await Promise.all(Array.from({ length: 20 }, () => store.oauth.countSignInAttempt('key-c', T0 + W, W)));
      assert.deepEqual(parallel.map((p) => p.attempts).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
    });
  });
}
