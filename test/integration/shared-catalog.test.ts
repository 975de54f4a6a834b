import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Receiver } from '../support/receiver.js';
import { startServer, type TestServer } from '../support/server.js';
import { ok, publishEvent, seedStory, subscribe, waitForDeliveries, type Story } from '../support/story.js';

// Two Heralds on one database: A publishes and delivers, B (API only) changes the catalog.
// A keeps a recent catalog for its hot paths (src/service/hot.ts); what B declares must still
// be accepted and delivered by A at once, not after A's copy ages out.
let a: TestServer;
let b: TestServer;
let rx: Receiver;
let story: Story;

before(async () => {
  rx = await Receiver.start();
  a = await startServer();
  b = await startServer({ DATABASE_URL: a.databaseUrl }, { herald: { worker: false } });
  story = await seedStory(a, `${rx.url}/`);
});
after(async () => {
  await b?.stop();
  await a?.stop();
  await rx?.close();
});

const declared = ['clients', 'invoices', 'projects', 'tasks'];

/** Declares `type` on B with a grant for it; A has read its catalog just before. Returns the subscription's id. */
async function declareOnB(type: string, plural: string): Promise<string> {
  await publishEvent(a, { channel: 'client.create', company_id: story.companyId, object: { id: 'c1' } });
  await ok(b.admin('PUT', `/admin/resources/${type}`, { plural }), 200);
  declared.push(plural);
  const all = ['create', 'read', 'update', 'delete'];
  await ok(b.admin('PUT', `/admin/companies/${story.companyId}/roles/admin`, { permissions: Object.fromEntries(declared.map((p) => [p, all])) }), 200);
  const grant = await ok(b.admin('POST', '/admin/grants', { app_id: story.appId, user_id: story.userId, scope: `api/subs ${plural}` }), 201);
  return subscribe(b, grant.access_token, { channels: [`${type}.create`], callback_url: `${rx.url}/${plural}` });
}

async function deliveredBy(server: TestServer, eventId: string, subId: string, path: string): Promise<void> {
  const [d] = await waitForDeliveries(server, `event_id=${eventId}`, (ds) => ds.length === 1 && ds[0].status !== 'pending');
  assert.equal(d.status, 'succeeded', `delivered, not dropped: ${JSON.stringify(d)}`);
  assert.equal(d.subscription_id, subId);
  assert.ok(rx.received.some((r) => r.path === path));
}

test('a resource type declared by another process can be published to at once', async () => {
  await subscribe(a, story.token, { channels: ['client.create'], callback_url: `${rx.url}/clients` });
  const subId = await declareOnB('ticket', 'tickets');
  const eventId = await publishEvent(a, { channel: 'ticket.create', company_id: story.companyId, object: { id: 't1' } });
  await deliveredBy(a, eventId, subId, '/tickets');
});

test('an event of a resource type declared by another process is delivered, not dropped as unknown', async () => {
  const subId = await declareOnB('note', 'notes');
  const eventId = await publishEvent(b, { channel: 'note.create', company_id: story.companyId, object: { id: 'n1' } });
  await deliveredBy(a, eventId, subId, '/notes'); // B has no dispatcher: A's delivers it
});
